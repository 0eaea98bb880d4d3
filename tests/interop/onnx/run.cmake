# Script (cmake -P) of the ONNX interop test. MODE=models writes the test models into WORK; MODE=case
# prunes MODEL with CONFIG into WORK/NAME, has ONNX's checker judge the output, and runs check.mjs in
# ONNX Runtime. Inputs: MODE, SRC (this folder), WORK, PYTHON, and for a case SPARSITY, NODE, NAME,
# MODEL, CONFIG, TARGETS (comma-separated), DATA (external data file name, optional).
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

if(NOT EXISTS "${PYTHON}")
  message(FATAL_ERROR "python3 was not found when this build was configured: run .ci/install-deps")
endif()
if(MODE STREQUAL "models")
  file(REMOVE_RECURSE "${WORK}")
  run("${PYTHON}" "${SRC}/make_models.py" "${WORK}")
  return()
endif()

if(NOT EXISTS "${NODE}")
  message(FATAL_ERROR "Node.js was not found when this build was configured: run .ci/install-deps")
endif()
if(NOT EXISTS "${SRC}/node_modules/onnxruntime-node/package.json")
  message(FATAL_ERROR "onnxruntime-node is not installed in ${SRC}: run .ci/install-deps "
                      "(it runs `npm ci --ignore-scripts` there)")
endif()
set(out "${WORK}/${NAME}")
file(REMOVE_RECURSE "${out}")
file(MAKE_DIRECTORY "${out}")
# The output goes into its own directory: its external data file is written beside it under the input's
# location, which must not replace the input's.
run("${SPARSITY}" prune "${WORK}/${MODEL}" --config "${CONFIG}" --output "${out}/${MODEL}"
    --masks "${out}/masks.safetensors" --quiet)
run("${PYTHON}" -c "import onnx, sys; onnx.checker.check_model(sys.argv[1]); print('onnx.checker: ok')"
    "${out}/${MODEL}")
set(data_args)
if(DATA)
  set(data_args --data "${DATA}")
endif()
run("${NODE}" "${SRC}/check.mjs" --dir "${WORK}" --dense "${MODEL}" --pruned "${out}/${MODEL}"
    --masks "${out}/masks.safetensors" --config "${CONFIG}" --targets "${TARGETS}" ${data_args})

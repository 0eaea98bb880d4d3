# Script (cmake -P): make the GGUF fixture, prune it with the CLI, then check both files with
# @huggingface/gguf (gguf_check.mjs). Inputs: MAKER, CLI, NODE, SCRIPT, WORK_DIR.
foreach(var MAKER CLI SCRIPT WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "gguf_interop.cmake needs -D${var}=...")
  endif()
endforeach()
if(NOT NODE OR NODE MATCHES "NOTFOUND$")
  message(FATAL_ERROR "node was not found when the build was configured: run `bash .ci/install-deps`, "
                      "then configure again")
endif()
get_filename_component(interop_dir "${SCRIPT}" DIRECTORY)
if(NOT EXISTS "${interop_dir}/node_modules/@huggingface/gguf/package.json")
  message(FATAL_ERROR "@huggingface/gguf is not installed in ${interop_dir}: run `bash .ci/install-deps`")
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
run("${MAKER}" "${WORK_DIR}")
run("${CLI}" prune "${WORK_DIR}/model.gguf" --config "${WORK_DIR}/config.json" --output "${WORK_DIR}/pruned.gguf"
    --masks "${WORK_DIR}/masks.safetensors" --quiet --no-sync)
run("${CLI}" inspect "${WORK_DIR}/pruned.gguf")
run("${NODE}" "${SCRIPT}" "${WORK_DIR}/model.gguf" "${WORK_DIR}/pruned.gguf" "${WORK_DIR}/masks.safetensors"
    "${WORK_DIR}/config.json")

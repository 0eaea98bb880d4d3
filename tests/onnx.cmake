# ONNX: the unit tests see the same configuration as the library (ONNX's classes build their models and
# its checker judges the outputs), and the interop test runs the pruned models in ONNX Runtime.
if(SPARSITY_HAVE_ONNX)
  target_compile_definitions(sparsity_tests PRIVATE SPARSITY_HAVE_ONNX=1)
  target_link_libraries(sparsity_tests PRIVATE onnx)
endif()

# Interop: models made by ONNX's Python package, pruned by the `sparsity` command, run by onnxruntime-node
# (tests/interop/onnx; .ci/install-deps installs its pinned packages). Missing tools fail the test.
if(SPARSITY_HAVE_ONNX AND TARGET sparsity_cli)
  # Debian's python3-onnx lives beside /usr/bin/python3, which may not be the first python3 on PATH.
  find_program(SPARSITY_ONNX_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  find_program(SPARSITY_ONNX_PYTHON NAMES python3)
  find_program(SPARSITY_NODE NAMES node nodejs)
  set(_src ${PROJECT_SOURCE_DIR}/tests/interop/onnx)
  set(_work ${CMAKE_CURRENT_BINARY_DIR}/onnx_interop)
  add_test(NAME onnx_interop_models
           COMMAND ${CMAKE_COMMAND} -DMODE=models -DSRC=${_src} -DWORK=${_work} -DPYTHON=${SPARSITY_ONNX_PYTHON}
                   -P ${_src}/run.cmake)
  set_tests_properties(onnx_interop_models PROPERTIES FIXTURES_SETUP onnx_models TIMEOUT 120)
  set(_all fc1.weight,fc2.weight,fc3.weight,fc4.weight)
  foreach(case "inline_blocks|mlp.onnx|block.json|${_all}|"
               "inline_2_4|mlp.onnx|nm.json|fc1.weight,fc2.weight,fc4.weight|"
               "external_blocks|mlp_ext.onnx|block.json|${_all}|mlp_ext.onnx.data"
               "external_2_4|mlp_ext.onnx|nm.json|fc1.weight,fc2.weight,fc4.weight|mlp_ext.onnx.data")
    string(REPLACE "|" ";" f "${case}")
    list(GET f 0 name)
    list(GET f 1 model)
    list(GET f 2 config)
    list(GET f 3 targets)
    list(GET f 4 data)
    add_test(NAME onnx_interop_${name}
             COMMAND ${CMAKE_COMMAND} -DMODE=case -DSRC=${_src} -DWORK=${_work} -DPYTHON=${SPARSITY_ONNX_PYTHON}
                     -DSPARSITY=$<TARGET_FILE:sparsity_cli> -DNODE=${SPARSITY_NODE} -DNAME=${name}
                     -DMODEL=${model} -DCONFIG=${_src}/${config} -DTARGETS=${targets} -DDATA=${data}
                     -P ${_src}/run.cmake)
    set_tests_properties(onnx_interop_${name} PROPERTIES FIXTURES_REQUIRED onnx_models TIMEOUT 300)
  endforeach()
endif()

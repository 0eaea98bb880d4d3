# Interop: files written by sparsity, read back by independent clients in the test suite. The Node
# packages are pinned in tests/interop/package-lock.json and installed by .ci/install-deps.
if(TARGET sparsity_cli)
  add_executable(make_gguf_model ${CMAKE_CURRENT_LIST_DIR}/interop/make_gguf_model.cpp)
  target_link_libraries(make_gguf_model PRIVATE sparsity)
  find_program(SPARSITY_NODE NAMES node nodejs DOC "Node.js, for the interop tests")
  # @huggingface/gguf reads a GGUF model written by GgufWriter and its pruned copy written by the CLI.
  add_test(NAME interop_gguf_huggingface
           COMMAND ${CMAKE_COMMAND} -DMAKER=$<TARGET_FILE:make_gguf_model> -DCLI=$<TARGET_FILE:sparsity_cli>
                   -DNODE=${SPARSITY_NODE} -DSCRIPT=${CMAKE_CURRENT_LIST_DIR}/interop/gguf_check.mjs
                   -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/interop_gguf
                   -P ${CMAKE_CURRENT_LIST_DIR}/interop/gguf_interop.cmake)
  set_tests_properties(interop_gguf_huggingface PROPERTIES TIMEOUT 300)
endif()

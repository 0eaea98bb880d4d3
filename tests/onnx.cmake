# ONNX: the unit tests see the same configuration as the library (ONNX's classes build their models and
# its checker judges the outputs), and the interop test runs the pruned models in ONNX Runtime.
if(SPARSITY_HAVE_ONNX)
  target_compile_definitions(sparsity_tests PRIVATE SPARSITY_HAVE_ONNX=1)
  target_link_libraries(sparsity_tests PRIVATE onnx)
endif()

# The SPARSITY_ISA environment variable: the dispatch test runs again with a forced ISA and with a bad name.
foreach(isa scalar sse2 bogus)
  add_test(NAME kernels_env_isa_${isa}
           COMMAND sparsity_tests --gtest_filter=Dispatch.ActiveIsaFollowsEnvironment)
  set_tests_properties(kernels_env_isa_${isa} PROPERTIES ENVIRONMENT "SPARSITY_ISA=${isa}")
endforeach()

# Install/export check: `cmake --install` of this build tree into a temporary prefix, then a tiny
# consumer project (tests/consumer) does find_package(sparsity), links sparsity::sparsity and runs its
# C++ program and the C API test written in C99 (tests/capi/capi_test.c).
add_test(NAME install_consumer
         COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${PROJECT_BINARY_DIR}
                 -DCONSUMER_DIR=${CMAKE_CURRENT_SOURCE_DIR}/consumer
                 -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/install_check
                 -DCXX_COMPILER=${CMAKE_CXX_COMPILER} -DSANITIZE=${SPARSITY_SANITIZE}
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/install_check.cmake)
set_tests_properties(install_consumer PROPERTIES TIMEOUT 600)

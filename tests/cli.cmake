# CLI tests: a small gtest executable that runs the built `sparsity` binary (path passed at compile
# time), so they need neither python nor anything outside the repository.
if(TARGET sparsity_cli)
  file(GLOB SPARSITY_CLI_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/cli/*.cpp)
  add_executable(sparsity_cli_tests ${SPARSITY_CLI_TEST_SOURCES})
  target_link_libraries(sparsity_cli_tests PRIVATE sparsity GTest::gtest_main)
  target_include_directories(sparsity_cli_tests PRIVATE ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_definitions(sparsity_cli_tests PRIVATE SPARSITY_CLI_PATH="$<TARGET_FILE:sparsity_cli>")
  add_dependencies(sparsity_cli_tests sparsity_cli)
  gtest_discover_tests(sparsity_cli_tests DISCOVERY_TIMEOUT 120 PROPERTIES TIMEOUT 300)
endif()

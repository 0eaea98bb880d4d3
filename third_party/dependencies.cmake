# Third-party dependencies: Debian packages through find_package first, pinned release archives otherwise.
include(FetchContent)

# Debian's xsimd 8.1 export links a target named `xtl`; provide an empty one when xtl-dev is absent.
find_package(xtl QUIET)
if(NOT TARGET xtl)
  add_library(xtl INTERFACE IMPORTED)
endif()

set(SPARSITY_EIGEN_URL https://gitlab.com/libeigen/eigen/-/archive/3.4.0/eigen-3.4.0.tar.gz)
set(SPARSITY_EIGEN_SHA SHA256=8586084f71f9bde545ee7fa6d00288b264a2b7ac3607b974e54d13e7162c1c72)
set(SPARSITY_XSIMD_URL https://github.com/xtensor-stack/xsimd/archive/refs/tags/8.1.0.tar.gz)
set(SPARSITY_XSIMD_SHA SHA256=d52551360d37709675237d2a0418e28f70995b5b7cdad7c674626bcfbbf48328)
set(SPARSITY_JSON_URL https://github.com/nlohmann/json/releases/download/v3.11.2/json.tar.xz)
set(SPARSITY_JSON_SHA SHA256=8c4b26bf4b422252e13f332bc5e388ec0ab5c3443d24399acb675e68278d341f)
set(SPARSITY_GTEST_URL https://github.com/google/googletest/archive/refs/tags/release-1.12.1.tar.gz)
set(SPARSITY_GTEST_SHA SHA256=81964fe578e9bd7c94dfdb09c8e4d6e6759e19967e397dbea48d1c10e45d0df2)
set(SPARSITY_BENCH_URL https://github.com/google/benchmark/archive/refs/tags/v1.7.1.tar.gz)
set(SPARSITY_BENCH_SHA SHA256=6430e4092653380d9dc4ccb45a1e2dc9259d581f4866dc0759713126056bc1d7)
set(SPARSITY_CLI11_URL https://github.com/CLIUtils/CLI11/archive/refs/tags/v2.3.1.tar.gz)
set(SPARSITY_CLI11_SHA SHA256=378da73d2d1d9a7b82ad6ed2b5bda3e7bc7093c4034a1d680a2e009eb067e7b2)

FetchContent_Declare(Eigen3 URL ${SPARSITY_EIGEN_URL} URL_HASH ${SPARSITY_EIGEN_SHA}
                     FIND_PACKAGE_ARGS 3.4 NO_MODULE)
FetchContent_Declare(xsimd URL ${SPARSITY_XSIMD_URL} URL_HASH ${SPARSITY_XSIMD_SHA}
                     FIND_PACKAGE_ARGS 8.1)
FetchContent_Declare(nlohmann_json URL ${SPARSITY_JSON_URL} URL_HASH ${SPARSITY_JSON_SHA}
                     FIND_PACKAGE_ARGS 3.11)
set(EIGEN_BUILD_DOC OFF CACHE BOOL "" FORCE)
set(BUILD_TESTING_SAVED ${BUILD_TESTING})
FetchContent_MakeAvailable(Eigen3 xsimd nlohmann_json)

if(SPARSITY_BUILD_CLI)
  FetchContent_Declare(CLI11 URL ${SPARSITY_CLI11_URL} URL_HASH ${SPARSITY_CLI11_SHA}
                       FIND_PACKAGE_ARGS 2.1)
  FetchContent_MakeAvailable(CLI11)
endif()

if(SPARSITY_BUILD_TESTS)
  FetchContent_Declare(googletest URL ${SPARSITY_GTEST_URL} URL_HASH ${SPARSITY_GTEST_SHA}
                       FIND_PACKAGE_ARGS 1.12 NAMES GTest)
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  FetchContent_MakeAvailable(googletest)
  if(NOT TARGET GTest::gtest_main AND TARGET gtest_main)
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif()
endif()

if(SPARSITY_BUILD_BENCHMARKS)
  set(BENCHMARK_ENABLE_TESTING OFF CACHE BOOL "" FORCE)
  set(BENCHMARK_ENABLE_INSTALL OFF CACHE BOOL "" FORCE)
  FetchContent_Declare(benchmark URL ${SPARSITY_BENCH_URL} URL_HASH ${SPARSITY_BENCH_SHA}
                       FIND_PACKAGE_ARGS 1.7)
  FetchContent_MakeAvailable(benchmark)
endif()

# RE2 (linear-time regular expressions for name patterns): Debian's libre2-dev has no CMake package,
# only pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)

# With FETCHCONTENT_FULLY_DISCONNECTED a missing package configures "fine" and later links `-lxsimd`:
# fail here instead, naming the Debian package to install.
set(_sparsity_required
    "Eigen3::Eigen=libeigen3-dev" "xsimd=libxsimd-dev" "nlohmann_json::nlohmann_json=nlohmann-json3-dev")
if(SPARSITY_BUILD_CLI)
  list(APPEND _sparsity_required "CLI11::CLI11=libcli11-dev")
endif()
if(SPARSITY_BUILD_TESTS)
  list(APPEND _sparsity_required "GTest::gtest_main=libgtest-dev")
endif()
if(SPARSITY_BUILD_BENCHMARKS)
  list(APPEND _sparsity_required "benchmark::benchmark=libbenchmark-dev")
endif()
foreach(entry IN LISTS _sparsity_required)
  string(REPLACE "=" ";" pair "${entry}")
  list(GET pair 0 tgt)
  list(GET pair 1 pkg)
  if(NOT TARGET ${tgt})
    message(FATAL_ERROR "sparsity: dependency target ${tgt} not found; install the Debian package ${pkg}")
  endif()
endforeach()

# ONNX models (optional): the ModelProto classes of Debian's libonnx-dev and the protobuf runtime of
# libprotobuf-dev. Without them the library builds all the same and refuses .onnx files, saying why.
set(SPARSITY_HAVE_ONNX OFF)
if(SPARSITY_WITH_ONNX)
  find_package(Protobuf QUIET)
  if(Protobuf_FOUND)
    find_package(ONNX QUIET CONFIG)
  endif()
  if(Protobuf_FOUND AND TARGET onnx_proto)
    set(SPARSITY_HAVE_ONNX ON)
  else()
    message(STATUS "sparsity: ONNX support off (install libonnx-dev and libprotobuf-dev to read .onnx models)")
  endif()
endif()

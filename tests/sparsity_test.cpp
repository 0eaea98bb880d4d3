// The umbrella header: it compiles on its own and includes every public header but the opt-in Eigen one.
#include "sparsity/sparsity.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace sparsity {
namespace {

TEST(UmbrellaHeader, IncludesEveryPublicHeaderButEigen) {
  const std::filesystem::path include_dir =
      std::filesystem::path(SPARSITY_TEST_DATA_DIR) / ".." / ".." / "include" / "sparsity";
  std::ifstream in(include_dir / "sparsity.hpp");
  ASSERT_TRUE(in.good()) << include_dir;
  std::stringstream umbrella;
  umbrella << in.rdbuf();
  int headers = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(include_dir)) {
    if (entry.path().extension() != ".hpp") continue;
    const std::string rel = std::filesystem::relative(entry.path(), include_dir).generic_string();
    if (rel == "sparsity.hpp") continue;
    ++headers;
    const bool included = umbrella.str().find("#include \"sparsity/" + rel + "\"") != std::string::npos;
    if (rel == "core/eigen.hpp") {
      EXPECT_FALSE(included) << "eigen.hpp is opt-in";
    } else {
      EXPECT_TRUE(included) << "sparsity.hpp does not include sparsity/" << rel;
    }
  }
  EXPECT_GT(headers, 15);
}

}  // namespace
}  // namespace sparsity

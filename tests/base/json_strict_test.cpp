// parse_strict: documents, duplicate keys at any depth, nesting limit and syntax error offsets.
#include "base/json_strict.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sparsity::detail {
namespace {

TEST(JsonStrict, ParsesDocumentsAndKeepsKeyOrder) {
  Json j;
  StrictJsonError err;
  const std::string text = R"({"b": [1, 2.5, "x", null, true, {"z": 1, "a": [[]]}], "a": {}})";
  ASSERT_TRUE(parse_strict(text.data(), text.data() + text.size(), j, err));
  EXPECT_EQ(j.begin().key(), "b");
  EXPECT_EQ(j["b"][5]["a"][0], Json::array());
  EXPECT_EQ(j["b"][1], 2.5);
  const std::string scalar = "42";
  ASSERT_TRUE(parse_strict(scalar.data(), scalar.data() + scalar.size(), j, err));
  EXPECT_EQ(j, 42);
}

TEST(JsonStrict, DuplicateKeysAreFoundInLargeAndNestedObjects) {
  std::string text = "{";
  for (int i = 0; i < 5000; ++i) text += "\"k" + std::to_string(i) + "\": 1,";
  text += "\"inner\": {\"x\": 1, \"x\": 2}}";
  Json j;
  StrictJsonError err;
  EXPECT_FALSE(parse_strict(text.data(), text.data() + text.size(), j, err));
  EXPECT_EQ(err.kind, 1);
  EXPECT_EQ(err.key, "x");
  text = "{\"k7\": 1, \"k4999\": 2, \"k7\": 3}";
  EXPECT_FALSE(parse_strict(text.data(), text.data() + text.size(), j, err));
  EXPECT_EQ(err.key, "k7");
}

TEST(JsonStrict, NestingLimitAndSyntaxErrorOffsets) {
  Json j;
  StrictJsonError err;
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  EXPECT_FALSE(parse_strict(deep.data(), deep.data() + deep.size(), j, err));
  EXPECT_EQ(err.kind, 2);
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(parse_strict(ok.data(), ok.data() + ok.size(), j, err));
  const std::string bad = "{\"a\": tru}";
  EXPECT_FALSE(parse_strict(bad.data(), bad.data() + bad.size(), j, err));
  EXPECT_EQ(err.kind, 0);
  EXPECT_EQ(err.offset, 9u);  // the `}` where the literal "true" breaks off
  const std::string trailing = "{} x";
  EXPECT_FALSE(parse_strict(trailing.data(), trailing.data() + trailing.size(), j, err));
  EXPECT_EQ(err.kind, 0);
}

}  // namespace
}  // namespace sparsity::detail

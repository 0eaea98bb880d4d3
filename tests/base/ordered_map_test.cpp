// OrderedMap and Json objects: insertion order, lookups through the index, every mutation keeping it right.
#include "sparsity/base/ordered_map.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sparsity/base/json.hpp"

namespace sparsity {
namespace {

std::vector<std::string> keys_of(const OrderedMap<std::string, int>& m) {
  std::vector<std::string> k;
  for (const auto& [key, v] : m) k.push_back(key);
  return k;
}

TEST(OrderedMap, KeepsInsertionOrderAndFindsAtEverySize) {
  OrderedMap<std::string, int> m;
  std::vector<std::string> expect;
  for (int i = 0; i < 100; ++i) {  // crosses the size where the index starts
    const std::string k = "k" + std::to_string((i * 37) % 100);
    EXPECT_TRUE(m.emplace(k, i).second);
    EXPECT_FALSE(m.emplace(k, -1).second) << "a second insert keeps the first value";
    expect.push_back(k);
    for (int j = 0; j <= i; ++j) ASSERT_EQ(m.find(expect[static_cast<size_t>(j)])->second, j) << i;
    EXPECT_EQ(m.count("absent"), 0u);
  }
  EXPECT_EQ(keys_of(m), expect);
}

TEST(OrderedMap, EraseClearAndCopyKeepLookupsRight) {
  OrderedMap<std::string, int> m;
  for (int i = 0; i < 40; ++i) m.emplace("k" + std::to_string(i), i);
  EXPECT_EQ(m.erase(std::string("k3")), 1u);
  EXPECT_EQ(m.erase(std::string("k3")), 0u);
  m.erase(m.find("k0"));
  EXPECT_EQ(m.find("k3"), m.end());
  EXPECT_EQ(m.find("k39")->second, 39);  // positions after the erased ones moved
  EXPECT_EQ(m.begin()->first, "k1");
  OrderedMap<std::string, int> copy = m;
  copy.emplace("new", 1);
  EXPECT_EQ(copy.find("new")->second, 1);
  EXPECT_EQ(m.find("new"), m.end());
  EXPECT_EQ(copy.find("k20")->second, 20);
  m.clear();
  EXPECT_EQ(m.find("k20"), m.end());
  m.emplace("k20", 5);
  EXPECT_EQ(m.find("k20")->second, 5);
  m["k21"] = 7;
  EXPECT_EQ(m.at("k21"), 7);
  EXPECT_THROW(m.at("nope"), std::out_of_range);
}

TEST(OrderedMap, JsonObjectsUseItAndKeepTheirOrder) {
  Json j = Json::object();
  for (int i = 99; i >= 0; --i) j["key" + std::to_string(i)] = i;
  EXPECT_EQ(j.begin().key(), "key99");
  EXPECT_EQ(j["key5"], 5);
  EXPECT_TRUE(j.contains("key0"));
  j.erase("key50");
  EXPECT_FALSE(j.contains("key50"));
  EXPECT_EQ(j.at("key49"), 49);
  const Json parsed = Json::parse(j.dump());
  EXPECT_EQ(parsed, j);
  EXPECT_EQ(parsed.begin().key(), "key99");
}

}  // namespace
}  // namespace sparsity

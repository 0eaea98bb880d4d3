// Tests of NearlyDiagonalSparsifier: torch's TestNearlyDiagonalSparsifier plus validation order,
// rectangular weights and mask dtypes.
#include "sparsity/sparsifier/nearly_diagonal_sparsifier.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "sparsity/nn/containers.hpp"
#include "sparsity/nn/linear.hpp"
#include "sparsity/core/parametrize.hpp"
#include "sparsity/sparsifier/fake_sparsity.hpp"

#include "test_util.hpp"

namespace sparsity {
namespace {

using nn::Linear;
using nn::LinearOptions;
using nn::Sequential;
using testing::simple_linear;

Tensor state_mask(const BaseSparsifier& sp, const std::string& fqn) {
  for (const auto& [name, st] : sp.state()) {
    if (name == fqn) return st.mask;
  }
  ADD_FAILURE() << "no state for " << fqn;
  return {};
}

// 1 where |r - c| <= d (d < 0: nowhere).
bool band(int64_t r, int64_t c, int64_t d) { return d >= 0 && std::llabs(r - c) <= d; }

TEST(NearlyDiagonalSparsifier, Constructor) {
  auto model = simple_linear();
  NearlyDiagonalSparsifier sp(1);
  sp.prepare(model, std::nullopt);
  const std::set<std::string> expected{"seq.0", "seq.1", "seq.2", "linear1", "linear2"};
  ASSERT_EQ(sp.groups().size(), 5u);
  for (const auto& g : sp.groups()) {
    EXPECT_EQ(type_before_parametrizations(*g.module), "Linear");
    EXPECT_TRUE(expected.count(g.module_fqn())) << g.module_fqn();
    EXPECT_EQ(g.config.at("nearliness"), 1);
  }
}

TEST(NearlyDiagonalSparsifier, Prepare) {
  auto model = simple_linear();
  NearlyDiagonalSparsifier sp(1);
  sp.prepare(model, std::nullopt);
  for (const auto& g : sp.groups()) {
    ASSERT_TRUE(is_parametrized(*g.module, "weight"));
    auto chain = parametrizations_of(*g.module, "weight");
    ASSERT_FALSE(chain.empty());
    EXPECT_NE(dynamic_cast<FakeSparsity*>(chain[0].get()), nullptr);
  }
}

TEST(NearlyDiagonalSparsifier, MaskSquash) {
  auto model = simple_linear();
  NearlyDiagonalSparsifier sp(1);
  sp.prepare(model, std::nullopt);
  std::vector<Tensor> before;
  for (const auto& g : sp.groups()) before.push_back(parametrization_original(*g.module, "weight").clone());
  sp.step();
  sp.squash_mask();
  for (size_t i = 0; i < sp.groups().size(); ++i) {
    const auto& g = sp.groups()[i];
    EXPECT_FALSE(is_parametrized(*g.module));
    const Tensor w = g.module->parameter("weight");
    for (int64_t r = 0; r < w.size(0); ++r) {
      for (int64_t c = 0; c < w.size(1); ++c) {
        EXPECT_EQ(w.get({r, c}), r == c ? before[i].get({r, c}) : 0.0) << g.tensor_fqn() << " " << r << "," << c;
      }
    }
  }
}

TEST(NearlyDiagonalSparsifier, Step) {
  auto model = simple_linear();
  NearlyDiagonalSparsifier sp(1);
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  const Tensor mask = state_mask(sp, "linear1.weight");
  EXPECT_EQ(count_nonzero(mask), 16);
  sp.step();
  EXPECT_TRUE(equal(mask, Tensor::eye(4, 4)));
  for (int i = 0; i < 1000; ++i) sp.step();
  EXPECT_TRUE(equal(mask, Tensor::eye(4, 4)));
  EXPECT_TRUE(mask.is_same(state_mask(sp, "linear1.weight")));
}

// nearliness -1..99 on Linear(32,32) of ones: an error iff (n > 0 and even) or n // 2 >= 32 (floor
// division), else the squashed weight is 1 exactly where |r - c| <= n // 2 (all zero for n <= 0).
TEST(NearlyDiagonalSparsifier, SparsityLevels) {
  for (int64_t n = -1; n < 100; ++n) {
    auto model = std::make_shared<Sequential>();
    auto lin = std::make_shared<Linear>(LinearOptions(32, 32).bias(false));
    lin->parameter("weight").fill_(1.0);
    model->push_back(lin);
    NearlyDiagonalSparsifier sp(n);
    sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "0.weight"}}});
    const int64_t d = n >= 0 ? n / 2 : -1;  // Python's -1 // 2 == -1
    const bool should_fail = (n > 0 && n % 2 == 0) || d >= 32;
    if (should_fail) {
      EXPECT_THROW(sp.step(), Error) << n;
      continue;
    }
    sp.step();
    sp.squash_mask();
    const Tensor w = lin->parameter("weight");
    for (int64_t r = 0; r < 32; ++r) {
      for (int64_t c = 0; c < 32; ++c) {
        ASSERT_EQ(w.get({r, c}), (n > 0 && band(r, c, d)) ? 1.0 : 0.0) << "n " << n << " at " << r << "," << c;
      }
    }
  }
}

// Spec §0.9: a rejected nearliness leaves the mask as it was (torch zeroes it first).
TEST(NearlyDiagonalSparsifier, ValidatesBeforeTouchingTheMask) {
  for (Json bad : {Json(2), Json(9), Json("three"), Json(1.5)}) {
    auto model = std::make_shared<Sequential>();
    model->push_back(std::make_shared<Linear>(LinearOptions(4, 6).bias(false)));
    NearlyDiagonalSparsifier sp(1);
    sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "0.weight"}, {"nearliness", bad}}});
    const Tensor mask = state_mask(sp, "0.weight");
    try {
      sp.step();
      ADD_FAILURE() << "no error for nearliness " << bad.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("0.weight"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("nearliness"), std::string::npos) << e.what();
    }
    EXPECT_EQ(count_nonzero(mask), 24) << bad.dump();
  }
}

// Rectangular weights (6 rows, 4 cols) and a user u8 mask, which stays u8.
TEST(NearlyDiagonalSparsifier, RectangularWeightAndUserMaskDtype) {
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Linear>(LinearOptions(4, 6).bias(false)));
  ConfigEntry entry(Json{{"tensor_fqn", "0.weight"}, {"nearliness", 3}});
  entry.mask = Tensor::ones({6, 4}, DType::u8);
  NearlyDiagonalSparsifier sp;
  sp.prepare(model, std::vector<ConfigEntry>{entry});
  sp.step();
  const Tensor mask = state_mask(sp, "0.weight");
  EXPECT_TRUE(mask.is_same(entry.mask));
  EXPECT_EQ(mask.dtype(), DType::u8);
  for (int64_t r = 0; r < 6; ++r) {
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(mask.get({r, c}), band(r, c, 1) ? 1.0 : 0.0) << r << "," << c;
  }
}

TEST(NearlyDiagonalSparsifier, NonContiguousUserMask) {
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Linear>(LinearOptions(3, 5).bias(false)));  // weight 5x3
  ConfigEntry entry(Json{{"tensor_fqn", "0.weight"}});
  entry.mask = Tensor::ones({3, 5}, DType::f32).t();  // 5x3 view
  NearlyDiagonalSparsifier sp(1);
  sp.prepare(model, std::vector<ConfigEntry>{entry});
  sp.step();
  EXPECT_TRUE(state_mask(sp, "0.weight").is_same(entry.mask));
  EXPECT_TRUE(equal(entry.mask, Tensor::eye(5, 3)));
}

TEST(NearlyDiagonalSparsifier, NonTwoDimensionalWeightIsRejected) {
  auto model = std::make_shared<Module>("Model");
  auto layer = std::make_shared<Module>("Linear");
  layer->register_parameter("weight", Tensor::ones({5}));
  model->register_module("layer", layer);
  NearlyDiagonalSparsifier sp(1);
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "layer.weight"}}});
  EXPECT_THROW(sp.step(), Error);
}

}  // namespace
}  // namespace sparsity

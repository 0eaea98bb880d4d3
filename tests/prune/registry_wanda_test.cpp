// Tests of the "WandaSparsifier" entry of the configuration registry: keys, validation, construction.
#include <string>

#include <gtest/gtest.h>

#include "sparsity/nn/linear.hpp"
#include "sparsity/prune/registry.hpp"
#include "sparsity/sparsifier/wanda_sparsifier.hpp"

#include "test_util.hpp"

namespace sparsity {
namespace {

PruneConfig parse(const std::string& text) { return parse_prune_config(std::string_view(text), "c.json"); }

TEST(RegistryWanda, IsRegistered) {
  const auto names = sparsifier_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "WandaSparsifier"), names.end());
  EXPECT_TRUE(sparsifier_spec("WandaSparsifier").has_sparsity_level);
}

TEST(RegistryWanda, ParsesAndBuilds) {
  const PruneConfig c = parse(R"({"sparsifier": "WandaSparsifier",
    "defaults": {"sparsity_level": 1.0, "sparse_block_shape": [1, 4], "zeros_per_block": 2, "comparison": "row"},
    "config": [{"tensor_fqn": "fc.weight", "comparison": "tensor", "sparsity_level": 0.5,
                "sparse_block_shape": [1, 1], "zeros_per_block": null}]})");
  auto sp = make_sparsifier(c.sparsifier, c.defaults);
  auto* w = dynamic_cast<WandaSparsifier*>(sp.get());
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->options().sparsity_level_, 1.0);
  EXPECT_EQ(w->options().sparse_block_shape_, (std::pair<int64_t, int64_t>{1, 4}));
  EXPECT_EQ(w->options().zeros_per_block_, 2);
  EXPECT_EQ(w->options().comparison_, WandaComparison::row);
  auto t = make_sparsifier("WandaSparsifier", {{"comparison", "tensor"}});
  EXPECT_EQ(dynamic_cast<WandaSparsifier*>(t.get())->options().comparison_, WandaComparison::tensor);

  // The configured entry runs: per-tensor comparison, k = round(0.5 * 32) = 16.
  auto model = std::make_shared<Module>("Model");
  model->register_module("fc", std::make_shared<nn::Linear>(nn::LinearOptions(8, 4).bias(false)));
  w->set_activation_norms("fc.weight", Tensor::ones({8}));
  std::vector<ConfigEntry> entries;
  for (const auto& e : *c.config) entries.emplace_back(e);
  sp->prepare(model, entries);
  sp->step();
  EXPECT_EQ(count_nonzero(sp->state()[0].second.mask), 16);
}

TEST(RegistryWanda, RejectsBadValuesNamingTheKey) {
  auto bad = [](const std::string& defaults, const std::string& key) {
    EXPECT_SPARSITY_ERROR(parse(R"({"sparsifier": "WandaSparsifier", "defaults": )" + defaults + "}"),
                          InvalidArgument, "c.json, key defaults." + key);
  };
  bad(R"({"sparsity_level": 1.5})", "sparsity_level");
  bad(R"({"sparsity_level": "x"})", "sparsity_level");
  bad(R"({"sparse_block_shape": [2, 4]})", "sparse_block_shape");
  bad(R"({"sparse_block_shape": [1, 0]})", "sparse_block_shape");
  bad(R"({"sparse_block_shape": [1]})", "sparse_block_shape");
  bad(R"({"zeros_per_block": -1})", "zeros_per_block");
  bad(R"({"zeros_per_block": 1.5})", "zeros_per_block");
  bad(R"({"comparison": "column"})", "comparison");
  bad(R"({"norm": "L1"})", "norm");  // a WeightNorm key, unknown here
  EXPECT_SPARSITY_ERROR(parse(R"({"sparsifier": "WandaSparsifier", "config": [{"tensor_fqn": "a.weight", "comparison": 3}]})"),
                        InvalidArgument, "key config[0].comparison");
}

}  // namespace
}  // namespace sparsity

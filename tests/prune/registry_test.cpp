// Tests of the sparsifier/scheduler registry and the JSON pruning configuration.
#include "sparsity/prune/registry.hpp"

#include <string>

#include <gtest/gtest.h>

#include "sparsity/nn/linear.hpp"
#include "sparsity/sparsifier/nearly_diagonal_sparsifier.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

namespace sparsity {
namespace {

PruneConfig parse(const std::string& text) { return parse_prune_config(std::string_view(text), "c.json"); }

TEST(Registry, ParsesTheDocumentedExample) {
  const PruneConfig c = parse(R"({"sparsifier": "WeightNormSparsifier",
    "defaults": {"sparsity_level": 0.5, "sparse_block_shape": [1, 4], "zeros_per_block": 4, "norm": "L2"},
    "config": [{"tensor_fqn": "layers.0.weight", "sparsity_level": 0.7}],
    "scheduler": {"type": "CubicSL", "init_sl": 0.0, "init_t": 0, "delta_t": 10, "total_t": 100, "initially_zero": false},
    "steps": 3})");
  EXPECT_EQ(c.sparsifier, "WeightNormSparsifier");
  EXPECT_EQ(c.defaults["sparse_block_shape"], Json::array({1, 4}));
  ASSERT_TRUE(c.config.has_value());
  ASSERT_EQ(c.config->size(), 1u);
  EXPECT_EQ((*c.config)[0]["sparsity_level"], 0.7);
  EXPECT_EQ(c.scheduler["type"], "CubicSL");
  EXPECT_EQ(c.steps, 3);
  EXPECT_EQ(parse_prune_config(c.to_json(), "again").to_json(), c.to_json());
}

TEST(Registry, DefaultsWhenKeysAreAbsent) {
  const PruneConfig c = parse(R"({"sparsifier": "NearlyDiagonalSparsifier", "config": null})");
  EXPECT_FALSE(c.config.has_value());
  EXPECT_TRUE(c.scheduler.is_null());
  EXPECT_EQ(c.steps, 1);
  EXPECT_EQ(c.defaults, Json::object());
}

TEST(Registry, BuildsConfiguredSparsifiers) {
  auto wn = make_sparsifier("WeightNormSparsifier",
                            {{"sparsity_level", 0.3}, {"sparse_block_shape", {2, 2}}, {"zeros_per_block", 3}, {"norm", "L1"}});
  auto* w = dynamic_cast<WeightNormSparsifier*>(wn.get());
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->options().sparsity_level_, 0.3);
  EXPECT_EQ(w->options().sparse_block_shape_, (std::pair<int64_t, int64_t>{2, 2}));
  EXPECT_EQ(w->options().zeros_per_block_, 3);
  EXPECT_EQ(w->options().norm_, kernels::Norm::L1);
  auto nd = make_sparsifier("NearlyDiagonalSparsifier", {{"nearliness", 5}});
  ASSERT_NE(dynamic_cast<NearlyDiagonalSparsifier*>(nd.get()), nullptr);
  EXPECT_EQ(nd->defaults()["nearliness"], 5);
  EXPECT_THROW(make_sparsifier("Nope", Json::object()), Error);
}

TEST(Registry, SchedulerFromJsonRampsTheGroups) {
  auto model = std::make_shared<Module>("Model");
  model->register_module("fc", std::make_shared<nn::Linear>(nn::LinearOptions(8, 4).bias(false)));
  auto sp = make_sparsifier("WeightNormSparsifier", {{"sparsity_level", 0.8}});
  sp->prepare(model, std::nullopt);
  auto sched = make_scheduler(*sp, {{"type", "CubicSL"}, {"init_sl", 0.2}, {"delta_t", 1}, {"total_t", 2}});
  EXPECT_EQ(sched->class_name(), "CubicSL");
  EXPECT_EQ(sched->base_sl(), std::vector<double>{0.8});
  // Epoch 0 after construction: s_0 = 0.2.
  EXPECT_DOUBLE_EQ(sp->groups()[0].config["sparsity_level"].get<double>(), 0.2);
  sp->step();
  sched->step();  // epoch 1: 0.8 + (0.2 - 0.8) * (1 - 1/2)^3 = 0.725
  EXPECT_DOUBLE_EQ(sp->groups()[0].config["sparsity_level"].get<double>(), 0.725);
}

TEST(Registry, CustomSparsifierCanBeRegistered) {
  SparsifierSpec spec;
  spec.make = [](const Json& d) { return std::make_unique<NearlyDiagonalSparsifier>(d.value("band", 1)); };
  spec.default_keys = {"band"};
  spec.group_keys = {};
  spec.check = [](const std::string& key, const Json& v, const std::string& where) {
    if (key == "band" && !v.is_number_integer()) throw Error(ErrorCode::InvalidArgument, "band must be an integer (" + where + ")");
  };
  spec.has_sparsity_level = false;
  register_sparsifier("BandSparsifier", spec);
  const auto names = sparsifier_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "BandSparsifier"), names.end());
  const PruneConfig c = parse(R"({"sparsifier": "BandSparsifier", "defaults": {"band": 3}})");
  EXPECT_EQ(make_sparsifier(c.sparsifier, c.defaults)->defaults()["nearliness"], 3);
  try {
    parse(R"({"sparsifier": "BandSparsifier", "defaults": {"band": "x"}})");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("key defaults.band"), std::string::npos) << e.what();
  }
}

// Each rejected configuration names its key.
TEST(Registry, RejectsWithTheOffendingKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([1])", "not a JSON object"},
      {R"({})", "key sparsifier"},
      {R"({"sparsifier": 3})", "key sparsifier"},
      {R"({"sparsifier": "Nope"})", "unknown sparsifier 'Nope'"},
      {R"({"sparsifier": "WeightNormSparsifier", "extra": 1})", "key extra"},
      {R"({"sparsifier": "WeightNormSparsifier", "defaults": []})", "key defaults"},
      {R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": 1.5}})", "key defaults.sparsity_level"},
      {R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": true}})", "key defaults.sparsity_level"},
      {R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparse_block_shape": [0, 4]}})", "key defaults.sparse_block_shape"},
      {R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparse_block_shape": [1, 4, 1]}})", "key defaults.sparse_block_shape"},
      {R"({"sparsifier": "WeightNormSparsifier", "defaults": {"zeros_per_block": -1}})", "key defaults.zeros_per_block"},
      {R"({"sparsifier": "WeightNormSparsifier", "defaults": {"norm": 2}})", "key defaults.norm"},
      {R"({"sparsifier": "WeightNormSparsifier", "defaults": {"nearliness": 3}})", "key defaults.nearliness"},
      {R"({"sparsifier": "WeightNormSparsifier", "config": [{"sparsity_level": 0.5}]})", "key config[0]"},
      {R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": ""}]})", "key config[0].tensor_fqn"},
      {R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": "a", "norm": "L3"}]})", "key config[0].norm"},
      {R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": "a"}, {"tensor_fqn": "a"}]})", "key config[1].tensor_fqn"},
      {R"({"sparsifier": "WeightNormSparsifier", "config": [3]})", "key config[0]"},
      {R"({"sparsifier": "WeightNormSparsifier", "scheduler": 1})", "key scheduler"},
      {R"({"sparsifier": "WeightNormSparsifier", "scheduler": {}})", "key scheduler.type"},
      {R"({"sparsifier": "WeightNormSparsifier", "scheduler": {"type": "CubicSL", "total_t": 1.5}})", "key scheduler.total_t"},
      {R"({"sparsifier": "WeightNormSparsifier", "scheduler": {"type": "CubicSL", "initially_zero": 1}})", "key scheduler.initially_zero"},
      {R"({"sparsifier": "WeightNormSparsifier", "scheduler": {"type": "CubicSL", "gamma": 1}})", "key scheduler.gamma"},
      {R"({"sparsifier": "NearlyDiagonalSparsifier", "defaults": {"nearliness": 4}})", "key defaults.nearliness"},
      {R"({"sparsifier": "NearlyDiagonalSparsifier", "scheduler": {"type": "CubicSL"}})", "key scheduler"},
      {R"({"sparsifier": "WeightNormSparsifier", "steps": 1.5})", "key steps"},
      {R"({"sparsifier": "WeightNormSparsifier", "steps": 10000000})", "key steps"},
      {R"({"sparsifier": "WeightNormSparsifier", "steps": 1, "steps": 2})", "duplicate key 'steps'"},
      {R"({"sparsifier": "WeightNormSparsifier",)", "byte offset"},
  };
  for (const auto& [text, fragment] : cases) {
    try {
      parse(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << text;
      EXPECT_NE(msg.find(fragment), std::string::npos) << text << " -> " << msg;
      EXPECT_NE(msg.find("c.json"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace sparsity

// prune::run in process: its outputs equal the library lifecycle's, for every thread count; errors located.
#include "sparsity/prune/engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "prune/pool.hpp"
#include "prune/targets.hpp"
#include "sparsity/core/ops.hpp"
#include "sparsity/io/checkpoint.hpp"
#include "sparsity/io/safetensors.hpp"
#include "sparsity/prune/state_file.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"
#include "temp_dir.hpp"
#include "test_util.hpp"

namespace sparsity::prune {
namespace {

using sparsity::testing::random_tensor;

using sparsity::testing::file_bytes;

// A model with weights in every float dtype, shapes the blocks do not divide, biases and a pass-through
// tensor; the library's own Module tree of the same tensors.
struct Model {
  std::string dir, path;
  NamedList<Tensor> tensors;
  Model() : dir(sparsity::testing::fresh_temp_dir("sparsity_engine_")), path(dir + "/m.safetensors") {
    tensors = {{"enc.fc1.weight", random_tensor({24, 36}, 1, DType::f32)},
               {"enc.fc1.bias", random_tensor({24}, 2, DType::f32)},
               {"enc.fc2.weight", random_tensor({13, 24}, 3, DType::bf16)},
               {"dec.0.weight", random_tensor({40, 13}, 4, DType::f16)},
               {"dec.1.weight", random_tensor({9, 40}, 5, DType::f64)},
               {"ids", Tensor::from_values({1, 2, 3}, DType::i64)}};
    io::save_safetensors(path, tensors, {{"format", "pt"}});
  }
  // The same tensors as an in-memory module tree (owned copies).
  ModulePtr module_tree_copy() const {
    auto root = std::make_shared<Module>("Model");
    for (const auto& [name, t] : tensors) {
      ModulePtr cur = root;
      size_t start = 0;
      for (size_t dot = name.find('.'); dot != std::string::npos;
           start = dot + 1, dot = name.find('.', start)) {
        const std::string part = name.substr(start, dot - start);
        if (!cur->has_child(part))
          cur->register_module(part, std::make_shared<Module>(t.dim() == 2 ? "Linear" : "Module"));
        cur = cur->child(part);
      }
      cur->register_parameter(name.substr(start), t.clone());
    }
    return root;
  }
};

PruneConfig ramp_config() {
  return parse_prune_config(
      R"({"sparsifier": "WeightNormSparsifier",
          "defaults": {"sparsity_level": 0.6, "sparse_block_shape": [1, 4], "norm": "L1"},
          "config": [{"tensor_fqn": "enc.fc1.weight", "sparse_block_shape": [2, 3]},
                     {"tensor_fqn": "enc.fc2.weight"},
                     {"tensor_fqn": "dec.0.weight", "sparsity_level": 1.0, "zeros_per_block": 2},
                     {"tensor_fqn": "dec.1.weight", "sparse_block_shape": [1, 1]}],
          "scheduler": {"type": "CubicSL", "init_sl": 0.1, "init_t": 0, "delta_t": 1, "total_t": 3},
          "steps": 3})",
      "inline");
}

TEST(PruneEngine, OutputsEqualTheLibraryLifecycleForEveryThreadCount) {
  Model m;
  const PruneConfig cfg = ramp_config();

  // The reference: prepare, 3 x (step, scheduler step), squash_mask on the in-memory model.
  ModulePtr ref = m.module_tree_copy();
  auto sp = make_sparsifier(cfg.sparsifier, cfg.defaults);
  std::vector<ConfigEntry> entries;
  for (const auto& e : *cfg.config) entries.emplace_back(e);
  sp->prepare(ref, entries);
  auto sched = make_scheduler(*sp, cfg.scheduler);
  for (int s = 0; s < 3; ++s) {
    sp->step();
    sched->step();
  }
  std::map<std::string, Tensor> masks;
  for (const auto& [fqn, st] : sp->state()) masks[fqn] = mask_to_u8(st.mask);
  sp->squash_mask();
  std::map<std::string, Tensor> expected;
  for (const auto& [name, t] : ref->named_parameters()) expected[name] = t;

  std::string first_output;
  for (int threads : {1, 2, 5}) {
    Options o;
    o.model = m.path;
    o.config = cfg;
    o.output = m.dir + "/out" + std::to_string(threads) + ".safetensors";
    o.masks = m.dir + "/masks" + std::to_string(threads) + ".safetensors";
    o.threads = threads;
    o.durable = false;
    const Report r = run(o);
    ASSERT_EQ(r.layers.size(), 4u);
    EXPECT_EQ(r.steps_done, 3);
    auto out = io::SafetensorsFile::open(o.output);
    for (const auto& [name, t] : expected) {
      const Tensor got = out->tensor(name);
      EXPECT_TRUE(bitwise_equal(got, t)) << name << " with " << threads << " threads";
    }
    EXPECT_TRUE(bitwise_equal(out->tensor("ids"), m.tensors.back().second));
    auto mf = io::SafetensorsFile::open(o.masks);
    for (const auto& [fqn, mask] : masks) EXPECT_TRUE(bitwise_equal(mf->tensor(fqn), mask)) << fqn;
    // The output keeps the input's header byte for byte (same names, dtypes, shapes, metadata, layout).
    const std::string in = file_bytes(m.path), got = file_bytes(o.output);
    ASSERT_EQ(in.size(), got.size());
    const size_t header = io::SafetensorsFile::open(m.path)->data_begin();
    EXPECT_EQ(in.substr(0, header), got.substr(0, header));
    if (first_output.empty()) first_output = got;
    EXPECT_EQ(got, first_output) << threads << " threads";
  }
}

TEST(PruneEngine, AutoConfigIsMakeConfigFromModelOverTheNames) {
  Model m;
  const io::Checkpoint ckpt = io::Checkpoint::open(m.path);
  WeightNormSparsifier sp(0.5, {1, 4});
  const auto targets =
      select_targets(ckpt, parse_prune_config(R"({"sparsifier": "WeightNormSparsifier"})", "x"), sp, "x")
          .targets;
  // torch's LIFO order over {enc: {fc1, fc2}, dec: {0, 1}}: dec's Linears first, each level reversed.
  std::vector<std::string> fqns;
  for (const auto& t : targets) fqns.push_back(t.fqn);
  EXPECT_EQ(fqns,
            (std::vector<std::string>{"dec.0.weight", "dec.1.weight", "enc.fc1.weight", "enc.fc2.weight"}));
  const ModulePtr tree = module_tree(ckpt.entries(), /*views=*/true, /*as_layers=*/true);
  EXPECT_EQ(tree->get_submodule("enc.fc1")->type_name(), "Linear");
  EXPECT_EQ(tree->get_submodule("enc")->type_name(), "Module");
  // The views are the file's bytes, not copies.
  EXPECT_TRUE(tree->get_submodule("enc.fc1")->tensor("weight").is_read_only());
}

// Selection by names and patterns, exclusions, module kinds, and what is reported as skipped.
std::vector<std::string> selected(const Model& m, const char* config,
                                  std::vector<SkipReport>* skipped = nullptr) {
  const io::Checkpoint ckpt = io::Checkpoint::open(m.path);
  const PruneConfig cfg = parse_prune_config(config, "c.json");
  auto sp = make_sparsifier(cfg.sparsifier, cfg.defaults);
  Selection sel = select_targets(ckpt, cfg, *sp, "c.json");
  if (skipped) *skipped = sel.skipped;
  std::vector<std::string> fqns;
  for (const auto& t : sel.targets) fqns.push_back(t.fqn);
  return fqns;
}

TEST(PruneSelection, TargetsIgnoreAndModuleNames) {
  Model m;
  using V = std::vector<std::string>;
  EXPECT_EQ(selected(m, R"({"sparsifier": "WeightNormSparsifier", "targets": ["re:dec\\."]})"),
            (V{"dec.0.weight", "dec.1.weight"}));
  // A module name means its weight; an exact tensor name may be anything floating and 2-D.
  EXPECT_EQ(selected(m, R"({"sparsifier": "WeightNormSparsifier", "targets": ["enc.fc2", "dec.1.weight"]})"),
            (V{"enc.fc2.weight", "dec.1.weight"}));
  // Patterns match from the start of the module name; ignore removes from any selection.
  EXPECT_EQ(
      selected(m, R"({"sparsifier": "WeightNormSparsifier", "targets": ["re:.*fc"], "ignore": ["enc.fc1"]})"),
      (V{"enc.fc2.weight"}));
  EXPECT_EQ(selected(m, R"({"sparsifier": "WeightNormSparsifier", "ignore": ["re:enc"]})"),
            (V{"dec.0.weight", "dec.1.weight"}));
  // config entries add their tensors to targets and give their options.
  EXPECT_EQ(selected(m, R"({"sparsifier": "WeightNormSparsifier", "targets": ["re:dec\\.0"],
                            "config": [{"tensor_fqn": "enc.fc1.weight", "sparsity_level": 0.9}]})"),
            (V{"dec.0.weight", "enc.fc1.weight"}));
  std::vector<SkipReport> skipped;
  selected(m, R"({"sparsifier": "WeightNormSparsifier", "ignore": ["dec.1"]})", &skipped);
  std::map<std::string, uint64_t> tensors_by_reason;
  for (const auto& s : skipped) tensors_by_reason[s.reason] = s.tensors;
  EXPECT_EQ(tensors_by_reason["ignored"], 1u);
  EXPECT_EQ(tensors_by_reason["not floating point"], 1u);     // ids
  EXPECT_EQ(tensors_by_reason["not a weight (rank 1)"], 1u);  // enc.fc1.bias
}

TEST(PruneSelection, MistakesAreNamedWithAHint) {
  Model m;
  EXPECT_SPARSITY_ERROR(
      selected(m, R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": "enc.fc1"}]})"),
      InvalidArgument, "did you mean 'enc.fc1.weight'?", "c.json", "key config[0].tensor_fqn");
  EXPECT_SPARSITY_ERROR(
      selected(m, R"({"sparsifier": "WeightNormSparsifier", "targets": ["enc.fc1.wieght"]})"),
      InvalidArgument, "did you mean 'enc.fc1.weight'", "key targets[0]");
  EXPECT_SPARSITY_ERROR(selected(m, R"({"sparsifier": "WeightNormSparsifier", "targets": ["re:nothing"]})"),
                        InvalidArgument, "matches no module name", "key targets[0]");
  EXPECT_SPARSITY_ERROR(selected(m, R"({"sparsifier": "WeightNormSparsifier", "targets": ["re:("]})"),
                        InvalidArgument, "invalid pattern", "key targets[0]");
  EXPECT_SPARSITY_ERROR(selected(m, R"({"sparsifier": "WeightNormSparsifier", "ignore": ["re:.*"]})"),
                        InvalidArgument, "selects no tensor", "4 ignored");
  EXPECT_SPARSITY_ERROR(selected(m, R"({"sparsifier": "WeightNormSparsifier", "config": []})"),
                        InvalidArgument, "selects no tensor", "not selected by the config");
  EXPECT_SPARSITY_ERROR(selected(m, R"({"sparsifier": "WeightNormSparsifier", "module_types": ["Dense"]})"),
                        InvalidArgument, "module kind", "key module_types[0]");
}

TEST(PruneSelection, AutoConfigLeavesOutWidthsAnNMGroupDoesNotDivide) {
  Model m;  // widths 36, 24, 13, 40: 13 is not a multiple of 4
  std::vector<SkipReport> skipped;
  EXPECT_EQ(selected(m,
                     R"({"sparsifier": "WeightNormSparsifier",
                         "defaults": {"sparsity_level": 1.0, "sparse_block_shape": [1, 4], "zeros_per_block": 2}})",
                     &skipped),
            (std::vector<std::string>{"dec.1.weight", "enc.fc1.weight", "enc.fc2.weight"}));
  bool reported = false;
  for (const auto& s : skipped)
    reported |= s.reason.find("does not divide") != std::string::npos && s.tensors == 1;
  EXPECT_TRUE(reported);
  // Named explicitly, the same tensor is pruned with torch's semantics.
  EXPECT_EQ(selected(m, R"({"sparsifier": "WeightNormSparsifier", "targets": ["dec.0"],
                            "defaults": {"sparsity_level": 1.0, "sparse_block_shape": [1, 4], "zeros_per_block": 2}})"),
            (std::vector<std::string>{"dec.0.weight"}));
}

TEST(PruneEngine, ReportsTheModelsSparsityBeforeAndAfter) {
  Model m;
  Options o;
  o.model = m.path;
  o.config = parse_prune_config(
      R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": 0.5, "sparse_block_shape": [1, 1]}})",
      "c");
  const Report r = run(o);
  uint64_t params = 0, pruned = 0;
  for (const auto& [name, t] : m.tensors) {
    if (is_floating(t.dtype())) params += static_cast<uint64_t>(t.numel());
  }
  for (const auto& l : r.layers) {
    pruned += l.zeros_after;
    ASSERT_TRUE(l.expected_sparsity.has_value());
    EXPECT_DOUBLE_EQ(*l.expected_sparsity, 0.5);
  }
  EXPECT_EQ(r.parameters, params);
  EXPECT_EQ(r.zeros_before, 0u);  // random values have no zeros
  EXPECT_EQ(r.zeros_after, pruned);
  // 24*36/2 + 13*24/2 + 40*13/2 + 9*40/2 elements are pruned (k = round(0.5 n), no zero before).
  EXPECT_EQ(pruned, uint64_t{432 + 156 + 260 + 180});
}

TEST(PruneEngine, ResumedRunEqualsOneLongRun) {
  Model m;
  PruneConfig cfg = ramp_config();
  Options o;
  o.model = m.path;
  o.config = cfg;
  o.durable = false;
  o.output = m.dir + "/three.safetensors";
  run(o);
  cfg.steps = 2;
  o.config = cfg;
  o.output = m.dir + "/two.safetensors";
  o.state = m.dir + "/s.safetensors";
  run(o);
  cfg.steps = 1;
  o.config = cfg;
  o.output = m.dir + "/resumed.safetensors";
  o.resume = o.state;
  const Report r = run(o);
  EXPECT_EQ(r.steps_done, 3);
  EXPECT_EQ(file_bytes(m.dir + "/resumed.safetensors"), file_bytes(m.dir + "/three.safetensors"));
}

TEST(PruneEngine, LibraryErrorsGetTheTensorsLocation) {
  Model m;
  Options o;
  o.model = m.path;
  o.config = parse_prune_config(
      R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": "enc.fc1.weight", "zeros_per_block": 9}]})",
      "inline");
  o.output = m.dir + "/o.safetensors";
  try {
    run(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    ASSERT_EQ(e.where().size(), 2u) << e.what();
    EXPECT_EQ(e.where()[1], "tensor 'enc.fc1.weight'");
    EXPECT_NE(e.message().find("zeros_per_block"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::ifstream(o.output).good()) << "an output appeared after an error";
}

// ---- the global scope ----------------------------------------------------------------------------

// torch.nn.utils.prune.global_unstructured(L1Unstructured, amount) over two Linear weights and a Conv2d
// weight (tests/data/golden/global/gen_global_golden.py): the engine's global scope with (1, 1) blocks
// prunes the same entries, streaming one tensor at a time, for 1 and 2 threads.
TEST(PruneGlobal, EqualsTorchGlobalUnstructured) {
  const std::filesystem::path golden = std::filesystem::path(SPARSITY_TEST_DATA_DIR) / "golden" / "global";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(golden)) {
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 4u);
  const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_global_");
  const std::vector<std::string> names = {"fc1.weight", "fc2.weight", "conv.weight"};
  for (const auto& f : files) {
    std::map<std::string, std::string> meta;
    const auto tensors = io::load_safetensors(f.string(), &meta);
    std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
    const Json c = Json::parse(meta.at("config"));
    NamedList<Tensor> model;
    for (size_t i = 0; i < names.size(); ++i) model.emplace_back(names[i], by_name.at("weight_" + std::to_string(i)));
    model.emplace_back("fc1.bias", Tensor::from_values({1, 2, 3}, DType::f32));
    const std::string path = dir + "/m.safetensors";
    io::save_safetensors(path, model);
    for (int threads : {1, 2}) {
      Options o;
      o.model = path;
      o.config = parse_prune_config(
          Json{{"sparsifier", "WeightNormSparsifier"},
               {"scope", "global"},
               {"defaults", {{"sparsity_level", c.at("amount")}, {"sparse_block_shape", {1, 1}}, {"norm", "L1"}}},
               {"config", {{{"tensor_fqn", "fc1.weight"}}, {{"tensor_fqn", "fc2.weight"}}, {{"tensor_fqn", "conv.weight"}}}}},
          "inline");
      o.masks = dir + "/masks.safetensors";
      o.output = dir + "/out.safetensors";
      o.threads = threads;
      o.durable = false;
      const Report r = run(o);
      auto masks = io::SafetensorsFile::open(o.masks);
      for (size_t i = 0; i < names.size(); ++i) {
        EXPECT_TRUE(bitwise_equal(masks->tensor(names[i]), by_name.at("mask_" + std::to_string(i))))
            << f.filename() << " " << names[i] << " threads " << threads;
      }
      for (const auto& l : r.layers) EXPECT_FALSE(l.expected_sparsity) << "a share is not the level";
    }
  }
}

// With blocks, N:M inside them, mixed dtypes and per-tensor bounds, the engine's shares equal a global-scope
// WeightNormSparsifier's over the whole in-memory model.
TEST(PruneGlobal, EqualsTheLibrarysGlobalSparsifier) {
  Model m;
  const char* text = R"({"sparsifier": "WeightNormSparsifier", "scope": "global",
      "defaults": {"sparsity_level": 0.55, "sparse_block_shape": [1, 4], "max_sparsity": 0.9},
      "config": [{"tensor_fqn": "enc.fc1.weight", "sparse_block_shape": [2, 3]},
                 {"tensor_fqn": "enc.fc2.weight", "max_sparsity": 0.2},
                 {"tensor_fqn": "dec.0.weight", "zeros_per_block": 2},
                 {"tensor_fqn": "dec.1.weight", "min_sparsity": 0.7}]})";
  const PruneConfig cfg = parse_prune_config(text, "inline");
  ModulePtr ref = m.module_tree_copy();
  WeightNormSparsifier sp(WeightNormOptions().scope(WeightNormScope::global).sparsity_level(0.55).sparse_block_shape(1, 4));
  sp.defaults()["max_sparsity"] = 0.9;
  std::vector<ConfigEntry> entries;
  for (const auto& e : *cfg.config) entries.emplace_back(e);
  sp.prepare(ref, entries);
  sp.step();
  std::map<std::string, Tensor> expected;
  for (const auto& [fqn, st] : sp.state()) expected[fqn] = mask_to_u8(st.mask);
  // The bounds bind: fc2 at most 20% of its blocks, dec.1 at least 70%.
  const Tensor& fc2_mask = expected.at("enc.fc2.weight");
  const uint8_t* fc2_bits = fc2_mask.data<uint8_t>();
  // 13 x 24 in 1 x 4 blocks: 78 blocks, at most round(0.2 x 78) = 16 of them (64 weights).
  const auto fc2 = std::count(fc2_bits, fc2_bits + fc2_mask.numel(), 0);
  EXPECT_GT(fc2, 0);
  EXPECT_LE(fc2, 64);
  for (int threads : {1, 2}) {
    Options o;
    o.model = m.path;
    o.config = cfg;
    o.masks = m.dir + "/gm" + std::to_string(threads) + ".safetensors";
    o.threads = threads;
    o.durable = false;
    run(o);
    auto mf = io::SafetensorsFile::open(o.masks);
    for (const auto& [fqn, mask] : expected) {
      EXPECT_TRUE(bitwise_equal(mf->tensor(fqn), mask)) << fqn << " threads " << threads;
    }
  }
}

// Conv2d weights chosen by "module_types" are pruned as the library prunes N-D weights: the golden masks of
// tests/data/golden/nd (ASP's channel groups for N:M, torch's WeightNorm on the reshaped matrix otherwise).
TEST(PruneSelection, Conv2dWeightsThroughModuleTypesMatchTheNdGoldenMasks) {
  const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_conv_");
  for (const char* name : {"conv2d_2of4", "conv2d_blocks_2x4", "conv2d_unstructured"}) {
    std::map<std::string, std::string> meta;
    const auto tensors = io::load_safetensors(std::string(SPARSITY_TEST_DATA_DIR) + "/golden/nd/" + name + ".safetensors", &meta);
    std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
    Json defaults = Json::parse(meta.at("config"));
    defaults.erase("reference");
    if (defaults["zeros_per_block"].is_null()) defaults.erase("zeros_per_block");
    const std::string path = dir + "/m.safetensors";
    io::save_safetensors(path, {{"features.0.weight", by_name.at("weight")}, {"features.0.bias", random_tensor({3}, 1, DType::f32)}});
    Options o;
    o.model = path;
    o.config = parse_prune_config(Json{{"sparsifier", "WeightNormSparsifier"},
                                       {"module_types", {"Linear", "Conv2d"}},
                                       {"defaults", defaults}},
                                  "inline");
    o.masks = dir + "/masks.safetensors";
    o.durable = false;
    const Report r = run(o);
    ASSERT_EQ(r.layers.size(), 1u) << name;
    EXPECT_TRUE(bitwise_equal(io::SafetensorsFile::open(o.masks)->tensor("features.0.weight"), by_name.at("mask_0")))
        << name;
  }
}

TEST(PruneGlobal, ConfigurationsItCannotRunAreRefusedByKey) {
  auto error_of = [](const char* text) {
    try {
      parse_prune_config(text, "c.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of(R"({"sparsifier": "NearlyDiagonalSparsifier", "scope": "global"})").find("key scope"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"sparsifier": "WandaSparsifier", "scope": "global"})").find("within each tensor"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"sparsifier": "WeightNormSparsifier", "scope": "global", "steps": 2})").find("key steps"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"sparsifier": "WeightNormSparsifier", "defaults": {"min_sparsity": 0.1}})")
                .find("key defaults.min_sparsity"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"sparsifier": "WeightNormSparsifier", "scope": "global",
                         "config": [{"tensor_fqn": "a", "max_sparsity": 1.5}]})")
                .find("max_sparsity"),
            std::string::npos);
  // Two levels in one ranking: named with both tensors.
  Model m;
  Options o;
  o.model = m.path;
  o.config = parse_prune_config(R"({"sparsifier": "WeightNormSparsifier", "scope": "global",
      "config": [{"tensor_fqn": "enc.fc1.weight", "sparsity_level": 0.3}, {"tensor_fqn": "dec.0.weight"}]})",
                                "c.json");
  o.output = m.dir + "/o.safetensors";
  try {
    run(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("one sparsity_level"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'enc.fc1.weight'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::ifstream(o.output).good());
}

TEST(PrunePool, RunsEveryJobOnceWithinTheBudget) {
  std::mutex mu;
  uint64_t in_use = 0, peak = 0;
  std::vector<int> runs(40, 0);
  run_pool(
      runs.size(), 4, /*budget=*/10, [](size_t i) { return uint64_t{1} + i % 7; },
      [&](size_t i, int) {
        {
          std::lock_guard<std::mutex> lock(mu);
          in_use += 1 + i % 7;
          peak = std::max(peak, in_use);
          ++runs[i];
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        std::lock_guard<std::mutex> lock(mu);
        in_use -= 1 + i % 7;
      });
  EXPECT_EQ(runs, std::vector<int>(40, 1));
  EXPECT_LE(peak, 10u);
  // A job larger than the budget runs alone; the first error stops the pool and is rethrown.
  EXPECT_SPARSITY_ERROR(run_pool(
                            8, 3, 5, [](size_t) { return uint64_t{9}; },
                            [](size_t i, int) { SPARSITY_CHECK(i != 2, Internal, "job ", i, " failed"); }),
                        Internal, "job 2 failed");
}

}  // namespace
}  // namespace sparsity::prune

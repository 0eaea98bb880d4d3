// prune::run in process: its outputs equal the library lifecycle's, for every thread count; errors located.
#include "sparsity/prune/engine.hpp"

#include <gtest/gtest.h>

#include <chrono>
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

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

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

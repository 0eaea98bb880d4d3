// Tests of WandaSparsifier: golden masks from the published algorithm (tests/data/golden/gen_wanda.py) on
// every ISA and thread count, the lifecycle, hand-derived tie and NaN cases, cross-checks with
// WeightNorm, dtypes, and every misuse.
#include "sparsity/sparsifier/wanda_sparsifier.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sparsity/core/parametrize.hpp"
#include "sparsity/io/safetensors.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/nn/containers.hpp"
#include "sparsity/nn/linear.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"
#include "sparsity/sparsifier/activation_norms.hpp"
#include "sparsity/sparsifier/fake_sparsity.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

#include "temp_dir.hpp"
#include "test_util.hpp"

namespace sparsity {
namespace {

using nn::Linear;
using nn::LinearOptions;
using testing::MockSparseLinear;
using testing::random_tensor;
using testing::simple_linear;

// A model holding one weight as child "layer" (tensor fqn "layer.weight").
ModulePtr one_layer(const Tensor& weight) {
  auto model = std::make_shared<Module>("Model");
  auto layer = std::make_shared<Module>("Linear");
  layer->register_parameter("weight", weight);
  model->register_module("layer", layer);
  return model;
}

std::vector<ConfigEntry> layer_config(Json extra = Json::object()) {
  Json e = {{"tensor_fqn", "layer.weight"}};
  e.update(extra);
  return {ConfigEntry(e)};
}

Tensor mask_of_layer(const BaseSparsifier& sp, const std::string& fqn) {
  for (const auto& [name, st] : sp.state()) {
    if (name == fqn) return st.mask;
  }
  ADD_FAILURE() << "no state for " << fqn;
  return {};
}

std::vector<int> kept(const Tensor& mask) {
  std::vector<int> out;
  for (double v : mask.to_vector()) out.push_back(v != 0.0 ? 1 : 0);
  return out;
}

Tensor ones_norms(int64_t n) { return Tensor::ones({n}, DType::f32); }

// One step of a fresh sparsifier over `weight` with `norms`; returns the mask.
Tensor run_once(const Tensor& weight, const Tensor& norms, const WandaOptions& opt) {
  auto model = one_layer(weight);
  WandaSparsifier sp(opt);
  sp.set_activation_norms("layer.weight", norms);
  sp.prepare(model, layer_config());
  sp.step();
  return mask_of_layer(sp, "layer.weight");
}

// Norms of every Linear weight of SimpleLinear, from a deterministic calibration pass.
NamedList<Tensor> simple_linear_norms(const ModulePtr& model) {
  ActivationNormCollector c;
  c.attach(model);
  for (uint64_t s = 0; s < 3; ++s) (*model)(random_tensor({4, 7}, 100 + s));
  c.detach();
  return c.norms();
}

// ---- golden data from the published algorithm ---------------------------------------------------------

struct Golden {
  std::string name;
  Tensor weight, activations, norms;
  std::vector<Tensor> masks;
  Json config;
};

std::vector<Golden> load_goldens() {
  std::vector<Golden> out;
  const std::filesystem::path dir = std::filesystem::path(SPARSITY_TEST_DATA_DIR) / "golden" / "wanda";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::map<std::string, std::string> meta;
    auto tensors = io::load_safetensors(f.string(), &meta);
    std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
    Golden g;
    g.name = f.stem().string();
    g.config = Json::parse(meta.at("config"));
    g.weight = by_name.at("weight");
    g.activations = by_name.at("activations");
    g.norms = by_name.at("norms");
    for (size_t i = 0; i < g.config.at("levels").size(); ++i) g.masks.push_back(by_name.at("mask_" + std::to_string(i)));
    out.push_back(std::move(g));
  }
  return out;
}

// The calibration rows cut into the golden's batch shapes, in order.
std::vector<Tensor> golden_batches(const Golden& g) {
  std::vector<Tensor> out;
  int64_t row = 0;
  for (const auto& b : g.config.at("batches")) {
    Shape shape = b.get<Shape>();
    const int64_t rows = shape_numel(shape) / shape.back();
    out.push_back(g.activations.narrow(0, row, rows).contiguous().reshape(shape));
    row += rows;
  }
  return out;
}

WandaOptions golden_options(const Golden& g) {
  const auto& c = g.config;
  WandaOptions o;
  o.sparsity_level(c.at("levels")[0].get<double>())
      .sparse_block_shape(c.at("sparse_block_shape")[0].get<int64_t>(), c.at("sparse_block_shape")[1].get<int64_t>())
      .comparison(c.at("comparison") == "row" ? WandaComparison::row : WandaComparison::tensor);
  if (!c.at("zeros_per_block").is_null()) o.zeros_per_block(c.at("zeros_per_block").get<int64_t>());
  return o;
}

// Collects the norms from the golden's batches, prunes with them (mask of `mask_dtype`, the weight's when
// unset); "" when norms and every step's mask match bit for bit, else what differs.
std::string run_golden(const Golden& g, std::optional<DType> mask_dtype = std::nullopt) {
  ActivationNormCollector collector;
  for (const Tensor& b : golden_batches(g)) collector.add("layer.weight", b);
  const auto norms = collector.norms();
  if (norms.size() != 1 || !bitwise_equal(norms[0].second, g.norms)) return "collector norms differ";
  auto model = one_layer(g.weight.clone());
  WandaSparsifier sp(golden_options(g), norms);
  auto config = layer_config();
  if (mask_dtype) config[0].mask = Tensor::ones(g.weight.shape(), *mask_dtype);
  sp.prepare(model, config);
  const Tensor mask = mask_of_layer(sp, "layer.weight");
  for (size_t i = 0; i < g.masks.size(); ++i) {
    sp.groups()[0].config["sparsity_level"] = g.config.at("levels")[i];
    sp.step();
    if (mask.dtype() != mask_dtype.value_or(g.weight.dtype())) return "mask dtype changed";
    const auto got = kept(mask), want = kept(g.masks[i]);
    size_t diff = 0;
    for (size_t j = 0; j < got.size(); ++j) diff += got[j] != want[j];
    if (diff != 0) return "step " + std::to_string(i) + ": " + std::to_string(diff) + " mask elements differ";
  }
  return "";
}

TEST(WandaSparsifier, GoldenMasksOnEveryIsaAndThreadCount) {
  const auto goldens = load_goldens();
  ASSERT_GE(goldens.size(), 20u);
  for (kernels::Isa isa : kernels::available_isas()) {
    kernels::ScopedIsaOverride force(isa);
    for (int threads : {1, 2}) {
      kernels::set_num_threads(threads);
      for (const auto& g : goldens) {
        EXPECT_EQ(run_golden(g), "") << g.name << " isa " << kernels::to_string(isa) << " threads " << threads;
      }
    }
  }
  kernels::set_num_threads(1);
}

TEST(WandaSparsifier, GoldenMasksWithEveryMaskDtype) {
  const auto goldens = load_goldens();
  ASSERT_GE(goldens.size(), 20u);
  for (kernels::Isa isa : {kernels::Isa::scalar, kernels::available_isas().back()}) {
    kernels::ScopedIsaOverride force(isa);
    for (DType mdt : {DType::u8, DType::bool_, DType::f64, DType::f32}) {
      for (const auto& g : goldens) {
        EXPECT_EQ(run_golden(g, mdt), "") << g.name << " mask " << to_string(mdt) << " isa " << kernels::to_string(isa);
      }
    }
  }
}

// The norms collected by pre-hooks on a Linear holding the golden weight equal the golden norms.
TEST(WandaSparsifier, GoldenNormsFromHooks) {
  for (const auto& g : load_goldens()) {
    auto model = std::make_shared<nn::Sequential>();
    auto lin = std::make_shared<Linear>(
        LinearOptions(g.weight.size(1), g.weight.size(0)).bias(false).dtype(g.weight.dtype()));
    lin->parameter("weight").copy_(g.weight);
    model->push_back(lin);
    ActivationNormCollector collector;
    collector.attach(model);
    for (const Tensor& b : golden_batches(g)) {
      (*model)(b.dim() > 2 ? b.reshape({-1, b.size(-1)}) : b);  // Linear takes [in] or [N, in]
    }
    const auto norms = collector.norms();
    ASSERT_EQ(norms.size(), 1u) << g.name;
    EXPECT_EQ(norms[0].first, "0.weight");
    EXPECT_TRUE(bitwise_equal(norms[0].second, g.norms)) << g.name;
    EXPECT_EQ(collector.rows("0.weight"), g.activations.size(0)) << g.name;
  }
}

// ---- lifecycle ------------------------------------------------------------------------------------------

TEST(WandaSparsifier, LifecyclePrepareStepSquash) {
  auto model = simple_linear();
  WandaSparsifier sp(WandaOptions().sparsity_level(0.5), simple_linear_norms(model));
  sp.prepare(model, std::nullopt);
  ASSERT_EQ(sp.groups().size(), 5u);
  for (const auto& g : sp.groups()) {
    EXPECT_TRUE(is_parametrized(*g.module, "weight")) << g.tensor_fqn();
    EXPECT_EQ(g.config.at("comparison"), "row");
  }
  sp.step();
  for (const auto& g : sp.groups()) {
    const Tensor mask = mask_of_layer(sp, g.tensor_fqn());
    const int64_t rows = mask.size(0), cols = mask.size(1);
    const auto k = kept(mask);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t zeros = 0;
      for (int64_t c = 0; c < cols; ++c) zeros += k[r * cols + c] == 0;
      EXPECT_EQ(zeros, cols / 2) << g.tensor_fqn() << " row " << r;  // floor(0.5 * in)
    }
  }
  const Tensor mask = mask_of_layer(sp, "linear2.weight");
  const Tensor original = parametrization_original(*model->linear2, "weight").clone();
  sp.squash_mask();
  for (const auto& g : sp.groups()) EXPECT_FALSE(is_parametrized(*g.module)) << g.tensor_fqn();
  const Tensor w = model->linear2->parameter("weight");
  for (int64_t i = 0; i < w.numel(); ++i) {
    EXPECT_EQ(w.get_flat(i), mask.get_flat(i) != 0 ? original.get_flat(i) : 0.0) << i;
  }
}

TEST(WandaSparsifier, ConvertSwapsPreparedModules) {
  auto model = simple_linear();
  WandaSparsifier sp(WandaOptions(), simple_linear_norms(model));
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  sp.step();
  ModulePtr converted = sp.convert(model, {{"Linear", &MockSparseLinear::from_dense}});
  EXPECT_EQ(converted->child("linear1")->type_name(), "MockSparseLinear");
  EXPECT_EQ(converted->child("linear2")->type_name(), "Linear");
}

// state_dict -> a fresh sparsifier with the same norms on a fresh model continues identically.
TEST(WandaSparsifier, StateDictRoundTrip) {
  auto model_a = simple_linear(), model_b = simple_linear();
  const auto norms = simple_linear_norms(model_a);
  WandaSparsifier a(WandaOptions().sparsity_level(0.3), norms);
  a.prepare(model_a, std::nullopt);
  a.step();
  WandaSparsifier b(WandaOptions().sparsity_level(0.3), norms);
  b.prepare(model_b, std::nullopt);
  b.load_state_dict(a.state_dict());
  for (auto* sp : {&a, &b}) {
    for (auto& g : sp->groups()) g.config["sparsity_level"] = 0.6;
    sp->step();
  }
  for (const auto& g : a.groups()) {
    EXPECT_EQ(kept(mask_of_layer(a, g.tensor_fqn())), kept(mask_of_layer(b, g.tensor_fqn()))) << g.tensor_fqn();
  }
  EXPECT_EQ(b.state_dict().groups[0].at("comparison"), "row");
}

// A clone steps on its own model with its own copy of the norms.
TEST(WandaSparsifier, CloneIsIndependent) {
  auto model = simple_linear();
  const auto norms = simple_linear_norms(model);
  WandaSparsifier sp(WandaOptions().sparsity_level(0.5), norms);
  sp.prepare(model, std::nullopt);
  std::unique_ptr<BaseSparsifier> copy = sp.clone();
  ASSERT_NE(copy->model(), model);
  // Changing the source's norms (columns 0 and 1 of linear1 become worthless) changes only its masks.
  Tensor skewed = Tensor::ones({4}, DType::f32);
  skewed.set({0}, 0.0);
  skewed.set({1}, 0.0);
  sp.set_activation_norms("linear1.weight", skewed);
  sp.step();
  copy->step();
  WandaSparsifier fresh(WandaOptions().sparsity_level(0.5), norms);
  auto model2 = simple_linear();
  fresh.prepare(model2, std::nullopt);
  fresh.step();
  EXPECT_EQ(kept(mask_of_layer(*copy, "linear1.weight")), kept(mask_of_layer(fresh, "linear1.weight")));
  EXPECT_EQ(kept(mask_of_layer(sp, "linear1.weight")), (std::vector<int>{0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1}));
  EXPECT_EQ(copy->class_name(), "WandaSparsifier");
  EXPECT_NE(copy->repr().find("comparison: row"), std::string::npos);
}

// CubicSL drives the group's sparsity_level; each step prunes floor(level * in) per row.
TEST(WandaSparsifier, SchedulerRampsTheLevel) {
  const Tensor w = random_tensor({6, 20}, 3);
  auto model = one_layer(w);
  WandaSparsifier sp(WandaOptions().sparsity_level(0.8));
  sp.set_activation_norms("layer.weight", random_tensor({20}, 4).to(DType::f64));  // negative values below
  EXPECT_SPARSITY_ERROR(sp.prepare(model, layer_config()), InvalidArgument, "'layer.weight'", "non-negative");
  Tensor n = random_tensor({20}, 4);
  for (int64_t j = 0; j < 20; ++j) n.set({j}, std::fabs(n.get({j})));
  sp.set_activation_norms("layer.weight", n);
  sp.prepare(model, layer_config());
  CubicSL sched(sp, 0.0, 0, 1, 3);
  const Tensor mask = mask_of_layer(sp, "layer.weight");
  for (int step = 0; step < 5; ++step) {
    const double level = sp.groups()[0].config.at("sparsity_level").get<double>();
    sp.step();
    EXPECT_EQ(120 - count_nonzero(mask), 6 * static_cast<int64_t>(level * 20)) << "step " << step;
    sched.step();
  }
  EXPECT_EQ(120 - count_nonzero(mask), 6 * 16);
}

// ---- hand-derived cases -------------------------------------------------------------------------------

// The norms decide: row [1, 2, 3, 4] with norms [4, 1, 1, 0.5] scores [4, 2, 3, 2]: k = 2 prunes the two
// 2s (columns 1 and 3), where magnitude alone would prune columns 0 and 1.
TEST(WandaSparsifier, ScoreIsMagnitudeTimesNorm) {
  const auto k = kept(run_once(Tensor::from_values({1, 2, 3, 4}, {1, 4}),
                               Tensor::from_values({4, 1, 1, 0.5}), WandaOptions().sparsity_level(0.5)));
  EXPECT_EQ(k, (std::vector<int>{1, 0, 1, 0}));
  // A zero-norm input feature scores 0 in every row and goes first, whatever its weights.
  const auto z = kept(run_once(Tensor::from_values({1, 5, 2, 3, 9, 8, 7, 6}, {2, 4}),
                               Tensor::from_values({1, 0, 1, 1}), WandaOptions().sparsity_level(0.25)));
  EXPECT_EQ(z, (std::vector<int>{1, 0, 1, 1, 1, 0, 1, 1}));
}

// Ties: the lower column goes first in a row and in an N:M group; the lower flat index per tensor.
TEST(WandaSparsifier, TiesPruneLowerIndexFirst) {
  for (kernels::Isa isa : kernels::available_isas()) {
    kernels::ScopedIsaOverride force(isa);
    const std::string at = std::string("isa ") + kernels::to_string(isa);
    EXPECT_EQ(kept(run_once(Tensor::ones({2, 4}), ones_norms(4), WandaOptions().sparsity_level(0.5))),
              (std::vector<int>{0, 0, 1, 1, 0, 0, 1, 1})) << at;
    EXPECT_EQ(kept(run_once(Tensor::ones({2, 4}), ones_norms(4),
                            WandaOptions().sparsity_level(0.5).comparison(WandaComparison::tensor))),
              (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1})) << at;
    EXPECT_EQ(kept(run_once(Tensor::ones({1, 8}), ones_norms(8),
                            WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 4).zeros_per_block(2))),
              (std::vector<int>{0, 0, 1, 1, 0, 0, 1, 1})) << at;
    // Equal products from different weights and norms: [2, 1, 4, 0.5] x [1, 2, 0.5, 4] = 2 everywhere.
    EXPECT_EQ(kept(run_once(Tensor::from_values({2, 1, 4, 0.5}, {1, 4}), Tensor::from_values({1, 2, 0.5, 4}),
                            WandaOptions().sparsity_level(0.75))),
              (std::vector<int>{0, 0, 0, 1})) << at;
    // Long tied rows (the selection kernel's path, no zeros): 1000 equal scores, k = 300.
    const auto k = kept(run_once(Tensor::ones({1, 1000}), ones_norms(1000), WandaOptions().sparsity_level(0.3)));
    for (int j = 0; j < 1000; ++j) ASSERT_EQ(k[j], j < 300 ? 0 : 1) << j << " " << at;
  }
}

// NaN scores rank above +inf above every finite score; inf * 0 (a zero norm) is NaN and is kept.
TEST(WandaSparsifier, NanRanksLargest) {
  const double nan = std::nan(""), inf = INFINITY;
  for (kernels::Isa isa : kernels::available_isas()) {
    kernels::ScopedIsaOverride force(isa);
    EXPECT_EQ(kept(run_once(Tensor::from_values({nan, inf, 1, -2}, {1, 4}), ones_norms(4),
                            WandaOptions().sparsity_level(0.75))),
              (std::vector<int>{1, 0, 0, 0}));
    EXPECT_EQ(kept(run_once(Tensor::from_values({nan, -inf, 1, -2}, {1, 4}), ones_norms(4),
                            WandaOptions().sparsity_level(0.5))),
              (std::vector<int>{1, 1, 0, 0}));
    EXPECT_EQ(kept(run_once(Tensor::from_values({inf, 1, 2, 3}, {1, 4}), Tensor::from_values({0, 1, 1, 1}),
                            WandaOptions().sparsity_level(0.75))),
              (std::vector<int>{1, 0, 0, 0}));
    // In a 1:4 group: [NaN, inf, 3, -1] prunes -1, 3 and inf.
    EXPECT_EQ(kept(run_once(Tensor::from_values({nan, inf, 3, -1}, {1, 4}), ones_norms(4),
                            WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 4).zeros_per_block(3))),
              (std::vector<int>{1, 0, 0, 0}));
    // Per tensor: 2 NaN, k = round(0.75 * 8) = 6 prunes every finite score.
    EXPECT_EQ(kept(run_once(Tensor::from_values({1, nan, 3, 4, 5, 6, nan, 2}, {2, 4}), ones_norms(4),
                            WandaOptions().sparsity_level(0.75).comparison(WandaComparison::tensor))),
              (std::vector<int>{0, 1, 0, 0, 0, 0, 1, 0}));
  }
}

// k per row = floor(level * in) as the reference's int(); per tensor round-half-even, clamped below L.
TEST(WandaSparsifier, KPerRowAndPerTensor) {
  const Tensor w = random_tensor({3, 10}, 11);
  auto zeros = [&](double level, WandaComparison c) {
    return 30 - count_nonzero(run_once(w.clone(), ones_norms(10), WandaOptions().sparsity_level(level).comparison(c)));
  };
  EXPECT_EQ(zeros(0.29, WandaComparison::row), 3 * 2);  // 2.9 -> 2
  EXPECT_EQ(zeros(0.99, WandaComparison::row), 3 * 9);
  EXPECT_EQ(zeros(0.05, WandaComparison::row), 0);
  EXPECT_EQ(zeros(0.25, WandaComparison::tensor), 8);   // 7.5 -> 8
  EXPECT_EQ(zeros(0.35, WandaComparison::tensor), 10);  // 10.5 -> 10
  EXPECT_EQ(zeros(0.999, WandaComparison::tensor), 29); // 29.97 -> 30, clamped to L - 1
  for (auto c : {WandaComparison::row, WandaComparison::tensor}) {
    EXPECT_EQ(zeros(1.0, c), 30);
    EXPECT_EQ(zeros(2.0, c), 30);
    EXPECT_EQ(zeros(0.0, c), 0);
    EXPECT_EQ(zeros(-1.0, c), 0);
  }
}

// Pruned weights score 0 and stay pruned; more zeros than k: the first k zeros go (lower index first).
TEST(WandaSparsifier, StickyMasksAndZeroTies) {
  auto model = one_layer(Tensor::from_values({5, 1, 4, 3, 2, 6}, {1, 6}));
  WandaSparsifier sp(WandaOptions().sparsity_level(0.5));
  sp.set_activation_norms("layer.weight", ones_norms(6));
  sp.prepare(model, layer_config());
  const Tensor mask = mask_of_layer(sp, "layer.weight");
  sp.step();
  EXPECT_EQ(kept(mask), (std::vector<int>{1, 0, 1, 0, 0, 1}));
  parametrization_original(*model->child("layer"), "weight").set({0, 2}, 0.5);  // the kept 4 becomes 0.5
  sp.groups()[0].config["sparsity_level"] = 2.0 / 6.0;  // k = 2: two of the three zeros
  sp.step();
  EXPECT_EQ(kept(mask), (std::vector<int>{1, 0, 1, 0, 1, 1}));
  sp.groups()[0].config["sparsity_level"] = 4.0 / 6.0 + 1e-9;  // k = 4: the two zeros and 2 (now 0), then 0.5
  sp.step();
  EXPECT_EQ(kept(mask), (std::vector<int>{1, 0, 0, 0, 0, 1}));
  sp.groups()[0].config["sparsity_level"] = 0.0;
  sp.step();
  EXPECT_EQ(kept(mask), (std::vector<int>{1, 1, 1, 1, 1, 1}));
  // A kept weight that becomes 0 joins the zeros.
  {
    auto m = one_layer(Tensor::from_values({5, 1, 4, 3, 2, 6}, {1, 6}));
    WandaSparsifier s(WandaOptions().sparsity_level(2.0 / 6.0 + 1e-9));
    s.set_activation_norms("layer.weight", ones_norms(6));
    s.prepare(m, layer_config());
    const Tensor mk = mask_of_layer(s, "layer.weight");
    s.step();
    EXPECT_EQ(kept(mk), (std::vector<int>{1, 0, 1, 1, 0, 1}));
    parametrization_original(*m->child("layer"), "weight").set({0, 2}, 0.0);
    s.groups()[0].config["sparsity_level"] = 0.5;  // k = 3: exactly the three zeros, two of them pruned before
    s.step();
    EXPECT_EQ(kept(mk), (std::vector<int>{1, 0, 0, 1, 0, 1}));
    parametrization_original(*m->child("layer"), "weight").set({0, 3}, 0.0);
    s.step();  // four zeros, k = 3: the lower three, so column 4 comes back
    EXPECT_EQ(kept(mk), (std::vector<int>{1, 0, 0, 0, 1, 1}));
  }
  // Exact zero weights: four zeros, k = 3 prunes the first three.
  EXPECT_EQ(kept(run_once(Tensor::from_values({0, 3, 0, 0, 2, 0}, {1, 6}), ones_norms(6),
                          WandaOptions().sparsity_level(0.5))),
            (std::vector<int>{0, 1, 0, 0, 1, 1}));
}

// With unit norms the score is |w|: "tensor" comparison equals WeightNorm's L1 unstructured selection and
// N:M equals WeightNorm's L1 1 x M blocks at level 1, step after step, with ties, NaN, infinities.
TEST(WandaSparsifier, UnitNormsMatchWeightNormL1) {
  Tensor w = random_tensor({200, 300}, 21);
  for (int64_t i = 0; i < w.numel(); i += 7) w.set_flat(i, 0.5);
  for (int64_t i = 3; i < w.numel(); i += 101) w.set_flat(i, i % 3 == 0 ? std::nan("") : (i % 3 == 1 ? INFINITY : -INFINITY));
  struct Case {
    WandaOptions wanda;
    WeightNormOptions wn;
    std::vector<double> levels;
  };
  const Case cases[] = {
      {WandaOptions().comparison(WandaComparison::tensor), WeightNormOptions().sparse_block_shape(1, 1),
       {0.3, 0.3, 0.55, 0.8}},
      {WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 4).zeros_per_block(2),
       WeightNormOptions().sparse_block_shape(1, 4).zeros_per_block(2), {1.0, 1.0}},
      {WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 8).zeros_per_block(5),
       WeightNormOptions().sparse_block_shape(1, 8).zeros_per_block(5), {1.0}},
  };
  for (kernels::Isa isa : {kernels::Isa::scalar, kernels::available_isas().back()}) {
    kernels::ScopedIsaOverride force(isa);
    for (int threads : {1, 2}) {
      kernels::set_num_threads(threads);
      for (const Case& c : cases) {
        auto ma = one_layer(w.clone()), mb = one_layer(w.clone());
        WandaSparsifier a(c.wanda);
        a.set_activation_norms("layer.weight", ones_norms(300));
        a.prepare(ma, layer_config());
        WeightNormSparsifier b(WeightNormOptions(c.wn).norm(kernels::Norm::L1));
        b.prepare(mb, layer_config());
        for (double level : c.levels) {
          a.groups()[0].config["sparsity_level"] = level;
          b.groups()[0].config["sparsity_level"] = level;
          a.step();
          b.step();
          ASSERT_EQ(kept(mask_of_layer(a, "layer.weight")), kept(mask_of_layer(b, "layer.weight")))
              << "level " << level << " isa " << kernels::to_string(isa) << " threads " << threads;
        }
      }
    }
  }
  kernels::set_num_threads(1);
}

// Thread count and ISA never change masks, on a weight with ties and rows not a multiple of a piece.
TEST(WandaSparsifier, MasksIndependentOfThreadsAndIsa) {
  Tensor w = random_tensor({301, 517}, 99);
  for (int64_t i = 0; i < w.numel(); i += 5) w.set_flat(i, 0.25);
  Tensor n = random_tensor({517}, 98);
  for (int64_t j = 0; j < 517; ++j) n.set({j}, j % 9 == 0 ? 0.0 : std::fabs(n.get({j})));
  const WandaOptions opts[] = {WandaOptions().sparsity_level(0.45),
                               WandaOptions().sparsity_level(0.45).comparison(WandaComparison::tensor),
                               WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 4).zeros_per_block(2),
                               WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 16).zeros_per_block(9)};
  for (const auto& opt : opts) {
    std::vector<std::vector<int>> results;
    for (kernels::Isa isa : kernels::available_isas()) {
      kernels::ScopedIsaOverride force(isa);
      for (int threads : {1, 2}) {
        kernels::set_num_threads(threads);
        auto model = one_layer(w.clone());
        WandaSparsifier sp(opt);
        sp.set_activation_norms("layer.weight", n);
        sp.prepare(model, layer_config());
        sp.step();
        sp.groups()[0].config["sparsity_level"] = opt.sparsity_level_ >= 1 ? 1.0 : 0.7;
        sp.step();  // a second, sticky step
        results.push_back(kept(mask_of_layer(sp, "layer.weight")));
      }
    }
    kernels::set_num_threads(1);
    for (size_t i = 1; i < results.size(); ++i) EXPECT_EQ(results[i], results[0]) << "variant " << i;
  }
}

// The fused path (f32 weights, f32/u8/bool masks) equals the general one (f64 mask) step after step on a
// weight with NaN, infinities, -0.0, ties and zero norms, with levels going down as well as up (more
// zero scores than k: the first zeros are kept pruned), for every ISA and thread count.
TEST(WandaSparsifier, FusedPathMatchesGeneralPath) {
  const int64_t rows = 64, cols = 1024;  // 65536 elements: two threads take part
  Tensor w = Tensor::empty({rows, cols}, DType::f32);
  nn::uniform_init_(w, 1.0, 5);
  float* p = w.mutable_data<float>();
  const float special[] = {std::nanf(""), INFINITY, -INFINITY, -0.0f, 0.0f, 0.25f, -0.25f};
  for (int64_t i = 0; i < rows * cols; i += 37) p[i] = special[(i / 37) % 7];
  for (int64_t i = 5; i < rows * cols; i += 11) p[i] = 0.5f;
  Tensor n = random_tensor({cols}, 6);
  for (int64_t j = 0; j < cols; ++j) n.set({j}, j % 13 == 0 ? 0.0 : (j % 7 == 0 ? 2.0 : std::fabs(n.get({j}))));
  struct Case {
    WandaOptions opt;
    std::vector<double> levels;
  };
  const Case cases[] = {
      {WandaOptions(), {0.5, 0.5, 0.3, 0.3, 0.7}},
      {WandaOptions().comparison(WandaComparison::tensor), {0.5, 0.5, 0.3, 0.7}},
      {WandaOptions().sparse_block_shape(1, 4).zeros_per_block(2), {1.0, 1.0}},
      {WandaOptions().sparse_block_shape(1, 2).zeros_per_block(1), {1.0}},
      {WandaOptions().sparse_block_shape(1, 16).zeros_per_block(9), {1.0, 1.0}},
  };
  auto run = [&](const Case& c, DType mdt) {
    auto model = one_layer(w.clone());
    WandaSparsifier sp(WandaOptions(c.opt).sparsity_level(c.levels[0]));
    sp.set_activation_norms("layer.weight", n);
    auto config = layer_config();
    config[0].mask = Tensor::ones({rows, cols}, mdt);
    sp.prepare(model, config);
    std::vector<std::vector<int>> masks;
    for (double level : c.levels) {
      sp.groups()[0].config["sparsity_level"] = level;
      sp.step();
      masks.push_back(kept(mask_of_layer(sp, "layer.weight")));
    }
    return masks;
  };
  for (const Case& c : cases) {
    std::vector<std::vector<int>> general;
    {
      kernels::ScopedIsaOverride scalar(kernels::Isa::scalar);
      general = run(c, DType::f64);
    }
    for (kernels::Isa isa : kernels::available_isas()) {
      kernels::ScopedIsaOverride force(isa);
      for (int threads : {1, 2}) {
        if (threads == 2 && isa != kernels::available_isas().back()) continue;  // the goldens cover the rest
        kernels::set_num_threads(threads);
        for (DType mdt : {DType::f32, DType::u8, DType::bool_}) {
          EXPECT_EQ(run(c, mdt), general) << to_string(mdt) << " mask, isa " << kernels::to_string(isa) << " threads "
                                          << threads << " block " << c.opt.sparse_block_shape_.second << " "
                                          << to_string(c.opt.comparison_);
        }
      }
    }
  }
  kernels::set_num_threads(1);
}

// Masks keep dtype and identity for every weight dtype; a user bool mask stays bool; squash keeps the
// weight's dtype and writes +0.0 at pruned NaN / inf.
TEST(WandaSparsifier, MasksKeepDtypeAndIdentity) {
  for (DType dt : {DType::f64, DType::f16, DType::bf16, DType::f32}) {
    for (const auto& opt : {WandaOptions().sparsity_level(0.5),
                            WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 4).zeros_per_block(2),
                            WandaOptions().sparsity_level(0.5).comparison(WandaComparison::tensor)}) {
      auto model = one_layer(Tensor::from_values({1, -2, 3, -4, 5, -6, 7, -8}, {2, 4}, dt));
      WandaSparsifier sp(opt);
      sp.set_activation_norms("layer.weight", Tensor::from_values({1, 1, 1, 1}, DType::f64));
      sp.prepare(model, layer_config());
      const Tensor mask = mask_of_layer(sp, "layer.weight");
      sp.step();
      EXPECT_EQ(mask.dtype(), dt);
      EXPECT_TRUE(mask.is_same(mask_of_layer(sp, "layer.weight")));
      EXPECT_EQ(count_nonzero(mask), 4) << to_string(dt);
      sp.squash_mask();
      EXPECT_EQ(model->child("layer")->parameter("weight").dtype(), dt);
    }
  }
  auto model = one_layer(Tensor::from_values({std::nan(""), -INFINITY, 3, -4}, {1, 4}));
  ConfigEntry entry(Json{{"tensor_fqn", "layer.weight"}});
  entry.mask = Tensor::ones({1, 4}, DType::bool_);
  WandaSparsifier sp(WandaOptions().sparsity_level(1.0));
  sp.set_activation_norms("layer.weight", ones_norms(4));
  sp.prepare(model, std::vector<ConfigEntry>{entry});
  sp.step();
  EXPECT_TRUE(mask_of_layer(sp, "layer.weight").is_same(entry.mask));
  EXPECT_EQ(entry.mask.dtype(), DType::bool_);
  sp.squash_mask();
  const Tensor w = model->child("layer")->parameter("weight");
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(w.get_flat(i), 0.0);
    EXPECT_FALSE(std::signbit(w.get_flat(i))) << i;
  }
}

// A strided (transposed) user mask is written through its view.
TEST(WandaSparsifier, NonContiguousUserMask) {
  auto model = one_layer(Tensor::from_values({1, 8, 2, 7, 3, 6, 4, 5}, {2, 4}));
  ConfigEntry entry(Json{{"tensor_fqn", "layer.weight"}});
  const Tensor storage = Tensor::ones({4, 2});
  entry.mask = storage.t();
  WandaSparsifier sp(WandaOptions().sparsity_level(0.5));
  sp.set_activation_norms("layer.weight", ones_norms(4));
  sp.prepare(model, std::vector<ConfigEntry>{entry});
  sp.step();
  EXPECT_EQ(kept(mask_of_layer(sp, "layer.weight")), (std::vector<int>{0, 1, 0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(kept(storage), (std::vector<int>{0, 0, 1, 1, 0, 0, 1, 1}));
}

// Scales column 0 by 10 (a second parametrization after the FakeSparsity).
class ScaleFirstColumn : public Cloneable<ScaleFirstColumn, Parametrization> {
 public:
  ScaleFirstColumn() : Cloneable("ScaleFirstColumn") {}
  Tensor forward(const Tensor& x) override {
    Tensor y = x.clone();
    for (int64_t r = 0; r < y.size(0); ++r) y.set({r, 0}, 10.0 * y.get({r, 0}));
    return y;
  }
};

// With more than the sparsifier's FakeSparsity in the chain, scores come from the whole chain's value.
TEST(WandaSparsifier, ScoresFollowTheWholeParametrizationChain) {
  auto model = one_layer(Tensor::from_values({1, 2, 3, 4}, {1, 4}));
  WandaSparsifier sp(WandaOptions().sparsity_level(0.25));
  sp.set_activation_norms("layer.weight", ones_norms(4));
  sp.prepare(model, layer_config());
  register_parametrization(*model->child("layer"), "weight", std::make_shared<ScaleFirstColumn>());
  sp.step();
  EXPECT_EQ(kept(mask_of_layer(sp, "layer.weight")), (std::vector<int>{1, 0, 1, 1}));
}

// Norms may be keyed by the written fqn or the canonical one (".weight" of the root is "weight").
TEST(WandaSparsifier, RootTensorFqn) {
  auto root = std::make_shared<Module>("Linear");
  root->register_parameter("weight", Tensor::from_values({4, 3, 2, 1}, {1, 4}));
  WandaSparsifier sp(WandaOptions().sparsity_level(0.5));
  sp.set_activation_norms("weight", Tensor::from_values({1, 1, 8, 8}));
  sp.prepare(root, std::vector<ConfigEntry>{Json{{"tensor_fqn", ".weight"}}});
  sp.step();
  EXPECT_EQ(kept(mask_of_layer(sp, ".weight")), (std::vector<int>{0, 0, 1, 1}));
}

// The command line's path: norms of every weight in a safetensors file (extra entries ignored).
TEST(WandaSparsifier, NormsFromSafetensorsFile) {
  auto model = simple_linear();
  NamedList<Tensor> norms = simple_linear_norms(model);
  norms.emplace_back("unrelated.weight", Tensor::from_values({-1, 2}, {2}));  // not pruned: never checked
  norms.emplace_back("matrix", Tensor::ones({2, 2}));
  const std::string dir = testing::fresh_temp_dir("wanda_norms");
  const std::string path = dir + "/norms.safetensors";
  io::save_safetensors(path, norms);
  WandaSparsifier sp(WandaOptions().sparsity_level(0.5));
  sp.set_activation_norms(io::load_safetensors(path));
  std::filesystem::remove_all(dir);
  sp.prepare(model, std::nullopt);
  sp.step();
  EXPECT_EQ(count_nonzero(mask_of_layer(sp, "seq.0.weight")), 5 * 4);  // 7 inputs: 3 pruned per row
}

// End to end: hooks collect norms during calibration forwards, Wanda prunes, squash bakes the masks.
TEST(WandaSparsifier, CollectorToSquash) {
  auto model = simple_linear();
  ActivationNormCollector collector;
  collector.attach(model);
  for (uint64_t s = 0; s < 4; ++s) (*model)(random_tensor({8, 7}, 40 + s));
  collector.detach();
  WandaSparsifier sp(WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 2).zeros_per_block(1));
  sp.set_activation_norms(collector.norms());
  sp.prepare(model, std::nullopt);
  sp.step();
  sp.squash_mask();
  const Tensor w = model->linear2->parameter("weight");  // [10, 4]: 1 of every 2 inputs kept
  for (int64_t r = 0; r < 10; ++r) {
    EXPECT_TRUE((w.get({r, 0}) == 0) != (w.get({r, 1}) == 0)) << r;
    EXPECT_TRUE((w.get({r, 2}) == 0) != (w.get({r, 3}) == 0)) << r;
  }
}

// ---- errors -------------------------------------------------------------------------------------------

// A missing or wrong-length norm fails prepare() naming the tensor and the lengths; the model is untouched.
TEST(WandaSparsifier, PrepareChecksNormsBeforeRegistering) {
  auto model = simple_linear();
  NamedList<Tensor> norms = simple_linear_norms(model);
  norms.erase(norms.begin() + 2);  // seq.2.weight, 6 inputs
  {
    WandaSparsifier sp(WandaOptions(), norms);
    EXPECT_SPARSITY_ERROR(sp.prepare(model, std::nullopt), InvalidArgument, "'seq.2.weight'", "6 values");
    EXPECT_TRUE(sp.groups().empty());
    for (const auto& [fqn, m] : model->named_modules()) EXPECT_FALSE(is_parametrized(*m)) << fqn;
  }
  norms.emplace_back("seq.2.weight", Tensor::ones({5}));
  {
    WandaSparsifier sp(WandaOptions(), norms);
    EXPECT_SPARSITY_ERROR(sp.prepare(model, std::nullopt), InvalidArgument, "'seq.2.weight'", "have 5 values",
                          "6 input features");
    for (const auto& [fqn, m] : model->named_modules()) EXPECT_FALSE(is_parametrized(*m)) << fqn;
  }
  // Norms of another tensor are irrelevant: a config naming only linear1 prepares.
  WandaSparsifier sp(WandaOptions(), norms);
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  EXPECT_EQ(sp.groups().size(), 1u);
}

// Prepared through a BaseSparsifier reference (the registry's way), the check runs at the first step,
// before any mask changes; later norms with the wrong length fail at once.
TEST(WandaSparsifier, StepChecksEveryGroupBeforeAnyMaskChanges) {
  auto model = simple_linear();
  std::unique_ptr<BaseSparsifier> base = std::make_unique<WandaSparsifier>(WandaOptions().sparsity_level(0.5));
  auto& sp = static_cast<WandaSparsifier&>(*base);
  sp.set_activation_norms("linear1.weight", ones_norms(4));
  base->prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}, Json{{"tensor_fqn", "linear2.weight"}}});
  EXPECT_SPARSITY_ERROR(base->step(), InvalidArgument, "no activation norms for 'linear2.weight'", "4 values");
  EXPECT_EQ(count_nonzero(mask_of_layer(*base, "linear1.weight")), 16);  // untouched
  EXPECT_SPARSITY_ERROR(sp.set_activation_norms("linear2.weight", ones_norms(3)), InvalidArgument,
                        "'linear2.weight'", "have 3 values", "4 input features");
  sp.set_activation_norms("linear2.weight", ones_norms(4));
  base->step();
  EXPECT_EQ(count_nonzero(mask_of_layer(*base, "linear1.weight")), 8);
  EXPECT_EQ(count_nonzero(mask_of_layer(*base, "linear2.weight")), 20);
}

TEST(WandaSparsifier, BadNormsAreRejected) {
  auto try_norms = [](const Tensor& n) {
    auto model = one_layer(Tensor::ones({2, 3}));
    WandaSparsifier sp;
    sp.set_activation_norms("layer.weight", n);
    sp.prepare(model, layer_config());
  };
  EXPECT_SPARSITY_ERROR(try_norms(Tensor::ones({1, 3})), InvalidArgument, "'layer.weight'", "1-D", "[1, 3]");
  EXPECT_SPARSITY_ERROR(try_norms(Tensor::ones({3}, DType::i32)), InvalidArgument, "'layer.weight'", "floating", "i32");
  EXPECT_SPARSITY_ERROR(try_norms(Tensor::from_values({1, -1, 1})), InvalidArgument, "norm 1 of 'layer.weight'");
  EXPECT_SPARSITY_ERROR(try_norms(Tensor::from_values({1, 1, std::nan("")})), InvalidArgument, "norm 2 of 'layer.weight'");
  EXPECT_SPARSITY_ERROR(try_norms(Tensor::from_values({INFINITY, 1, 1})), InvalidArgument, "norm 0 of 'layer.weight'");
  WandaSparsifier sp;
  EXPECT_SPARSITY_ERROR(sp.set_activation_norms("", ones_norms(3)), InvalidArgument, "empty");
  EXPECT_SPARSITY_ERROR(sp.set_activation_norms("a.weight", Tensor()), InvalidArgument, "'a.weight'", "undefined");
}

TEST(WandaSparsifier, OnlyTwoDimensionalFloatingWeights) {
  auto try_weight = [](const Tensor& w, int64_t in) {
    auto model = one_layer(w);
    WandaSparsifier sp;
    sp.set_activation_norms("layer.weight", ones_norms(in));
    sp.prepare(model, layer_config());
  };
  EXPECT_SPARSITY_ERROR(try_weight(Tensor::ones({4, 2, 3, 3}), 2), InvalidArgument, "'layer.weight'", "[4, 2, 3, 3]", "2-D");
  EXPECT_SPARSITY_ERROR(try_weight(Tensor::ones({4}), 4), InvalidArgument, "'layer.weight'", "2-D");
  EXPECT_SPARSITY_ERROR(try_weight(Tensor::ones({2, 4}, DType::i32), 4), InvalidArgument, "'layer.weight'", "floating");
  // Empty weights are fine (nothing to prune).
  try_weight(Tensor::ones({0, 4}), 4);
}

TEST(WandaSparsifier, BadOptionsAreRejected) {
  auto prepare_with = [](Json extra) {
    auto model = one_layer(Tensor::ones({4, 8}));
    WandaSparsifier sp;
    sp.set_activation_norms("layer.weight", ones_norms(8));
    sp.prepare(model, layer_config(std::move(extra)));
  };
  EXPECT_SPARSITY_ERROR(prepare_with({{"sparse_block_shape", {2, 4}}}), InvalidArgument, "sparse_block_shape",
                        "'layer.weight'", "[2, 4]");
  EXPECT_SPARSITY_ERROR(prepare_with({{"sparse_block_shape", {1, 0}}}), InvalidArgument, "sparse_block_shape");
  EXPECT_SPARSITY_ERROR(prepare_with({{"sparse_block_shape", {1}}}), InvalidArgument, "sparse_block_shape");
  EXPECT_SPARSITY_ERROR(prepare_with({{"sparse_block_shape", {1, 4}}, {"zeros_per_block", 5}}), InvalidArgument,
                        "zeros_per_block", "(5)", "[0, 4]");
  EXPECT_SPARSITY_ERROR(prepare_with({{"zeros_per_block", -1}}), InvalidArgument, "zeros_per_block");
  EXPECT_SPARSITY_ERROR(prepare_with({{"zeros_per_block", 1.5}}), InvalidArgument, "zeros_per_block");
  EXPECT_SPARSITY_ERROR(prepare_with({{"comparison", "column"}}), InvalidArgument, "comparison", "\"row\"");
  EXPECT_SPARSITY_ERROR(prepare_with({{"comparison", 1}}), InvalidArgument, "comparison");
  EXPECT_SPARSITY_ERROR(prepare_with({{"sparsity_level", "half"}}), InvalidArgument, "sparsity_level");
  EXPECT_SPARSITY_ERROR(prepare_with({{"sparse_block_shape", {1, 4}}, {"zeros_per_block", 2}, {"sparsity_level", 0.5}}),
                        InvalidArgument, "N:M", "sparsity_level 1.0", "'layer.weight'");
  // The same through a step (prepared through the base, then the group changed).
  auto model = one_layer(Tensor::ones({4, 8}));
  WandaSparsifier sp;
  sp.set_activation_norms("layer.weight", ones_norms(8));
  static_cast<BaseSparsifier&>(sp).prepare(model, layer_config());
  sp.groups()[0].config["comparison"] = "diagonal";
  EXPECT_SPARSITY_ERROR(sp.step(), InvalidArgument, "comparison", "'layer.weight'");
  EXPECT_EQ(count_nonzero(mask_of_layer(sp, "layer.weight")), 32);
  // Constructor options.
  EXPECT_SPARSITY_ERROR(WandaSparsifier(WandaOptions().sparse_block_shape(2, 2)), InvalidArgument, "sparse_block_shape");
  EXPECT_SPARSITY_ERROR(WandaSparsifier(WandaOptions().sparse_block_shape(1, 4).zeros_per_block(5)), InvalidArgument,
                        "zeros_per_block");
  EXPECT_SPARSITY_ERROR(WandaSparsifier(WandaOptions().sparsity_level(std::nan(""))), InvalidArgument, "NaN");
}

// A read-only mask fails cleanly (with 2 threads on a large weight too).
TEST(WandaSparsifier, ReadOnlyMaskThrows) {
  kernels::set_num_threads(2);
  static const std::vector<float> ones(300 * 300, 1.0f);
  for (const auto& opt : {WandaOptions(), WandaOptions().comparison(WandaComparison::tensor)}) {
    auto model = one_layer(Tensor::ones({300, 300}));
    ConfigEntry entry(Json{{"tensor_fqn", "layer.weight"}});
    entry.mask = Tensor::from_blob(static_cast<const void*>(ones.data()), {300, 300}, DType::f32);
    WandaSparsifier sp(opt);
    sp.set_activation_norms("layer.weight", ones_norms(300));
    sp.prepare(model, std::vector<ConfigEntry>{entry});
    EXPECT_SPARSITY_ERROR(sp.step(), FailedPrecondition, "");
  }
  kernels::set_num_threads(1);
}

}  // namespace
}  // namespace sparsity

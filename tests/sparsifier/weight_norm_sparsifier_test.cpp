// Tests of WeightNormSparsifier: torch's TestWeightNormSparsifier, torch golden masks on every ISA and
// thread count, hand-derived tie, NaN and edge-tile cases, dtypes and errors.
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "sparsity/io/safetensors.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/nn/containers.hpp"
#include "sparsity/nn/conv2d.hpp"
#include "sparsity/nn/linear.hpp"
#include "sparsity/prune/registry.hpp"
#include "sparsity/core/parametrize.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"
#include "sparsity/sparsifier/fake_sparsity.hpp"

#include "test_util.hpp"

namespace sparsity {
namespace {

using nn::Linear;
using nn::LinearOptions;
using nn::Sequential;
using testing::simple_linear;

std::vector<ConfigEntry> config_for(std::initializer_list<const char*> fqns) {
  std::vector<ConfigEntry> out;
  for (const char* f : fqns) out.emplace_back(Json{{"tensor_fqn", f}});
  return out;
}

// A model holding one weight as child "layer" (tensor fqn "layer.weight").
ModulePtr one_layer(const Tensor& weight) {
  auto model = std::make_shared<Module>("Model");
  auto layer = std::make_shared<Module>("Linear");
  layer->register_parameter("weight", weight);
  model->register_module("layer", layer);
  return model;
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

double zero_fraction(const Tensor& t) {
  return 1.0 - static_cast<double>(count_nonzero(t)) / static_cast<double>(t.numel());
}

// ---- torch's TestWeightNormSparsifier ----------------------------------------------------------

TEST(WeightNormSparsifier, Constructor) {
  auto model = simple_linear();
  WeightNormSparsifier sp;
  sp.prepare(model, std::nullopt);
  const std::set<std::string> expected{"seq.0", "seq.1", "seq.2", "linear1", "linear2"};
  ASSERT_EQ(sp.groups().size(), 5u);
  for (const auto& g : sp.groups()) {
    EXPECT_EQ(type_before_parametrizations(*g.module), "Linear");
    EXPECT_TRUE(expected.count(g.module_fqn())) << g.module_fqn();
  }
}

TEST(WeightNormSparsifier, Step) {
  auto model = simple_linear();
  WeightNormSparsifier sp(0.5, {1, 4});
  sp.prepare(model, config_for({"linear1.weight"}));
  const Tensor mask = mask_of_layer(sp, "linear1.weight");
  EXPECT_EQ(count_nonzero(mask), 16);  // no sparsity before the step
  sp.step();
  EXPECT_DOUBLE_EQ(zero_fraction(mask), 0.5);  // 4 tiles of (1,4), k = 2
  for (int i = 0; i < 1000; ++i) sp.step();
  EXPECT_DOUBLE_EQ(zero_fraction(mask), 0.5);  // masks are recomputed, they never collapse
  EXPECT_TRUE(mask.is_same(mask_of_layer(sp, "linear1.weight")));
}

TEST(WeightNormSparsifier, Step2Of4) {
  auto model = simple_linear();
  WeightNormSparsifier sp(1.0, {1, 4}, 2);
  sp.prepare(model, config_for({"linear1.weight"}));
  sp.step();
  const auto k = kept(mask_of_layer(sp, "linear1.weight"));
  for (int r = 0; r < 4; ++r) {
    int zeros = 0;
    for (int c = 0; c < 4; ++c) zeros += k[r * 4 + c] == 0;
    EXPECT_EQ(zeros, 2) << "row " << r;
  }
}

TEST(WeightNormSparsifier, Prepare) {
  auto model = simple_linear();
  WeightNormSparsifier sp;
  sp.prepare(model, std::nullopt);
  for (const auto& g : sp.groups()) {
    ASSERT_TRUE(is_parametrized(*g.module, "weight")) << g.tensor_fqn();
    auto chain = parametrizations_of(*g.module, "weight");
    ASSERT_FALSE(chain.empty());
    auto* fs = dynamic_cast<FakeSparsity*>(chain[0].get());
    ASSERT_NE(fs, nullptr);
    EXPECT_TRUE(fs->has_buffer("mask"));
  }
}

TEST(WeightNormSparsifier, MaskSquash) {
  auto model = simple_linear();
  WeightNormSparsifier sp;
  sp.prepare(model, std::nullopt);
  sp.step();
  sp.squash_mask();
  for (const auto& g : sp.groups()) {
    EXPECT_FALSE(is_parametrized(*g.module)) << g.tensor_fqn();
    EXPECT_FALSE(g.module->has_buffer("mask"));
    EXPECT_TRUE(g.module->has_parameter("weight"));
  }
}

// Linear(12,12) of ones for every (sl, block, zeros_per_block): the zero fraction after squash is
// exactly 0 when z == 0, else clamp(sl, 0, 1) * z / block size.
TEST(WeightNormSparsifier, SparsityLevels) {
  const std::vector<double> levels{-1.0, 0.0, 0.5, 1.0, 2.0};
  const std::vector<std::pair<int64_t, int64_t>> blocks{{1, 1}, {1, 4}, {2, 2}, {4, 1}};
  auto model = std::make_shared<Sequential>();
  std::vector<std::tuple<double, std::pair<int64_t, int64_t>, int64_t>> cases;
  for (double sl : levels) {
    for (auto b : blocks) {
      for (int64_t z = 0; z <= 4; ++z) {
        if (z > b.first * b.second) continue;
        auto lin = std::make_shared<Linear>(LinearOptions(12, 12).bias(false));
        lin->parameter("weight").fill_(1.0);
        model->push_back(lin);
        cases.emplace_back(sl, b, z);
      }
    }
  }
  std::vector<ConfigEntry> config;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& [sl, b, z] = cases[i];
    config.emplace_back(Json{{"tensor_fqn", std::to_string(i) + ".weight"},
                             {"sparsity_level", sl},
                             {"sparse_block_shape", {b.first, b.second}},
                             {"zeros_per_block", z}});
  }
  WeightNormSparsifier sp;
  sp.prepare(model, config);
  sp.step();
  sp.squash_mask();
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& [sl, b, z] = cases[i];
    const double expected = z == 0 ? 0.0 : std::clamp(sl, 0.0, 1.0) * static_cast<double>(z) /
                                                static_cast<double>(b.first * b.second);
    const Tensor w = (*model)[i]->parameter("weight");
    EXPECT_DOUBLE_EQ(zero_fraction(w), expected)
        << "sl " << sl << " block (" << b.first << "," << b.second << ") z " << z;
  }
}

// ---- golden masks from torch (tests/data/golden/gen_golden.py) ----------------------------------

struct Golden {
  std::string name;
  Tensor weight;
  std::vector<Tensor> masks;
  Json config;
};

std::vector<Golden> load_goldens() {
  std::vector<Golden> out;
  const std::filesystem::path dir = std::filesystem::path(SPARSITY_TEST_DATA_DIR) / "golden";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::map<std::string, std::string> meta;
    auto tensors = io::load_safetensors(f.string(), &meta);
    Golden g;
    g.name = f.stem().string();
    g.config = Json::parse(meta.at("config"));
    std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
    g.weight = by_name.at("weight");
    for (int i = 0; i < g.config.at("steps").get<int>(); ++i) g.masks.push_back(by_name.at("mask_" + std::to_string(i)));
    out.push_back(std::move(g));
  }
  return out;
}

// Runs one golden configuration with a mask of `mask_dtype` (the weight's when unset); returns "" when
// every step's mask matches, else what differs.
std::string run_golden(const Golden& g, std::optional<DType> mask_dtype = std::nullopt) {
  auto model = one_layer(g.weight.clone());
  const auto& c = g.config;
  WeightNormOptions opt;
  opt.sparsity_level(c.at("sparsity_level").get<double>())
      .sparse_block_shape(c.at("sparse_block_shape")[0].get<int64_t>(), c.at("sparse_block_shape")[1].get<int64_t>())
      .norm(c.at("norm") == "L1" ? kernels::Norm::L1 : kernels::Norm::L2);
  if (!c.at("zeros_per_block").is_null()) opt.zeros_per_block(c.at("zeros_per_block").get<int64_t>());
  WeightNormSparsifier sp(opt);
  auto config = config_for({"layer.weight"});
  if (mask_dtype) config[0].mask = Tensor::ones(g.weight.shape(), *mask_dtype);
  sp.prepare(model, config);
  std::unique_ptr<CubicSL> sched;
  if (!c.at("scheduler").is_null()) {
    const auto& s = c.at("scheduler");
    sched = std::make_unique<CubicSL>(sp, s.at("init_sl").get<double>(), s.at("init_t").get<int>(),
                                      s.at("delta_t").get<int>(), s.at("total_t").get<int>());
  }
  const Tensor mask = mask_of_layer(sp, "layer.weight");
  for (size_t i = 0; i < g.masks.size(); ++i) {
    const double level = sp.groups()[0].config.at("sparsity_level").get<double>();
    if (level != c.at("levels")[i].get<double>()) {
      return "step " + std::to_string(i) + ": sparsity level " + std::to_string(level) + " != torch's " +
             c.at("levels")[i].dump();
    }
    sp.step();
    if (mask.dtype() != mask_dtype.value_or(g.weight.dtype())) {
      return "mask dtype changed to " + std::string(to_string(mask.dtype()));
    }
    const auto got = kept(mask), want = kept(g.masks[i]);
    size_t diff = 0;
    for (size_t j = 0; j < got.size(); ++j) diff += got[j] != want[j];
    if (diff != 0) return "step " + std::to_string(i) + ": " + std::to_string(diff) + " mask elements differ";
    if (sched) sched->step();
  }
  return "";
}

TEST(WeightNormSparsifier, GoldenMasksFromTorchOnEveryIsaAndThreadCount) {
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

// The same goldens with byte and bool masks (the command line's) and with f64 masks on f32 weights (the
// general path instead of the fused flat-tile one): every mask dtype gives torch's masks.
TEST(WeightNormSparsifier, GoldenMasksWithEveryMaskDtype) {
  const auto goldens = load_goldens();
  ASSERT_GE(goldens.size(), 20u);
  for (kernels::Isa isa : {kernels::Isa::scalar, kernels::available_isas().back()}) {
    kernels::ScopedIsaOverride force(isa);
    for (DType mdt : {DType::u8, DType::bool_, DType::f64}) {
      for (const auto& g : goldens) {
        EXPECT_EQ(run_golden(g, mdt), "")
            << g.name << " mask " << to_string(mdt) << " isa " << kernels::to_string(isa);
      }
    }
  }
}

// Fused flat-tile path (f32, u8 masks) against the general path (f64 mask) over several steps of a
// ramp, on weights with NaN, infinities, -0.0 and ties, for every supported block width: large enough
// for the tied-threshold shortcut of the selection (sticky masks leave many equal zero scores).
TEST(WeightNormSparsifier, FlatTilePathMatchesGeneralPath) {
  const int64_t rows = 256, cols = 1024;
  Tensor w = Tensor::empty({rows, cols}, DType::f32);
  nn::uniform_init_(w, 1.0, 5);
  float* p = w.mutable_data<float>();
  const float special[] = {std::nanf(""), INFINITY, -INFINITY, -0.0f, 0.0f, 0.25f, -0.25f};
  for (int64_t i = 0; i < rows * cols; i += 37) p[i] = special[(i / 37) % 7];
  for (int64_t i = 5; i < rows * cols; i += 11) p[i] = 0.5f;  // ties inside and across tiles
  struct Case {
    int64_t bc;
    std::optional<int64_t> zeros;
    kernels::Norm norm;
  };
  using kernels::Norm;
  const Case cases[] = {{1, std::nullopt, Norm::L2}, {2, 1, Norm::L1}, {4, std::nullopt, Norm::L2},
                        {4, 2, Norm::L1},            {8, 3, Norm::L2}, {16, 9, Norm::L1},
                        {16, std::nullopt, Norm::L2}};
  for (kernels::Isa isa : kernels::available_isas()) {
    kernels::ScopedIsaOverride force(isa);
    for (int threads : {1, 2}) {
      kernels::set_num_threads(threads);
      for (const Case& c : cases) {
        std::vector<std::vector<int>> masks[3];
        const DType mdts[] = {DType::f64, DType::f32, DType::u8};
        for (int v = 0; v < 3; ++v) {
          auto model = one_layer(w.clone());
          const auto opt =
              WeightNormOptions().sparsity_level(0.3).sparse_block_shape(1, c.bc).zeros_per_block(c.zeros);
          WeightNormSparsifier sp(WeightNormOptions(opt).norm(c.norm));
          auto config = config_for({"layer.weight"});
          config[0].mask = Tensor::ones({rows, cols}, mdts[v]);
          sp.prepare(model, config);
          const Tensor mask = mask_of_layer(sp, "layer.weight");
          for (double level : {0.3, 0.3, 0.5, 0.5, 0.8}) {
            sp.groups()[0].config["sparsity_level"] = level;
            sp.step();
            masks[v].push_back(kept(mask));
          }
        }
        const std::string what = "bc " + std::to_string(c.bc) + " isa " + kernels::to_string(isa) + " threads " +
                                 std::to_string(threads);
        EXPECT_EQ(masks[1], masks[0]) << "f32 mask, " << what;
        EXPECT_EQ(masks[2], masks[0]) << "u8 mask, " << what;
      }
    }
  }
  kernels::set_num_threads(1);
}

// ---- N-D (conv) weights ------------------------------------------------------------------------

Tensor run_once(const Tensor& weight, const WeightNormOptions& opt);
void expect_error(const std::function<void()>& f, ErrorCode code, const std::string& needle);

// Golden masks for weights of rank >= 3 (tests/data/golden/nd/gen_nd_golden.py): N:M from NVIDIA ASP's
// published grouping (groups of M input channels at a fixed (out, k...) position), blocks and
// unstructured from torch's WeightNormSparsifier on the (out, in * prod(k)) matrix.
TEST(WeightNormSparsifier, NdGoldenMasksOnEveryIsaAndThreadCount) {
  const std::filesystem::path dir = std::filesystem::path(SPARSITY_TEST_DATA_DIR) / "golden" / "nd";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 8u);
  for (kernels::Isa isa : kernels::available_isas()) {
    kernels::ScopedIsaOverride force(isa);
    for (int threads : {1, 2}) {
      kernels::set_num_threads(threads);
      for (const auto& f : files) {
        std::map<std::string, std::string> meta;
        auto tensors = io::load_safetensors(f.string(), &meta);
        std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
        const Json c = Json::parse(meta.at("config"));
        WeightNormOptions opt;
        opt.sparsity_level(c.at("sparsity_level").get<double>())
            .sparse_block_shape(c.at("sparse_block_shape")[0].get<int64_t>(), c.at("sparse_block_shape")[1].get<int64_t>())
            .norm(c.at("norm") == "L1" ? kernels::Norm::L1 : kernels::Norm::L2);
        if (!c.at("zeros_per_block").is_null()) opt.zeros_per_block(c.at("zeros_per_block").get<int64_t>());
        const Tensor mask = run_once(by_name.at("weight").clone(), opt);
        EXPECT_EQ(kept(mask), kept(by_name.at("mask_0")))
            << f.stem().string() << " isa " << kernels::to_string(isa) << " threads " << threads;
      }
    }
  }
  kernels::set_num_threads(1);
}

// 2:4 on a (2, 4, 1, 2) weight: the groups are the 4 input channels at each (out, kernel position), so
// element (o, c, 0, s) joins the group of (o, *, 0, s) -- not 4 neighbours in memory.
TEST(WeightNormSparsifier, NofMOnConvGroupsRunAlongInputChannels) {
  // (o, c, s) -> value; in memory order o, c, s. Group (o=0, s=0) = c-values 1, 8, 3, 6 -> keep 8, 6.
  const Tensor w = Tensor::from_values({1, 5, 8, 2, 3, 7, 6, 4, 9, 10, 12, 11, 14, 13, 16, 15}, {2, 4, 1, 2});
  const auto k = kept(run_once(w.clone(), WeightNormOptions().sparsity_level(1.0).sparse_block_shape(1, 4).zeros_per_block(2)));
  // o = 0, s = 0: {1, 8, 3, 6} keeps 8, 6; s = 1: {5, 2, 7, 4} keeps 5, 7.
  // o = 1, s = 0: {9, 12, 14, 16} keeps 14, 16; s = 1: {10, 11, 13, 15} keeps 13, 15.
  EXPECT_EQ(k, (std::vector<int>{0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1}));
  // Whole 1 x 4 blocks (no N:M) run along the (out, in * k) matrix: rows of 8, blocks of 4 neighbours.
  const auto b = kept(run_once(w.clone(), WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 4).norm(kernels::Norm::L1)));
  // Row 0 blocks: {1,5,8,2} mean 4, {3,7,6,4} mean 5; row 1: 10.5, 14.5 -> the two smallest go.
  EXPECT_EQ(b, (std::vector<int>{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}));
  // N:M groups below level 1 are selected by their mean: 2:4 at 0.5 prunes inside the 2 weakest groups.
  const auto h = kept(run_once(w.clone(), WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 4).zeros_per_block(2).norm(kernels::Norm::L1)));
  // Group means: (0,s0) 4.5, (0,s1) 4.5, (1,s0) 12.75, (1,s1) 12.25 -> groups (0,s0), (0,s1) (tie: lower index first).
  EXPECT_EQ(h, (std::vector<int>{0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1}));
}

// Conv2d weights join make_config_from_model once the user lists Conv2d, and prune as conv weights.
TEST(WeightNormSparsifier, Conv2dWeightsThroughAutoConfig) {
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(8, 4, 3).seed(3)));
  model->push_back(std::make_shared<Linear>(LinearOptions(8, 4)));
  WeightNormSparsifier sp(1.0, {1, 4}, 2);
  EXPECT_EQ(sp.make_config_from_model(model).size(), 1u);  // Linear only, as torch
  sp.supported_modules().insert("Conv2d");
  sp.prepare(model, std::nullopt);
  ASSERT_EQ(sp.groups().size(), 2u);
  sp.step();
  const Tensor cm = mask_of_layer(sp, "0.weight");
  ASSERT_EQ(cm.shape(), (Shape{4, 8, 3, 3}));
  // Every group of 4 input channels at a fixed (out, kh, kw) keeps exactly 2.
  for (int64_t o = 0; o < 4; ++o) {
    for (int64_t p = 0; p < 9; ++p) {
      for (int64_t g = 0; g < 2; ++g) {
        int kept_in_group = 0;
        for (int64_t c = 4 * g; c < 4 * g + 4; ++c) kept_in_group += cm.get({o, c, p / 3, p % 3}) != 0.0;
        EXPECT_EQ(kept_in_group, 2) << o << " " << p << " " << g;
      }
    }
  }
  sp.squash_mask();
}

// ---- global ranking ------------------------------------------------------------------------------

// A model holding `weights` as children "l0", "l1", ... (tensor fqns "l<i>.weight").
ModulePtr layers_of(const std::vector<Tensor>& weights) {
  auto model = std::make_shared<Module>("Model");
  for (size_t i = 0; i < weights.size(); ++i) {
    auto layer = std::make_shared<Module>(weights[i].dim() == 4 ? "Conv2d" : "Linear");
    layer->register_parameter("weight", weights[i]);
    model->register_module("l" + std::to_string(i), layer);
  }
  return model;
}

std::vector<ConfigEntry> entries_for(size_t count, DType mask_dtype, const std::vector<Json>& extra = {}) {
  std::vector<ConfigEntry> out;
  for (size_t i = 0; i < count; ++i) {
    Json e{{"tensor_fqn", "l" + std::to_string(i) + ".weight"}};
    if (i < extra.size()) e.update(extra[i]);
    ConfigEntry entry(e);
    entry.mask = Tensor();
    out.push_back(entry);
  }
  (void)mask_dtype;
  return out;
}

// torch.nn.utils.prune.global_unstructured(L1Unstructured, amount) on two Linear weights and a Conv2d
// weight of different scales (tests/data/golden/global/gen_global_golden.py) equals WeightNorm's global
// scope with (1,1) blocks and L1, on every ISA and thread count, with f32 and u8 masks.
TEST(WeightNormSparsifier, GlobalGoldenMasksFromTorchGlobalUnstructured) {
  const std::filesystem::path dir = std::filesystem::path(SPARSITY_TEST_DATA_DIR) / "golden" / "global";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 4u);
  for (kernels::Isa isa : kernels::available_isas()) {
    kernels::ScopedIsaOverride force(isa);
    for (int threads : {1, 2}) {
      kernels::set_num_threads(threads);
      for (DType mdt : {DType::f32, DType::u8}) {
        for (const auto& f : files) {
          std::map<std::string, std::string> meta;
          auto tensors = io::load_safetensors(f.string(), &meta);
          std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
          const Json c = Json::parse(meta.at("config"));
          const size_t count = c.at("layers").size();
          std::vector<Tensor> weights;
          for (size_t i = 0; i < count; ++i) weights.push_back(by_name.at("weight_" + std::to_string(i)).clone());
          auto model = layers_of(weights);
          WeightNormSparsifier sp(WeightNormOptions()
                                      .scope(WeightNormScope::global)
                                      .sparsity_level(c.at("amount").get<double>())
                                      .sparse_block_shape(1, 1)
                                      .norm(kernels::Norm::L1));
          std::vector<ConfigEntry> config;
          for (size_t i = 0; i < count; ++i) {
            ConfigEntry e(Json{{"tensor_fqn", "l" + std::to_string(i) + ".weight"}});
            e.mask = Tensor::ones(weights[i].shape(), mdt);
            config.push_back(e);
          }
          sp.prepare(model, config);
          sp.step();
          for (size_t i = 0; i < count; ++i) {
            const std::string fqn = "l" + std::to_string(i) + ".weight";
            EXPECT_EQ(kept(mask_of_layer(sp, fqn)), kept(by_name.at("mask_" + std::to_string(i))))
                << f.stem().string() << " " << fqn << " isa " << kernels::to_string(isa) << " threads " << threads
                << " mask " << to_string(mdt);
          }
        }
      }
    }
  }
  kernels::set_num_threads(1);
}

// Global blocks against sorting every block mean of every tensor together (ties: tensor order, then
// block index), with N:M staying inside each selected block; a second step keeps the masks.
TEST(WeightNormSparsifier, GlobalBlocksEqualOneSortOfAllBlockMeans) {
  std::vector<Tensor> weights{Tensor::empty({16, 32}, DType::f32), Tensor::empty({8, 64}, DType::f32),
                              Tensor::empty({4, 8, 2, 2}, DType::f32)};
  for (size_t i = 0; i < weights.size(); ++i) nn::uniform_init_(weights[i], 0.5 + static_cast<double>(i), 40 + i);
  // Ties across tensors: one block of equal values in each.
  for (auto& w : weights) {
    for (int64_t j = 0; j < 4; ++j) w.set_flat(j, 0.25);
  }
  // Block means of |w| over 1 x 4 blocks of the (out, in * k) matrices, in f32 as the kernels sum them.
  std::vector<std::tuple<float, size_t, size_t>> all;
  for (size_t t = 0; t < weights.size(); ++t) {
    const int64_t n = weights[t].numel();
    for (int64_t b = 0; b < n / 4; ++b) {
      float sum = 0;
      for (int64_t j = 0; j < 4; ++j) sum += std::fabs(static_cast<float>(weights[t].get_flat(4 * b + j)));
      all.emplace_back(sum / 4.0f, t, static_cast<size_t>(b));
    }
  }
  std::sort(all.begin(), all.end());
  const double level = 0.4;
  const size_t k = static_cast<size_t>(std::nearbyint(level * static_cast<double>(all.size())));
  std::vector<std::vector<int>> want;
  for (const auto& w : weights) want.emplace_back(static_cast<size_t>(w.numel()), 1);
  for (size_t j = 0; j < k; ++j) {
    const auto& [mean, t, b] = all[j];
    for (int64_t e = 0; e < 4; ++e) want[t][4 * b + e] = 0;
  }
  for (int threads : {1, 2}) {
    kernels::set_num_threads(threads);
    std::vector<Tensor> copies;
    for (const auto& w : weights) copies.push_back(w.clone());
    auto model = layers_of(copies);
    WeightNormSparsifier sp(WeightNormOptions().scope(WeightNormScope::global).sparsity_level(level).norm(kernels::Norm::L1));
    sp.prepare(model, entries_for(3, DType::f32));
    for (int step = 0; step < 2; ++step) {
      sp.step();
      for (size_t t = 0; t < weights.size(); ++t) {
        EXPECT_EQ(kept(mask_of_layer(sp, "l" + std::to_string(t) + ".weight")), want[t]) << "tensor " << t << " step " << step;
      }
    }
  }
  kernels::set_num_threads(1);
  // 2:4 inside the selected blocks: each selected block keeps its 2 largest.
  std::vector<Tensor> copies;
  for (const auto& w : weights) copies.push_back(w.clone());
  auto model = layers_of({copies[0], copies[1]});
  WeightNormSparsifier nm(WeightNormOptions().scope(WeightNormScope::global).sparsity_level(level).zeros_per_block(2).norm(kernels::Norm::L1));
  nm.prepare(model, entries_for(2, DType::f32));
  nm.step();
  int64_t zeros = 0;
  for (size_t t = 0; t < 2; ++t) {
    const auto got = kept(mask_of_layer(nm, "l" + std::to_string(t) + ".weight"));
    for (size_t b = 0; b < got.size() / 4; ++b) {
      const int in_block = got[4 * b] + got[4 * b + 1] + got[4 * b + 2] + got[4 * b + 3];
      EXPECT_TRUE(in_block == 4 || in_block == 2) << t << " " << b;
      zeros += 4 - in_block;
    }
  }
  const int64_t blocks = (16 * 32 + 8 * 64) / 4;
  EXPECT_EQ(zeros, 2 * static_cast<int64_t>(std::nearbyint(level * static_cast<double>(blocks))));
}

// min_sparsity / max_sparsity bound each tensor's share; the total stays round(level x total).
TEST(WeightNormSparsifier, GlobalBoundsKeepEveryLayer) {
  // l0's weights are all smaller than l1's: unbounded, level 0.5 prunes the whole of l0.
  std::vector<double> small, large;
  for (int i = 0; i < 16; ++i) {
    small.push_back(0.01 * (i + 1));
    large.push_back(1.0 + 0.1 * (i + 1));
  }
  auto prune = [&](const std::vector<Json>& extra) {
    auto model = layers_of({Tensor::from_values(small, {4, 4}), Tensor::from_values(large, {4, 4})});
    WeightNormSparsifier sp(WeightNormOptions().scope(WeightNormScope::global).sparsity_level(0.5).sparse_block_shape(1, 1));
    sp.prepare(model, entries_for(2, DType::f32, extra));
    sp.step();
    return std::make_pair(kept(mask_of_layer(sp, "l0.weight")), kept(mask_of_layer(sp, "l1.weight")));
  };
  auto count_zero = [](const std::vector<int>& v) { return std::count(v.begin(), v.end(), 0); };
  auto [a0, a1] = prune({});
  EXPECT_EQ(count_zero(a0), 16);
  EXPECT_EQ(count_zero(a1), 0);
  // At most 25% of l0: 4 of its smallest go, and the other 12 of the 16 come from l1's smallest.
  auto [b0, b1] = prune({Json{{"max_sparsity", 0.25}}});
  EXPECT_EQ(b0, (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(b1, (std::vector<int>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}));
  // At least 50% of l1: 8 of it, 8 of l0.
  auto [c0, c1] = prune({Json::object(), Json{{"min_sparsity", 0.5}}});
  EXPECT_EQ(count_zero(c0), 8);
  EXPECT_EQ(count_zero(c1), 8);
  EXPECT_EQ(c1, (std::vector<int>{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}));
}

TEST(WeightNormSparsifier, GlobalErrors) {
  auto model = layers_of({Tensor::ones({4, 4}), Tensor::ones({4, 8})});
  WeightNormSparsifier sp(WeightNormOptions().scope(WeightNormScope::global).sparse_block_shape(1, 1));
  sp.prepare(model, entries_for(2, DType::f32, {Json::object(), Json{{"sparsity_level", 0.7}}}));
  expect_error([&] { sp.step(); }, ErrorCode::InvalidArgument, "one sparsity_level");
  auto model2 = layers_of({Tensor::ones({4, 4}), Tensor::ones({4, 8})});
  WeightNormSparsifier sp2(WeightNormOptions().scope(WeightNormScope::global).sparsity_level(0.1));
  sp2.prepare(model2, entries_for(2, DType::f32, {Json{{"min_sparsity", 0.9}}, Json{{"min_sparsity", 0.9}}}));
  expect_error([&] { sp2.step(); }, ErrorCode::InvalidArgument, "bounds allow");
  EXPECT_NE(WeightNormSparsifier::option_error("max_sparsity", Json(1.5)), "");
  EXPECT_NE(WeightNormSparsifier::option_error("scope", Json("model")), "");
}

// ---- hand-derived cases -----------------------------------------------------------------------

Tensor run_once(const Tensor& weight, const WeightNormOptions& opt) {
  auto model = one_layer(weight);
  WeightNormSparsifier sp(opt);
  sp.prepare(model, config_for({"layer.weight"}));
  sp.step();
  return mask_of_layer(sp, "layer.weight");
}

// All scores equal: the lower flat tile index is pruned first (spec §0.4), so on 12x12 ones with
// (1,4) tiles and k = 18 the first 18 tiles (rows 0-5) go.
TEST(WeightNormSparsifier, TiesPruneLowerTileIndexFirst) {
  for (kernels::Isa isa : kernels::available_isas()) {
    kernels::ScopedIsaOverride force(isa);
    const auto k = kept(run_once(Tensor::ones({12, 12}), WeightNormOptions().sparsity_level(0.5)));
    for (int i = 0; i < 144; ++i) ASSERT_EQ(k[i], i < 72 ? 0 : 1) << "element " << i << " isa " << kernels::to_string(isa);
  }
}

// Equal scores inside a tile: the lower positions go first ([1,1,1,1] with 2 zeros -> 0,0,1,1).
TEST(WeightNormSparsifier, TiesInsideTilePruneLowerPositionFirst) {
  for (kernels::Isa isa : kernels::available_isas()) {
    kernels::ScopedIsaOverride force(isa);
    const auto k = kept(run_once(Tensor::ones({2, 8}), WeightNormOptions().sparsity_level(1.0).zeros_per_block(2)));
    EXPECT_EQ(k, (std::vector<int>{0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1}));
  }
}

// (2,2) tiles inside a tile are ranked row-major: tile [[1,1],[1,1]] with z = 3 keeps (1,1).
TEST(WeightNormSparsifier, TiesInside2dTileAreRowMajor) {
  const auto k =
      kept(run_once(Tensor::ones({2, 2}), WeightNormOptions().sparsity_level(1.0).sparse_block_shape(2, 2).zeros_per_block(3)));
  EXPECT_EQ(k, (std::vector<int>{0, 0, 0, 1}));
}

// NaN ranks above +inf above every finite score; -inf scores +inf under both norms.
TEST(WeightNormSparsifier, NanRanksAboveInfinity) {
  const double nan = std::nan(""), inf = INFINITY;
  for (auto norm : {kernels::Norm::L1, kernels::Norm::L2}) {
    const Tensor w = Tensor::from_values({nan, inf, 1.0, -2.0, -inf, 0.5}, {1, 6});
    // (1,1), k = round(5/6 * 6) = 5 = L - 1: only the NaN survives.
    auto k = kept(run_once(w.clone(), WeightNormOptions().sparsity_level(5.0 / 6.0).sparse_block_shape(1, 1).norm(norm)));
    EXPECT_EQ(k, (std::vector<int>{1, 0, 0, 0, 0, 0}));
    // k = 3: the three finite values.
    k = kept(run_once(w.clone(), WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 1).norm(norm)));
    EXPECT_EQ(k, (std::vector<int>{1, 1, 0, 0, 1, 0}));
  }
  // Inside a tile, z = 3 of [NaN, inf, 3, -1]: prunes -1, 3, inf.
  const auto k = kept(run_once(Tensor::from_values({nan, inf, 3.0, -1.0}, {1, 4}),
                               WeightNormOptions().sparsity_level(1.0).zeros_per_block(3)));
  EXPECT_EQ(k, (std::vector<int>{1, 0, 0, 0}));
}

// An edge tile is averaged over its in-range elements: [1,1,1,1 | 1.2,1.2] prunes the full tile
// (mean 1) and keeps the partial one (mean 1.2, not 0.6).
TEST(WeightNormSparsifier, EdgeTileMeanOverInRangeElements) {
  const auto k = kept(run_once(Tensor::from_values({1, 1, 1, 1, 1.2, 1.2}, {1, 6}),
                               WeightNormOptions().sparsity_level(0.5).norm(kernels::Norm::L1)));
  EXPECT_EQ(k, (std::vector<int>{0, 0, 0, 0, 1, 1}));
}

// N:M on a partial edge tile: [a, b] of a (1,4) tile with z = 2 prunes both real elements (the
// missing positions rank as NaN, last).
TEST(WeightNormSparsifier, EdgeTileZerosPerBlockPrunesRealElementsFirst) {
  const auto k = kept(run_once(Tensor::from_values({5, 1, 4, 3, 9, 8}, {1, 6}),
                               WeightNormOptions().sparsity_level(1.0).zeros_per_block(2)));
  EXPECT_EQ(k, (std::vector<int>{1, 0, 1, 0, 0, 0}));
}

// k = round-half-even(sl * L) clamped to [0, L - 1]: L = 4 tiles, sl 0.625 -> 2.5 -> 2; 0.875 -> 3.5 -> 4 -> 3.
TEST(WeightNormSparsifier, KIsRoundedHalfToEvenAndClamped) {
  const Tensor w = Tensor::from_values({4, 3, 2, 1}, {1, 4});
  auto count = [&](double sl) {
    return 4 - count_nonzero(run_once(w.clone(), WeightNormOptions().sparsity_level(sl).sparse_block_shape(1, 1)));
  };
  EXPECT_EQ(count(0.625), 2);
  EXPECT_EQ(count(0.375), 2);  // 1.5 -> 2
  EXPECT_EQ(count(0.875), 3);  // 3.5 -> 4, clamped to L - 1
  EXPECT_EQ(count(0.99), 3);
  EXPECT_EQ(count(0.1), 0);    // 0.4 -> 0
  // A one-tile tensor is never pruned below sparsity level 1.
  EXPECT_EQ(count_nonzero(run_once(Tensor::ones({3, 3}), WeightNormOptions().sparsity_level(0.9).sparse_block_shape(4, 4))), 9);
}

// zeros_per_block unset = product of the group's effective block shape (spec §0.3): options (1,8),
// group (1,2) -> whole (1,2) tiles are pruned (torch would keep zpb 8 and raise).
TEST(WeightNormSparsifier, UnsetZerosPerBlockFollowsGroupBlockShape) {
  auto model = one_layer(Tensor::from_values({1, 2, 9, 8, 3, 4, 7, 6}, {1, 8}));
  WeightNormSparsifier sp(WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 8));
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "layer.weight"}, {"sparse_block_shape", {1, 2}}}});
  sp.step();
  EXPECT_EQ(kept(mask_of_layer(sp, "layer.weight")), (std::vector<int>{0, 0, 1, 1, 0, 0, 1, 1}));
}

// Scores are computed on the masked weights: pruned zeros stay the smallest (sticky masks), and
// lowering the level to 0 restores a full mask.
TEST(WeightNormSparsifier, ScoresUseMaskedWeightsAndLevelZeroUnprunes) {
  auto model = one_layer(Tensor::from_values({5, 1, 4, 3, 2, 6}, {1, 6}));
  WeightNormSparsifier sp(WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 1));
  sp.prepare(model, config_for({"layer.weight"}));
  const Tensor mask = mask_of_layer(sp, "layer.weight");
  sp.step();
  EXPECT_EQ(kept(mask), (std::vector<int>{1, 0, 1, 0, 0, 1}));  // 1, 2 and 3 go
  // The original changes; the kept 4 becomes 0.5, still above the masked zeros.
  parametrization_original(*model->child("layer"), "weight").set({0, 2}, 0.5);
  sp.groups()[0].config["sparsity_level"] = 0.25;  // k = round(1.5) = 2: two of the three zeros
  sp.step();
  EXPECT_EQ(kept(mask), (std::vector<int>{1, 0, 1, 0, 1, 1}));  // ties among zeros: lower index first
  sp.groups()[0].config["sparsity_level"] = 4.0 / 6.0;  // k = 4: the zeros, then the 0.5
  sp.step();
  EXPECT_EQ(kept(mask), (std::vector<int>{1, 0, 0, 0, 0, 1}));
  sp.groups()[0].config["sparsity_level"] = 0.0;
  sp.step();
  EXPECT_EQ(kept(mask), (std::vector<int>{1, 1, 1, 1, 1, 1}));
}

// A custom element-wise norm replaces L1/L2: score = -w prunes the largest weights.
TEST(WeightNormSparsifier, CustomNormFunction) {
  const Tensor w = Tensor::from_values({1, -3, 2, 0.5}, {1, 4});
  const auto k = kept(run_once(
      w, WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 1).norm_fn([](double x) { return -x; })));
  EXPECT_EQ(k, (std::vector<int>{0, 1, 0, 1}));
  // Block means of the custom score: (1,2) tiles of -w: [-1+3]/2=1, [-2-0.5]/2=-1.25 -> second pruned.
  const auto k2 = kept(run_once(
      w.clone(), WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 2).norm_fn([](double x) { return -x; })));
  EXPECT_EQ(k2, (std::vector<int>{1, 1, 0, 0}));
}

// An exception from a custom norm reaches the caller (also with 2 threads on a large weight).
TEST(WeightNormSparsifier, CustomNormExceptionPropagates) {
  kernels::set_num_threads(2);
  auto model = one_layer(Tensor::ones({300, 300}));
  WeightNormSparsifier sp(WeightNormOptions().norm_fn([](double) -> double { throw std::runtime_error("bad norm"); }));
  sp.prepare(model, config_for({"layer.weight"}));
  EXPECT_THROW(sp.step(), std::runtime_error);
  kernels::set_num_threads(1);
}

// Masks keep their dtype and identity: f64/f16/bf16 weights get masks of their dtype in every path;
// a user bool mask stays bool; squash keeps the weight's dtype and writes +0.0.
TEST(WeightNormSparsifier, MasksKeepDtypeAndIdentity) {
  for (DType dt : {DType::f64, DType::f16, DType::bf16, DType::f32}) {
    for (int64_t z : {4, 2}) {
      auto model = one_layer(Tensor::from_values({1, -2, 3, -4, 5, -6, 7, -8}, {2, 4}, dt));
      WeightNormSparsifier sp(0.5, {1, 4}, z);
      sp.prepare(model, config_for({"layer.weight"}));
      const Tensor mask = mask_of_layer(sp, "layer.weight");
      sp.step();
      EXPECT_EQ(mask.dtype(), dt);
      EXPECT_TRUE(mask.is_same(mask_of_layer(sp, "layer.weight")));
      EXPECT_EQ(count_nonzero(mask), 8 - z);
      sp.squash_mask();
      EXPECT_EQ(model->child("layer")->parameter("weight").dtype(), dt);
    }
  }
  auto model = one_layer(Tensor::from_values({1, -2, 3, -4}, {1, 4}));
  ConfigEntry entry(Json{{"tensor_fqn", "layer.weight"}});
  entry.mask = Tensor::ones({1, 4}, DType::bool_);
  WeightNormSparsifier sp(1.0, {1, 4}, 2);
  sp.prepare(model, std::vector<ConfigEntry>{entry});
  sp.step();
  const Tensor mask = mask_of_layer(sp, "layer.weight");
  EXPECT_TRUE(mask.is_same(entry.mask));
  EXPECT_EQ(mask.dtype(), DType::bool_);
  EXPECT_EQ(kept(mask), (std::vector<int>{0, 0, 1, 1}));
}

TEST(WeightNormSparsifier, SquashWritesPositiveZeroForPrunedNanAndInf) {
  auto model = one_layer(Tensor::from_values({std::nan(""), -INFINITY, -1.0, 2.0}, {1, 4}));
  WeightNormSparsifier sp(1.0, {1, 4});  // whole blocks at level 1: everything pruned
  sp.prepare(model, config_for({"layer.weight"}));
  sp.step();
  sp.squash_mask();
  const Tensor w = model->child("layer")->parameter("weight");
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(w.get_flat(i), 0.0);
    EXPECT_FALSE(std::signbit(w.get_flat(i))) << i;
  }
}

// Multi-threaded and single-threaded steps give the same masks on a weight above the threshold,
// for a custom chunking-sensitive shape (rows not a multiple of the block rows).
TEST(WeightNormSparsifier, ThreadCountDoesNotChangeMasks) {
  Tensor w = Tensor::empty({301, 517}, DType::f32);
  nn::uniform_init_(w, 1.0, 99);
  std::vector<std::vector<int>> results;
  for (int threads : {1, 2}) {
    kernels::set_num_threads(threads);
    for (auto opt : {WeightNormOptions().sparsity_level(0.45).sparse_block_shape(3, 5),
                     WeightNormOptions().sparsity_level(0.7).sparse_block_shape(2, 4).zeros_per_block(3)}) {
      results.push_back(kept(run_once(w.clone(), opt)));
    }
  }
  kernels::set_num_threads(1);
  EXPECT_EQ(results[0], results[2]);
  EXPECT_EQ(results[1], results[3]);
}

// A block larger than the tensor is one edge tile: (8,8) on 3x5 with 4 zeros prunes the 4 smallest
// of the 15 real elements (the missing positions rank last), and a level below 1 prunes nothing.
TEST(WeightNormSparsifier, BlockLargerThanTensor) {
  std::vector<double> v;
  for (int i = 0; i < 15; ++i) v.push_back((i * 7) % 15 + 1);  // 1..15, shuffled
  const Tensor w = Tensor::from_values(v, {3, 5});
  const auto k = kept(run_once(w.clone(), WeightNormOptions().sparsity_level(1.0).sparse_block_shape(8, 8).zeros_per_block(4)));
  for (int i = 0; i < 15; ++i) EXPECT_EQ(k[i], v[i] > 4 ? 1 : 0) << i;
  EXPECT_EQ(count_nonzero(run_once(w.clone(), WeightNormOptions().sparsity_level(0.9).sparse_block_shape(8, 8))), 15);
  const auto all = kept(run_once(w.clone(), WeightNormOptions().sparsity_level(1.0).sparse_block_shape(8, 8).zeros_per_block(20)));
  EXPECT_EQ(std::count(all.begin(), all.end(), 0), 15);
}

// Scales column 0 by 10 (a second parametrization stacked after the FakeSparsity).
class ScaleFirstColumn : public Cloneable<ScaleFirstColumn, Parametrization> {
 public:
  ScaleFirstColumn() : Cloneable("ScaleFirstColumn") {}
  Tensor forward(const Tensor& x) override {
    Tensor y = x.clone();
    for (int64_t r = 0; r < y.size(0); ++r) y.set({r, 0}, 10.0 * y.get({r, 0}));
    return y;
  }
};

// With more than the sparsifier's FakeSparsity in the chain, scores come from the full parametrized
// value: [1,2,3,4] scaled to [10,2,3,4] prunes the 2, not the 1.
TEST(WeightNormSparsifier, ScoresFollowTheWholeParametrizationChain) {
  auto model = one_layer(Tensor::from_values({1, 2, 3, 4}, {1, 4}));
  WeightNormSparsifier sp(WeightNormOptions().sparsity_level(0.25).sparse_block_shape(1, 1));
  sp.prepare(model, config_for({"layer.weight"}));
  register_parametrization(*model->child("layer"), "weight", std::make_shared<ScaleFirstColumn>());
  sp.step();
  EXPECT_EQ(kept(mask_of_layer(sp, "layer.weight")), (std::vector<int>{1, 0, 1, 1}));
}

// A strided (transposed) user mask is written through its view.
TEST(WeightNormSparsifier, NonContiguousUserMask) {
  auto model = one_layer(Tensor::from_values({1, 8, 2, 7, 3, 6, 4, 5}, {2, 4}));
  ConfigEntry entry(Json{{"tensor_fqn", "layer.weight"}});
  const Tensor storage = Tensor::ones({4, 2});
  entry.mask = storage.t();  // 2x4 view with strides {1, 2}
  WeightNormSparsifier sp(WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 1));
  sp.prepare(model, std::vector<ConfigEntry>{entry});
  sp.step();
  const Tensor mask = mask_of_layer(sp, "layer.weight");
  EXPECT_TRUE(mask.is_same(entry.mask));
  EXPECT_EQ(kept(mask), (std::vector<int>{0, 1, 0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(kept(storage), (std::vector<int>{0, 0, 1, 1, 0, 0, 1, 1}));  // the same values, seen transposed
}

// A step writes torch's 0/1 values: a kept 0.5 becomes 1 and a pruned -0.0 becomes +0.0 even where the
// kept pattern does not change (the "nothing changed, write nothing" shortcut needs 0/1 masks).
TEST(WeightNormSparsifier, StepWritesZeroOrOne) {
  for (kernels::Isa isa : kernels::available_isas()) {
    kernels::ScopedIsaOverride force(isa);
    // Through the flat-tile path ((1,1) on f32) and the general path ((2,2) blocks).
    for (int64_t block : {1, 2}) {
      auto model = one_layer(Tensor::from_values({1, 8, 2, 7, 3, 6, 4, 5}, {2, 4}));
      ConfigEntry entry(Json{{"tensor_fqn", "layer.weight"}});
      // Kept patterns the step keeps: (1,1) prunes the two zeros; (2,2) the second tile, already zero.
      entry.mask = block == 1 ? Tensor::from_values({0.5, 1, -0.0, 1, 0.0, 1, 0.25, 1}, {2, 4})
                              : Tensor::from_values({0.5, 1, -0.0, 0.0, 1, 0.25, 0.0, -0.0}, {2, 4});
      WeightNormSparsifier sp(WeightNormOptions().sparsity_level(block == 1 ? 0.25 : 0.5).sparse_block_shape(block, block));
      sp.prepare(model, std::vector<ConfigEntry>{entry});
      sp.step();
      const std::vector<double> want = block == 1 ? std::vector<double>{1, 1, 0, 1, 0, 1, 1, 1}
                                                  : std::vector<double>{1, 1, 0, 0, 1, 1, 0, 0};
      const Tensor mask = mask_of_layer(sp, "layer.weight");
      EXPECT_EQ(mask.to_vector(), want) << "block " << block << " isa " << kernels::to_string(isa);
      for (int64_t i = 0; i < 8; ++i) EXPECT_FALSE(std::signbit(mask.get_flat(i))) << i;
    }
  }
}

// The configuration file checks WeightNorm's keys with the sparsifier's own limits (one set of rules):
// what the sparsifier says about a value is what the file's error says.
TEST(WeightNormSparsifier, ConfigFileUsesTheSparsifierChecks) {
  const Json too_wide = Json::array({1, int64_t{1} << 31});
  const std::string said = WeightNormSparsifier::option_error("sparse_block_shape", too_wide);
  ASSERT_NE(said, "");
  try {
    parse_prune_config(Json{{"sparsifier", "WeightNormSparsifier"}, {"defaults", {{"sparse_block_shape", too_wide}}}},
                       "c.json");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(said), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("key defaults.sparse_block_shape"), std::string::npos) << e.what();
  }
  EXPECT_EQ(WeightNormSparsifier::option_error("sparse_block_shape", Json::array({1, (int64_t{1} << 31) - 1})), "");
  EXPECT_NE(WeightNormSparsifier::option_error("zeros_per_block", Json(-1)), "");
  EXPECT_NE(WeightNormSparsifier::option_error("norm", Json("L3")), "");
  EXPECT_EQ(WeightNormSparsifier::option_error("sparsity_level", Json(2.0)), "");  // a schedule may go there
}

// A tensor name with control bytes reaches messages escaped.
TEST(WeightNormSparsifier, MessagesQuoteTheTensorName) {
  auto model = std::make_shared<Module>("Model");
  auto layer = std::make_shared<Module>("Linear");
  layer->register_parameter("weight", Tensor::ones({8}));
  model->register_module("fc\x1b[2J", layer);
  WeightNormSparsifier sp;
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "fc\x1b[2J.weight"}}});
  try {
    sp.step();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\x1b'), std::string::npos) << what;
    EXPECT_NE(what.find("'fc\\x1b[2J.weight'"), std::string::npos) << what;
  }
}

// ---- errors -------------------------------------------------------------------------------------

void expect_error(const std::function<void()>& f, ErrorCode code, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(WeightNormSparsifier, Errors) {
  auto step_with = [](Json extra, Tensor w = Tensor::ones({4, 8})) {
    auto model = one_layer(w);
    WeightNormSparsifier sp;
    Json e = {{"tensor_fqn", "layer.weight"}};
    if (extra.is_object()) e.update(extra);
    sp.prepare(model, std::vector<ConfigEntry>{e});
    sp.step();
  };
  expect_error([&] { step_with({{"zeros_per_block", 5}}); }, ErrorCode::InvalidArgument, "zeros_per_block");
  expect_error([&] { step_with({{"zeros_per_block", -1}}); }, ErrorCode::InvalidArgument, "layer.weight");
  expect_error([&] { step_with({{"sparse_block_shape", {1}}}); }, ErrorCode::InvalidArgument, "sparse_block_shape");
  expect_error([&] { step_with({{"sparse_block_shape", {0, 4}}}); }, ErrorCode::InvalidArgument, "sparse_block_shape");
  expect_error([&] { step_with({{"sparsity_level", "half"}}); }, ErrorCode::InvalidArgument, "sparsity_level");
  expect_error([&] { step_with({{"zeros_per_block", 1.5}}); }, ErrorCode::InvalidArgument, "zeros_per_block");
  expect_error([&] { step_with({}, Tensor::ones({8})); }, ErrorCode::InvalidArgument, "2-D");
  expect_error([&] { WeightNormSparsifier sp(0.5, {0, 4}); }, ErrorCode::InvalidArgument, "sparse_block_shape");
}

// A read-only mask (e.g. a view of a mapped file) fails cleanly, with 2 threads on a large weight too.
TEST(WeightNormSparsifier, ReadOnlyMaskThrows) {
  kernels::set_num_threads(2);
  static const std::vector<float> ones(300 * 300, 1.0f);
  auto model = one_layer(Tensor::ones({300, 300}));
  ConfigEntry entry(Json{{"tensor_fqn", "layer.weight"}});
  entry.mask = Tensor::from_blob(static_cast<const void*>(ones.data()), {300, 300}, DType::f32);
  WeightNormSparsifier sp(0.5, {1, 4});
  sp.prepare(model, std::vector<ConfigEntry>{entry});
  EXPECT_THROW(sp.step(), Error);
  kernels::set_num_threads(1);
}

// "norm" as a group key: 1 x 2 blocks {3, 0} and {2, 2} rank one way under L1 (means 1.5 < 2) and the
// other under L2 (means of squares 4.5 > 4); at level 0.5 each tensor prunes its smaller block.
TEST(WeightNormSparsifier, NormIsAGroupKey) {
  const Tensor w = Tensor::from_values({3, 0, 2, 2}, {1, 4});
  auto model = layers_of({w.clone(), w.clone(), w.clone()});
  WeightNormSparsifier sp(0.5, {1, 2});  // L2 by default
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "l0.weight"}, {"norm", "L1"}},
                                             Json{{"tensor_fqn", "l1.weight"}},
                                             Json{{"tensor_fqn", "l2.weight"}, {"norm", "L2"}}});
  sp.step();
  EXPECT_EQ(kept(sp.state_of("l0.weight").mask), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_EQ(kept(sp.state_of("l1.weight").mask), (std::vector<int>{1, 1, 0, 0}));
  EXPECT_EQ(kept(sp.state_of("l2.weight").mask), (std::vector<int>{1, 1, 0, 0}));
  WeightNormSparsifier bad(0.5, {1, 2});
  EXPECT_SPARSITY_ERROR(
      {
        bad.prepare(layers_of({w.clone()}), std::vector<ConfigEntry>{Json{{"tensor_fqn", "l0.weight"}, {"norm", "L3"}}});
        bad.step();
      },
      InvalidArgument, "'norm' of 'l0.weight'");
}

}  // namespace
}  // namespace sparsity

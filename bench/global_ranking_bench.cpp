// Global ranking against per-tensor ranking on the same six 4096 x 4096 f32 weights, repeated steps:
// BM_GlobalRanking/<block cols>/<zeros> (one threshold over all six, WeightNorm scope global) and
// BM_PerTensorRanking/<block cols>/<zeros> (WeightNorm's usual per-tensor steps), level 0.5, L2.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "sparsity/core/module.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

namespace {

constexpr int kLayers = 6;
constexpr int64_t kSide = 4096;

std::shared_ptr<sparsity::Module> make_model() {
  auto root = std::make_shared<sparsity::Module>("Model");
  std::mt19937 gen(42);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int l = 0; l < kLayers; ++l) {
    auto layer = std::make_shared<sparsity::Module>("Linear");
    auto w = sparsity::Tensor::empty({kSide, kSide}, sparsity::DType::f32);
    float* p = w.mutable_data<float>();
    const float scale = 0.5f + 0.25f * static_cast<float>(l);  // layers of different scales
    for (int64_t i = 0; i < kSide * kSide; ++i) p[i] = dist(gen) * scale;
    layer->register_parameter("weight", w);
    root->register_module("l" + std::to_string(l), layer);
  }
  return root;
}

void run(benchmark::State& state, sparsity::WeightNormScope scope) {
  sparsity::kernels::set_num_threads(1);
  auto model = make_model();
  const int64_t bc = state.range(0), zeros = state.range(1);
  sparsity::WeightNormSparsifier sp(sparsity::WeightNormOptions()
                                        .scope(scope)
                                        .sparsity_level(0.5)
                                        .sparse_block_shape(1, bc)
                                        .zeros_per_block(zeros));
  std::vector<sparsity::ConfigEntry> config;
  for (int l = 0; l < kLayers; ++l) config.emplace_back(sparsity::Json{{"tensor_fqn", "l" + std::to_string(l) + ".weight"}});
  sp.prepare(model, config);
  sp.step();
  for (auto _ : state) {
    sp.step();
    benchmark::ClobberMemory();
  }
  const double n = static_cast<double>(kLayers * kSide * kSide);
  state.counters["elements"] = benchmark::Counter(n * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_GlobalRanking(benchmark::State& state) { run(state, sparsity::WeightNormScope::global); }
void BM_PerTensorRanking(benchmark::State& state) { run(state, sparsity::WeightNormScope::local); }

}  // namespace

BENCHMARK(BM_GlobalRanking)->Args({1, 1})->Args({4, 4})->Args({4, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PerTensorRanking)->Args({1, 1})->Args({4, 4})->Args({4, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

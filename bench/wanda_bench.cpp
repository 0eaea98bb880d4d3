// WandaSparsifier::update_mask on one large f32 weight (per row, 2:4, per tensor; repeated and first steps)
// and ActivationNormCollector::add; compare with BM_Memcpy/16777216 of the same run.
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <random>

#include "sparsity/core/module.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/sparsifier/activation_norms.hpp"
#include "sparsity/sparsifier/wanda_sparsifier.hpp"

namespace {

using sparsity::DType;
using sparsity::Tensor;
using sparsity::WandaComparison;
using sparsity::WandaOptions;

Tensor normal(const sparsity::Shape& shape, uint32_t seed, float scale_spread) {
  Tensor t = Tensor::empty(shape, DType::f32);
  float* p = t.mutable_data<float>();
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = scale_spread > 0 ? std::exp(scale_spread * dist(gen)) : dist(gen);
  return t;
}

struct Setup {
  std::shared_ptr<sparsity::Module> model;
  std::unique_ptr<sparsity::WandaSparsifier> sparsifier;
};

Setup prepare(benchmark::State& state, const WandaOptions& options) {
  const int64_t rows = state.range(0), cols = state.range(1);
  Setup s;
  s.model = std::make_shared<sparsity::Module>("Model");
  auto layer = std::make_shared<sparsity::Module>("Linear");
  layer->register_parameter("weight", normal({rows, cols}, 42, 0.f));
  s.model->register_module("layer", layer);
  s.sparsifier = std::make_unique<sparsity::WandaSparsifier>(options);
  s.sparsifier->set_activation_norms("layer.weight", normal({cols}, 7, 1.5f));  // log-normal feature scales
  s.sparsifier->prepare(s.model, std::vector<sparsity::ConfigEntry>{sparsity::Json{{"tensor_fqn", "layer.weight"}}});
  return s;
}

void set_counters(benchmark::State& state) {
  const double n = static_cast<double>(state.range(0) * state.range(1));
  state.counters["elements"] = benchmark::Counter(n * state.iterations(), benchmark::Counter::kIsRate);
}

WandaOptions options_of(int variant) {
  switch (variant) {
    case 1: return WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 4).zeros_per_block(2);
    case 2: return WandaOptions().sparsity_level(0.5).comparison(WandaComparison::tensor);
    default: return WandaOptions().sparsity_level(0.5);
  }
}

// Repeated steps at a fixed level (the training-loop steady state: sticky masks, nothing rewritten).
void repeated(benchmark::State& state, int variant, int threads) {
  sparsity::kernels::set_num_threads(threads);
  Setup s = prepare(state, options_of(variant));
  s.sparsifier->step();
  for (auto _ : state) {
    s.sparsifier->step();
    benchmark::ClobberMemory();
  }
  sparsity::kernels::set_num_threads(1);
  set_counters(state);
}

// The first step on a fresh all-ones mask (a full selection per row, every mask element rewritten).
void first(benchmark::State& state, int variant) {
  sparsity::kernels::set_num_threads(1);
  Setup s = prepare(state, options_of(variant));
  Tensor mask = s.sparsifier->state_of("layer.weight").mask;
  for (auto _ : state) {
    state.PauseTiming();
    mask.fill_(1.0);
    state.ResumeTiming();
    s.sparsifier->step();
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

void BM_WandaUpdateMask(benchmark::State& state) { repeated(state, 0, 1); }
void BM_WandaUpdateMask2of4(benchmark::State& state) { repeated(state, 1, 1); }
void BM_WandaUpdateMaskTensor(benchmark::State& state) { repeated(state, 2, 1); }
void BM_WandaUpdateMask2Threads(benchmark::State& state) { repeated(state, 0, 2); }
void BM_WandaFirstStep(benchmark::State& state) { first(state, 0); }
void BM_WandaFirstStep2of4(benchmark::State& state) { first(state, 1); }

// Calibration: rows x cols f32 activations into the collector's double sums.
void BM_ActivationNormAdd(benchmark::State& state) {
  const Tensor x = normal({state.range(0), state.range(1)}, 3, 0.f);
  sparsity::ActivationNormCollector c;
  for (auto _ : state) {
    c.add("layer.weight", x);
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

}  // namespace

BENCHMARK(BM_WandaUpdateMask)->Args({4096, 4096})->Args({1024, 1024})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WandaUpdateMask2of4)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WandaUpdateMaskTensor)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WandaUpdateMask2Threads)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WandaFirstStep)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WandaFirstStep2of4)->Args({4096, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ActivationNormAdd)->Args({2048, 4096})->Unit(benchmark::kMillisecond);

// WeightNormSparsifier::update_mask on one large weight: steady-state steps and first steps.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>

#include "sparsity/kernels/kernels.hpp"
#include "sparsity/core/module.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

namespace {

std::shared_ptr<sparsity::Module> make_layer(int64_t rows, int64_t cols) {
  auto root = std::make_shared<sparsity::Module>("Model");
  auto layer = std::make_shared<sparsity::Module>("Linear");
  auto w = sparsity::Tensor::empty({rows, cols}, sparsity::DType::f32);
  float* p = w.mutable_data<float>();
  std::mt19937 gen(42);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int64_t i = 0; i < rows * cols; ++i) p[i] = dist(gen);
  layer->register_parameter("weight", w);
  root->register_module("layer", layer);
  return root;
}

struct Setup {
  std::shared_ptr<sparsity::Module> model;
  std::unique_ptr<sparsity::WeightNormSparsifier> sparsifier;
};

Setup prepare(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  Setup s;
  s.model = make_layer(rows, cols);
  s.sparsifier = std::make_unique<sparsity::WeightNormSparsifier>(
      0.5, std::make_pair(state.range(2), state.range(3)), state.range(4));
  s.sparsifier->prepare(s.model, std::vector<sparsity::ConfigEntry>{sparsity::Json{{"tensor_fqn", "layer.weight"}}});
  return s;
}

void set_counters(benchmark::State& state) {
  const double n = static_cast<double>(state.range(0) * state.range(1));
  state.counters["elements"] = benchmark::Counter(n * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["bytes"] = benchmark::Counter(n * 4 * state.iterations(), benchmark::Counter::kIsRate);
}

// Repeated steps at a fixed level: masks are sticky, so from the second step on the scores are
// computed on the pruned weight and the mask is found unchanged (the training-loop steady state).
void BM_WeightNormUpdateMask(benchmark::State& state) {
  sparsity::kernels::set_num_threads(1);
  Setup s = prepare(state);
  s.sparsifier->step();
  for (auto _ : state) {
    s.sparsifier->step();
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

// The first step on a fresh all-ones mask (every mask element is rewritten); the reset is untimed.
void BM_WeightNormFirstStep(benchmark::State& state) {
  sparsity::kernels::set_num_threads(1);
  Setup s = prepare(state);
  auto mask = s.sparsifier->state_of("layer.weight").mask;
  for (auto _ : state) {
    state.PauseTiming();
    mask.fill_(1.0);
    state.ResumeTiming();
    s.sparsifier->step();
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

void BM_WeightNormUpdateMask2Threads(benchmark::State& state) {
  sparsity::kernels::set_num_threads(2);
  Setup s = prepare(state);
  s.sparsifier->step();
  for (auto _ : state) {
    s.sparsifier->step();
    benchmark::ClobberMemory();
  }
  sparsity::kernels::set_num_threads(1);
  set_counters(state);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({4096, 4096, 1, 4, 4});
  b->Args({4096, 4096, 1, 4, 2});
  b->Args({4096, 4096, 1, 1, 1});
  b->Args({4096, 4096, 4, 4, 16});
  b->Args({4096, 4096, 2, 2, 4});
  b->Args({1024, 1024, 1, 4, 4});
  b->Args({255, 324, 1, 8, 8});
  b->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(BM_WeightNormUpdateMask)->Apply(shapes);
BENCHMARK(BM_WeightNormFirstStep)->Args({4096, 4096, 1, 4, 4})->Args({4096, 4096, 1, 4, 2})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WeightNormUpdateMask2Threads)->Args({4096, 4096, 1, 4, 4})->Args({4096, 4096, 1, 4, 2})
    ->Unit(benchmark::kMillisecond);

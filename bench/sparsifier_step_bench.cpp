// Whole lifecycle (prepare, step, squash_mask) of WeightNormSparsifier on six 4096x4096 Linear layers.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "sparsity/kernels/kernels.hpp"
#include "sparsity/core/module.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

namespace {

constexpr int kLayers = 6;
constexpr int64_t kSize = 4096;

std::shared_ptr<sparsity::Module> make_model(const std::vector<sparsity::Tensor>& weights) {
  auto root = std::make_shared<sparsity::Module>("Model");
  for (int i = 0; i < kLayers; ++i) {
    auto layer = std::make_shared<sparsity::Module>("Linear");
    layer->register_parameter("weight", weights[i].clone());
    root->register_module("fc" + std::to_string(i), layer);
  }
  return root;
}

std::vector<sparsity::Tensor> random_weights() {
  std::vector<sparsity::Tensor> out;
  std::mt19937 gen(7);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int i = 0; i < kLayers; ++i) {
    auto w = sparsity::Tensor::empty({kSize, kSize}, sparsity::DType::f32);
    float* p = w.mutable_data<float>();
    for (int64_t j = 0; j < kSize * kSize; ++j) p[j] = dist(gen);
    out.push_back(w);
  }
  return out;
}

// prepare (FakeSparsity + ones mask per layer), one step, squash_mask; the model is rebuilt untimed.
void BM_SparsifierLifecycle(benchmark::State& state) {
  sparsity::kernels::set_num_threads(static_cast<int>(state.range(2)));
  const auto weights = random_weights();
  for (auto _ : state) {
    state.PauseTiming();
    auto model = make_model(weights);
    state.ResumeTiming();
    sparsity::WeightNormSparsifier sp(0.5, {1, 4}, state.range(0) == 0 ? std::nullopt
                                                                       : std::optional<int64_t>(state.range(0)));
    if (state.range(1) != 0) sp.defaults()["sparsity_level"] = 1.0;
    sp.prepare(model, std::nullopt);
    sp.step();
    sp.squash_mask();
    benchmark::DoNotOptimize(model.get());
    state.PauseTiming();
    model.reset();
    state.ResumeTiming();
  }
  const double n = static_cast<double>(kLayers) * kSize * kSize;
  state.counters["elements"] = benchmark::Counter(n * state.iterations(), benchmark::Counter::kIsRate);
  sparsity::kernels::set_num_threads(1);
}

}  // namespace

// Args: zeros_per_block (0 = unset: whole blocks), 2:4 (sparsity_level 1), threads.
BENCHMARK(BM_SparsifierLifecycle)
    ->ArgNames({"zpb", "nm", "threads"})
    ->Args({0, 0, 1})
    ->Args({2, 1, 1})
    ->Args({0, 0, 2})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

// Core engine costs: Linear forward (dense vs parametrized weight), parametrized reads, deep clone.
#include <benchmark/benchmark.h>

#include "sparsity/sparsity.hpp"

namespace sparsity::bench {
namespace {

std::shared_ptr<nn::Linear> make_linear(int64_t n, bool parametrized) {
  auto lin = std::make_shared<nn::Linear>(nn::LinearOptions(n, n).seed(1));
  if (parametrized) {
    Tensor mask = Tensor::ones({n, n}, DType::u8);
    for (int64_t i = 0; i < n * n; i += 2) mask.set_flat(i, 0.0);
    register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(mask));
  }
  return lin;
}

// y = x W^T + b for a batch of 32 rows, weight n x n; the parametrized case recomputes mask * original.
void BM_LinearForward(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto lin = make_linear(n, state.range(1) != 0);
  const Tensor x = Tensor::ones({32, n});
  for (auto _ : state) benchmark::DoNotOptimize((*lin)(x));
  state.counters["flops"] =
      benchmark::Counter(2.0 * 32.0 * static_cast<double>(n * n), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(state.range(1) ? "parametrized" : "dense");
}
BENCHMARK(BM_LinearForward)->ArgsProduct({{256, 1024}, {0, 1}})->Unit(benchmark::kMicrosecond);

// Module::tensor("weight") on a FakeSparsity-parametrized Linear: one apply_mask over n x n f32.
void BM_ParametrizedRead(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto lin = make_linear(n, /*parametrized=*/true);
  for (auto _ : state) benchmark::DoNotOptimize(lin->tensor("weight"));
  state.counters["elements"] =
      benchmark::Counter(static_cast<double>(n * n), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes"] =
      benchmark::Counter(static_cast<double>(n * n) * 9.0, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ParametrizedRead)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMicrosecond);

// Deep clone of a Sequential of `depth` prepared 512 x 512 Linears (tensors copied, masks included).
void BM_CloneModel(benchmark::State& state) {
  auto seq = std::make_shared<nn::Sequential>();
  for (int64_t i = 0; i < state.range(0); ++i) seq->push_back(make_linear(512, /*parametrized=*/true));
  for (auto _ : state) benchmark::DoNotOptimize(seq->clone());
  state.counters["bytes"] = benchmark::Counter(static_cast<double>(state.range(0)) * 512 * 512 * 5.0,
                                               benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CloneModel)->Arg(8)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sparsity::bench

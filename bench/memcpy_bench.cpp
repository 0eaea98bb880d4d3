// Baseline of the bandwidth benchmarks: memcpy of n f32 elements (8n bytes read + written).
#include <cstring>

#include "bench_util.hpp"

namespace sparsity::bench {
namespace {

void BM_Memcpy(benchmark::State& state) {
  const int64_t n = state.range(0);
  AlignedBuffer src(static_cast<size_t>(n) * 4), dst(static_cast<size_t>(n) * 4);
  fill_uniform(src.as<float>(), static_cast<size_t>(n));
  for (auto _ : state) {
    std::memcpy(dst.get(), src.get(), static_cast<size_t>(n) * 4);
    benchmark::DoNotOptimize(dst.get());
    benchmark::ClobberMemory();
  }
  set_rates(state, n, 8 * n);
}
BENCHMARK(BM_Memcpy)->Apply(bandwidth_sizes)->UseRealTime();

}  // namespace
}  // namespace sparsity::bench

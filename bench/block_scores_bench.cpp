// Block-score benchmarks: BM_BlockScores<dtype,block,norm,isa>/n on 1024-column matrices, every ISA of
// registry.inc, reporting weight bytes read per second.
#include <string>

#include "bench_util.hpp"
#include "sparsity/base/dtype.hpp"

namespace sparsity::bench {
namespace {

using kernels::Isa;

void run(benchmark::State& state, DType dtype, int64_t br, int64_t bc, kernels::Norm norm, Isa isa) {
  if (!require_isa(state, isa)) return;
  const int64_t n = state.range(0), cols = 1024, rows = n / cols;
  std::vector<float> values(static_cast<size_t>(n));
  fill_uniform(values.data(), values.size());
  AlignedBuffer w(static_cast<size_t>(n) * size_of(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::f32) w.as<float>()[i] = values[i];
    if (dtype == DType::bf16) w.as<uint16_t>()[i] = BFloat16(values[i]).bits;
  }
  const int64_t tiles = ((rows + br - 1) / br) * ((cols + bc - 1) / bc);
  std::vector<float> scores(static_cast<size_t>(tiles));
  kernels::ScopedIsaOverride force(isa);
  for (auto _ : state) {
    kernels::block_scores(dtype, w.get(), rows, cols, cols, br, bc, norm, scores.data());
    benchmark::DoNotOptimize(scores.data());
  }
  set_rates(state, n, n * static_cast<int64_t>(size_of(dtype)) + tiles * 4);
}

const bool registered = [] {
  for (Isa isa : registry_isas("block_scores")) {
    for (DType dt : {DType::f32, DType::bf16}) {
      for (auto [br, bc] : {std::pair<int64_t, int64_t>{1, 4}, {4, 4}, {1, 1}}) {
        for (kernels::Norm norm : {kernels::Norm::L1, kernels::Norm::L2}) {
          if (dt == DType::bf16 && (bc == 1 || norm == kernels::Norm::L1)) continue;
          const std::string name = std::string("BM_BlockScores<") + to_string(dt) + "," + std::to_string(br) + "x" +
                                   std::to_string(bc) + "," + (norm == kernels::Norm::L1 ? "L1" : "L2") + "," +
                                   kernels::to_string(isa) + ">";
          register_sized(name, [=](benchmark::State& s) { run(s, dt, br, bc, norm, isa); }, {1 << 14, 1 << 20});
        }
      }
    }
  }
  return true;
}();

}  // namespace
}  // namespace sparsity::bench

// Fused WeightNorm passes over flat 1 x 4 tiles of f32 weights: BM_FlatTileScores<mask,zeros,isa>/n (pass 1:
// weights + mask -> tile keys, old bits, 2:4 choice) and BM_FlatTileMask<isa>/n (pass 2: keys -> mask bits),
// every ISA of registry.inc with the scalar reference first; bytes are those read and written.
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "kernels/fused.hpp"

namespace sparsity::bench {
namespace {

using kernels::Isa;

void run_scores(benchmark::State& state, bool byte_mask, int64_t zeros, Isa isa) {
  if (!require_isa(state, isa)) return;
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<float> w(n), fmask(n);
  std::vector<uint8_t> bmask(n), old_bits(n / 8 + 8), pruned(n / 8 + 8);
  std::vector<uint32_t> keys(n / 4);
  fill_uniform(w.data(), n);
  fill_half_mask(bmask.data(), n);
  for (size_t i = 0; i < n; ++i) fmask[i] = bmask[i] ? 1.0f : 0.0f;
  const void* m = byte_mask ? static_cast<const void*>(bmask.data()) : static_cast<const void*>(fmask.data());
  kernels::ScopedIsaOverride force(isa);
  for (auto _ : state) {
    kernels::flat_tile_scores(w.data(), m, byte_mask ? DType::u8 : DType::f32, n, 4, kernels::Norm::L2, zeros,
                              keys.data(), old_bits.data(), pruned.data());
    benchmark::DoNotOptimize(keys.data());
  }
  const int64_t bytes =
      static_cast<int64_t>(n * 4 + n * (byte_mask ? 1 : 4) + n + n / 8 * (zeros < 4 ? 2 : 1));
  set_rates(state, static_cast<int64_t>(n), bytes);
}

void run_mask(benchmark::State& state, Isa isa) {
  if (!require_isa(state, isa)) return;
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<float> s(n / 4);
  fill_uniform(s.data(), n / 4);
  std::vector<uint32_t> keys(n / 4);
  for (size_t t = 0; t < n / 4; ++t) keys[t] = static_cast<uint32_t>(s[t] * 1e6f);
  std::vector<uint8_t> pruned(n / 8 + 8, 0x33), bits(n / 8 + 8);
  const kernels::KeyThreshold<uint32_t> threshold{static_cast<uint32_t>(5e5f), n / 8};
  kernels::ScopedIsaOverride force(isa);
  for (auto _ : state) {
    kernels::flat_tile_mask(keys.data(), n, 4, threshold, 0, pruned.data(), bits.data());
    benchmark::DoNotOptimize(bits.data());
  }
  set_rates(state, static_cast<int64_t>(n), static_cast<int64_t>(n + n / 8 + n / 8));
}

const bool registered = [] {
  for (Isa isa : registry_isas("flat_tiles")) {
    for (bool byte_mask : {false, true}) {
      for (int64_t zeros : {4, 2}) {
        const std::string name = std::string("BM_FlatTileScores<") + (byte_mask ? "u8," : "f32,") +
                                 std::to_string(zeros) + "," + kernels::to_string(isa) + ">";
        register_sized(name, [=](benchmark::State& s) { run_scores(s, byte_mask, zeros, isa); },
                       {1 << 14, 1 << 24});
      }
    }
    const std::string name = std::string("BM_FlatTileMask<") + kernels::to_string(isa) + ">";
    register_sized(name, [=](benchmark::State& s) { run_mask(s, isa); }, {1 << 14, 1 << 24});
  }
  return true;
}();

}  // namespace
}  // namespace sparsity::bench

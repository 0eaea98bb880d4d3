// Selection benchmarks: BM_SelectKSmallest<dtype,isa>/n (k = n/2, many ties) and BM_TileSmallest<block,isa>/n
// (2:4 and 4x4 tiles on 1024-column score matrices), every ISA of registry.inc.
#include <string>
#include <tuple>

#include "bench_util.hpp"

namespace sparsity::bench {
namespace {

using kernels::Isa;

std::vector<float> tied_scores(size_t n) {
  std::vector<float> s(n);
  fill_uniform(s.data(), n);
  for (auto& v : s) v = static_cast<float>(static_cast<int>(v * 1000)) / 1000;  // ~2000 distinct values
  return s;
}

void run_select(benchmark::State& state, bool f64, Isa isa) {
  if (!require_isa(state, isa)) return;
  const size_t n = static_cast<size_t>(state.range(0));
  const std::vector<float> s = tied_scores(n);
  const std::vector<double> d(s.begin(), s.end());
  std::vector<uint8_t> selected(n);
  kernels::ScopedIsaOverride force(isa);
  for (auto _ : state) {
    if (f64) {
      kernels::select_k_smallest_f64(d.data(), n, n / 2, selected.data());
    } else {
      kernels::select_k_smallest_f32(s.data(), n, n / 2, selected.data());
    }
    benchmark::DoNotOptimize(selected.data());
  }
  set_rates(state, static_cast<int64_t>(n), static_cast<int64_t>(n * ((f64 ? 8 : 4) + 1)));
}

void run_tiles(benchmark::State& state, int64_t br, int64_t bc, int64_t zeros, Isa isa) {
  if (!require_isa(state, isa)) return;
  const int64_t n = state.range(0), cols = 1024, rows = n / cols;
  const std::vector<float> s = tied_scores(static_cast<size_t>(n));
  std::vector<uint8_t> pruned(static_cast<size_t>(n));
  kernels::ScopedIsaOverride force(isa);
  for (auto _ : state) {
    kernels::tile_smallest(s.data(), /*f64=*/false, rows, cols, cols, br, bc, zeros, pruned.data());
    benchmark::DoNotOptimize(pruned.data());
  }
  set_rates(state, n, n * 5);
}

void run_count(benchmark::State& state, Isa isa) {
  if (!require_isa(state, isa)) return;
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> mask(n), bits(n / 8 + 1);
  fill_half_mask(mask.data(), n);
  kernels::ScopedIsaOverride force(isa);
  for (auto _ : state) {
    benchmark::DoNotOptimize(kernels::count_kept_bytes(mask.data(), n));
    kernels::bytes_to_bits(mask.data(), n, bits.data());
    benchmark::DoNotOptimize(kernels::count_kept_bits(bits.data(), n));
  }
  set_rates(state, static_cast<int64_t>(n), static_cast<int64_t>(n + n + n / 8 + n / 8));
}

const bool registered = [] {
  for (Isa isa : registry_isas("select")) {
    for (bool f64 : {false, true}) {
      const std::string name =
          std::string("BM_SelectKSmallest<") + (f64 ? "f64," : "f32,") + kernels::to_string(isa) + ">";
      register_sized(name, [=](benchmark::State& s) { run_select(s, f64, isa); }, {1 << 14, 1 << 20});
    }
  }
  for (Isa isa : registry_isas("tile_smallest")) {
    for (auto [br, bc, z] : {std::tuple<int64_t, int64_t, int64_t>{1, 4, 2}, {4, 4, 8}}) {
      const std::string name = "BM_TileSmallest<" + std::to_string(br) + "x" + std::to_string(bc) + "," +
                               kernels::to_string(isa) + ">";
      register_sized(name, [=](benchmark::State& s) { run_tiles(s, br, bc, z, isa); }, {1 << 14, 1 << 20});
    }
  }
  for (Isa isa : registry_isas("stats")) {
    const std::string name = std::string("BM_CountAndPack<") + kernels::to_string(isa) + ">";
    register_sized(name, [=](benchmark::State& s) { run_count(s, isa); }, {1 << 14, 1 << 20});
  }
  return true;
}();

}  // namespace
}  // namespace sparsity::bench

// Shared helpers of the kernel benchmarks: seeded inputs, the size list, byte counters, ISA skips.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/dispatch.hpp"
#include "sparsity/kernels/kernels.hpp"

namespace sparsity::bench {

/// Element counts every bandwidth benchmark runs at: L1-resident to far beyond the last-level cache.
inline void bandwidth_sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {int64_t{1} << 12, int64_t{1} << 16, int64_t{1} << 20, int64_t{1} << 22, int64_t{1} << 24}) {
    b->Arg(n);
  }
}

/// 64-byte aligned, zero-initialised buffer of `bytes` bytes.
struct AlignedBuffer {
  explicit AlignedBuffer(size_t bytes) : size((bytes + 63) / 64 * 64) {
    data.reset(static_cast<uint8_t*>(std::aligned_alloc(64, size == 0 ? 64 : size)));
    std::fill(data.get(), data.get() + size, uint8_t{0});
  }
  uint8_t* get() const { return data.get(); }
  template <class T>
  T* as() const {
    return reinterpret_cast<T*>(data.get());
  }
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  size_t size;
  std::unique_ptr<uint8_t, Free> data;
};

/// Uniform [-1, 1) floats from a fixed seed.
inline void fill_uniform(float* p, size_t n, uint32_t seed = 42) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (size_t i = 0; i < n; ++i) p[i] = dist(rng);
}

/// Byte mask with about half the elements kept, from a fixed seed.
inline void fill_half_mask(uint8_t* p, size_t n, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n; i += 32) {
    const uint32_t r = rng();
    for (size_t j = 0; j < 32 && i + j < n; ++j) p[i + j] = (r >> j) & 1u;
  }
}

/// Skips the benchmark (SkipWithError) when the CPU or the build lacks `isa`; true if it may run.
inline bool require_isa(benchmark::State& state, kernels::Isa isa) {
  if (!kernels::isa_available(isa)) {
    state.SkipWithError((std::string("ISA not available: ") + kernels::to_string(isa)).c_str());
    return false;
  }
  return true;
}

/// Registers `fn` as benchmark `name`, once per size in `sizes` (its Arg), timed in real time.
template <class F>
inline void register_sized(const std::string& name, F fn, const std::vector<int64_t>& sizes) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), fn);
  for (int64_t n : sizes) b->Arg(n);
  b->UseRealTime();
}

/// Reports bytes read + written and elements per second (kIsRate counters through SetBytesProcessed).
inline void set_rates(benchmark::State& state, int64_t n, int64_t bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * bytes_per_iteration);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}

}  // namespace sparsity::bench

namespace sparsity::bench {

/// ISAs with a kernel for `family` in registry.inc, scalar (the reference) first.
inline std::vector<kernels::Isa> registry_isas(std::string_view family) {
  std::vector<kernels::Isa> isas{kernels::Isa::scalar};
#define SPARSITY_KERNEL(fam, isa) \
  if (family == #fam) isas.push_back(kernels::Isa::isa);
#include "kernels/registry.inc"
#undef SPARSITY_KERNEL
  return isas;
}

}  // namespace sparsity::bench

// Sparse-linear benchmarks: BM_DenseLinear/<out>/<in>/<batch> (Eigen, f32, one thread) and
// BM_SparseLinear<format,dtype[,2threads]>/<out>/<in>/<batch>/<sparsity percent> (kernels::sparse_linear
// on the best ISA), y = x W^T + b with the same random weights pruned to each format's pattern.
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "bench_util.hpp"
#include "dense_linear_baseline.hpp"
#include "sparsity/core/packed.hpp"

namespace sparsity::bench {
namespace {

struct Format {
  const char* name;  // in the benchmark name
  PackFormat format;
  std::vector<int64_t> sparsities;
};

const std::vector<Format>& formats() {
  static const std::vector<Format> f{{"nm2of4", PackFormat::nm(2, 4), {50}},
                                     {"bsr1x8", PackFormat::bsr(1, 8), {50, 70, 90}},
                                     {"bsr8x1", PackFormat::bsr(8, 1), {50, 70, 90}},
                                     {"bitmask", PackFormat::bitmask(), {50, 70, 90}},
                                     {"csr", PackFormat::csr(), {50, 70, 90}}};
  return f;
}

/// Uniform [-1, 1) weights, the same for every format of a shape (seeded by the shape).
std::vector<float> dense_weights(int64_t out, int64_t in) {
  std::vector<float> w(static_cast<size_t>(out * in));
  std::mt19937_64 rng(static_cast<uint64_t>(out * 131 + in));
  for (auto& v : w) {
    v = static_cast<float>(static_cast<double>(rng() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    if (v == 0.0f) v = 0.5f;
  }
  return w;
}

/// `dense` with the elements outside a random pattern of `format` at `sparsity` percent zeroed: two random
/// positions per group of four for 2:4, whole blocks with probability 1 - s for BSR, single elements for
/// bitmask and csr.
Tensor pruned(const std::vector<float>& dense, int64_t out, int64_t in, const PackFormat& format, int64_t sparsity) {
  Tensor t = Tensor::empty({out, in});
  float* p = t.mutable_data<float>();
  std::memcpy(p, dense.data(), dense.size() * sizeof(float));
  std::mt19937_64 rng(static_cast<uint64_t>(sparsity * 7 + static_cast<int>(format.layout())));
  const double keep = 1.0 - static_cast<double>(sparsity) / 100.0;
  auto kept = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53 < keep; };
  switch (format.layout()) {
    case kernels::SparseLayout::nm:
      for (int64_t g = 0; g < out * in; g += 4) {
        const int a = static_cast<int>(rng() % 4);
        const int b = (a + 1 + static_cast<int>(rng() % 3)) % 4;
        for (int j = 0; j < 4; ++j) {
          if (j != a && j != b) p[g + j] = 0.0f;
        }
      }
      break;
    case kernels::SparseLayout::bsr: {
      const int64_t br = format.block_rows(), bc = format.block_cols();
      for (int64_t R = 0; R < out / br; ++R) {
        for (int64_t B = 0; B < in / bc; ++B) {
          if (kept()) continue;
          for (int64_t i = 0; i < br; ++i) std::memset(p + (R * br + i) * in + B * bc, 0, static_cast<size_t>(bc) * 4);
        }
      }
      break;
    }
    default:
      for (int64_t i = 0; i < out * in; ++i) {
        if (!kept()) p[i] = 0.0f;
      }
      break;
  }
  return t;
}

/// The weights of the benchmark running now. Benchmarks of one weight are registered next to each other,
/// so one cached entry of each kind serves them all.
struct Cache {
  std::tuple<int64_t, int64_t> dense_key{-1, -1};
  std::vector<float> dense;
  std::tuple<int64_t, int64_t, std::string, DType, int64_t> packed_key{-1, -1, "", DType::f32, -1};
  PackedTensor packed;
};
Cache& cache() {
  static Cache c;
  return c;
}

const std::vector<float>& cached_dense(int64_t out, int64_t in) {
  Cache& c = cache();
  if (c.dense_key != std::make_tuple(out, in)) {
    c.dense = dense_weights(out, in);
    c.dense_key = {out, in};
  }
  return c.dense;
}

const PackedTensor& cached_packed(int64_t out, int64_t in, const Format& f, DType dtype, int64_t sparsity) {
  Cache& c = cache();
  const auto key = std::make_tuple(out, in, std::string(f.name), dtype, sparsity);
  if (c.packed_key != key) {
    c.packed = PackedTensor();
    const Tensor w = pruned(cached_dense(out, in), out, in, f.format, sparsity);
    c.packed = pack(dtype == DType::f32 ? w : w.to(dtype), f.format);
    c.packed_key = key;
  }
  return c.packed;
}

std::vector<float> inputs(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  fill_uniform(v.data(), v.size(), static_cast<uint32_t>(seed));
  return v;
}

void run_dense(benchmark::State& state) {
  const int64_t out = state.range(0), in = state.range(1), batch = state.range(2);
  const std::string isa = dense_linear_isa();
  if (isa != "sse2" && !require_isa(state, kernels::isa_from_string(isa))) return;
  const std::vector<float>& w = cached_dense(out, in);
  const std::vector<float> x = inputs(batch * in, 3), bias = inputs(out, 5);
  std::vector<float> y(static_cast<size_t>(batch * out));
  for (auto _ : state) {
    dense_linear(w.data(), out, in, x.data(), batch, bias.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_rates(state, batch * out * in, out * in * 4);
  state.SetLabel(std::string("eigen ") + isa);
}

void run_sparse(benchmark::State& state, const Format& f, DType dtype, int threads) {
  const int64_t out = state.range(0), in = state.range(1), batch = state.range(2), sparsity = state.range(3);
  const PackedTensor& p = cached_packed(out, in, f, dtype, sparsity);
  const kernels::SparseWeight w = p.kernel_weight();
  const std::vector<float> x = inputs(batch * in, 3), bias = inputs(out, 5);
  std::vector<float> y(static_cast<size_t>(batch * out));
  const int saved = kernels::num_threads();
  kernels::set_num_threads(threads);
  for (auto _ : state) {
    kernels::sparse_linear(w, x.data(), batch, in, bias.data(), y.data(), out);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  kernels::set_num_threads(saved);
  set_rates(state, batch * p.nnz(), p.bytes());
  state.SetLabel(std::string(kernels::to_string(kernels::active_isa())) + ", " + std::to_string(p.bytes()) + " B");
}

void add(const std::string& name, std::function<void(benchmark::State&)> fn, std::vector<int64_t> args) {
  // Wall time is reported either way ("Time", JSON real_time); UseRealTime would append "/real_time" to the name.
  benchmark::RegisterBenchmark(name.c_str(), std::move(fn))->Args(args)->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
  for (auto [out, in] : {std::pair<int64_t, int64_t>{4096, 4096}, {11008, 4096}}) {
    for (int64_t batch : {1, 8, 64}) add("BM_DenseLinear", run_dense, {out, in, batch});
    for (const Format& f : formats()) {
      for (DType dtype : {DType::f32, DType::bf16}) {
        for (int64_t s : f.sparsities) {
          const std::string params = std::string(f.name) + "," + to_string(dtype);
          for (int64_t batch : {1, 8, 64}) {
            add("BM_SparseLinear<" + params + ">", [&f, dtype](benchmark::State& st) { run_sparse(st, f, dtype, 1); },
                {out, in, batch, s});
          }
          add("BM_SparseLinear<" + params + ",2threads>",
              [&f, dtype](benchmark::State& st) { run_sparse(st, f, dtype, 2); }, {out, in, 64, s});
        }
      }
    }
  }
  return true;
}();

}  // namespace
}  // namespace sparsity::bench

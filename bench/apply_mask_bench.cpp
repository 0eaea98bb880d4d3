// Mask application benchmarks: BM_ApplyMask<dtype,form,isa[,threads]> (out of place) and BM_SquashMask<...>
// (in place), for every ISA of registry.inc, byte / bit / float masks, reporting bytes read + written.
#include <string>

#include "bench_util.hpp"
#include "sparsity/base/dtype.hpp"

namespace sparsity::bench {
namespace {

using kernels::Isa;

enum class Form { bytes, bits, floats };
const char* form_name(Form f) { return f == Form::bytes ? "bytes" : f == Form::bits ? "bits" : "float"; }

void run_apply(benchmark::State& state, DType dtype, Form form, Isa isa, int threads, bool in_place) {
  if (!require_isa(state, isa)) return;
  const int64_t n = state.range(0);
  const size_t es = size_of(dtype);
  const size_t un = static_cast<size_t>(n);
  AlignedBuffer w(un * es), out(un * es), mask(form == Form::floats ? un * es : un);
  {
    // Uniform values in the weight's dtype, a half-kept mask in the requested form.
    std::vector<float> values(un);
    fill_uniform(values.data(), un);
    std::vector<uint8_t> keep(un);
    fill_half_mask(keep.data(), un);
    for (size_t i = 0; i < un; ++i) {
      visit_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Half> ||
                      std::is_same_v<T, BFloat16>) {
          w.as<T>()[i] = T(values[i]);
          if (form == Form::floats) mask.as<T>()[i] = T(static_cast<float>(keep[i]));
        }
      });
    }
    if (form == Form::bytes) std::copy(keep.begin(), keep.end(), mask.get());
    if (form == Form::bits) kernels::bytes_to_bits(keep.data(), un, mask.get());
  }
  kernels::ScopedIsaOverride force(isa);
  const int saved_threads = kernels::num_threads();
  kernels::set_num_threads(threads);
  void* dst = in_place ? w.get() : out.get();
  for (auto _ : state) {
    switch (form) {
      case Form::bytes: kernels::apply_mask_bytes(dtype, w.get(), mask.get(), dst, un); break;
      case Form::bits: kernels::apply_mask_bits(dtype, w.get(), mask.get(), dst, un); break;
      case Form::floats: kernels::apply_mask_float(dtype, w.get(), mask.get(), dst, un); break;
    }
    benchmark::DoNotOptimize(dst);
    benchmark::ClobberMemory();
  }
  kernels::set_num_threads(saved_threads);
  const int64_t mask_bytes = form == Form::bytes ? n : form == Form::bits ? (n + 7) / 8 : n * int64_t(es);
  set_rates(state, n, 2 * n * static_cast<int64_t>(es) + mask_bytes);
}

void register_one(DType dtype, Form form, Isa isa, int threads, bool in_place, const std::vector<int64_t>& sizes) {
  std::string name = std::string(in_place ? "BM_SquashMask<" : "BM_ApplyMask<") + to_string(dtype) + "," +
                     form_name(form) + "," + kernels::to_string(isa);
  if (threads > 1) name += "," + std::to_string(threads) + "threads";
  name += ">";
  register_sized(
      name, [=](benchmark::State& s) { run_apply(s, dtype, form, isa, threads, in_place); }, sizes);
}

const bool registered = [] {
  const std::vector<int64_t> all_sizes{1 << 12, 1 << 16, 1 << 20, 1 << 22, 1 << 24};
  const std::vector<int64_t> two_sizes{1 << 16, 1 << 24};
  const std::vector<Isa> isas = registry_isas("apply_mask");
  for (bool in_place : {false, true}) {
    for (Isa isa : isas) {
      for (Form form : {Form::bytes, Form::bits, Form::floats}) {
        register_one(DType::f32, form, isa, 1, in_place, all_sizes);
      }
      for (DType dt : {DType::f64, DType::f16, DType::bf16}) {
        register_one(dt, Form::bytes, isa, 1, in_place, two_sizes);
      }
    }
    for (Form form : {Form::bytes, Form::bits}) {
      register_one(DType::f32, form, isas.back(), 2, in_place, {1 << 24});
    }
  }
  return true;
}();

}  // namespace
}  // namespace sparsity::bench

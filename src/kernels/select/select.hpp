// k-smallest selection in O(n): SIMD order-preserving keys (this header), then the radix select of
// select.cpp: the threshold key, the keys below it and the first ties in index order.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/dispatch.hpp"
#include "kernels/fused.hpp"
#include "kernels/simd_util.hpp"

namespace sparsity::kernels {

/// Order-preserving unsigned keys of float scores (NaN of any payload -> the largest key, above +inf;
/// -0.0 -> the key of +0.0), computed with integer batch ops of the score's width.
template <class Arch, class K>
struct OrderKeys {
  using B = xsimd::batch<K, Arch>;
  static constexpr K kSign = K{1} << (8 * sizeof(K) - 1);
  static constexpr K kInfBits = sizeof(K) == 4 ? K(0x7f800000u) : K(0x7ff0000000000000ull);

  static B keys(const B& u) {
    const B sign(kSign), zero(K{0}), all(static_cast<K>(~K{0}));
    const B magnitude = u & B(static_cast<K>(~kSign));
    const auto is_nan = magnitude > B(kInfBits);
    const B v = xsimd::select(u == sign, zero, u);  // -0.0 -> +0.0
    const B key = xsimd::select((v & sign) != zero, v ^ all, v | sign);
    return xsimd::select(is_nan, all, key);
  }

  /// keys[i] for n scores given as raw bits.
  static void run(const K* bits, size_t n, K* out) {
    constexpr size_t L = B::size;
    size_t i = 0;
    for (; i + L <= n; i += L) keys(B::load_unaligned(bits + i)).store_unaligned(out + i);
    for (; i < n; ++i) out[i] = scalar(bits[i]);
  }

  static K scalar(K u) {
    if ((u & static_cast<K>(~kSign)) > kInfBits) return static_cast<K>(~K{0});
    if (u == kSign) u = 0;
    return (u & kSign) ? static_cast<K>(~u) : static_cast<K>(u | kSign);
  }
};

/// Selection driver, compiled with the baseline flags (select.cpp): it owns the key buffer and the radix
/// select, and calls the ISA's key kernel. Keeping std::vector and the scalar passes out of the ISA files
/// means no shared template instance can carry AVX code into the SSE2 path.
void select_with_keys_u32(const uint32_t* bits, size_t n, size_t k, uint8_t* selected,
                          void (*make_keys)(const uint32_t*, size_t, uint32_t*));
void select_with_keys_u64(const uint64_t* bits, size_t n, size_t k, uint8_t* selected,
                          void (*make_keys)(const uint64_t*, size_t, uint64_t*));

/// Selection kernels of one ISA: SIMD keys, shared radix select.
template <class Arch>
struct Select {
  static void fill(KernelTable& table);

  static void run_f32(const float* scores, size_t n, size_t k, uint8_t* selected) {
    select_with_keys_u32(reinterpret_cast<const uint32_t*>(scores), n, k, selected, &OrderKeys<Arch, uint32_t>::run);
  }
  static void run_f64(const double* scores, size_t n, size_t k, uint8_t* selected) {
    select_with_keys_u64(reinterpret_cast<const uint64_t*>(scores), n, k, selected, &OrderKeys<Arch, uint64_t>::run);
  }
};

template <class Arch>
void Select<Arch>::fill(KernelTable& t) {
  t.select_f32 = &Select::run_f32;
  t.select_f64 = &Select::run_f64;
}

SPARSITY_EXTERN_KERNEL_FAMILY(Select)

}  // namespace sparsity::kernels

// k-smallest selection in O(n): SIMD order-preserving keys, radix select of the threshold key, then the
// keys below it and the first ties in index order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/dispatch.hpp"
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

/// Selection kernels of one ISA.
template <class Arch>
struct Select {
  static void fill(KernelTable& table);

  template <class T>
  static void run(const T* scores, size_t n, size_t k, uint8_t* selected) {
    using K = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    if (k >= n) {
      std::fill(selected, selected + n, uint8_t{1});
      return;
    }
    std::fill(selected, selected + n, uint8_t{0});
    if (k == 0) return;
    std::vector<K> keys(n);
    OrderKeys<Arch, K>::run(reinterpret_cast<const K*>(scores), n, keys.data());
    // Radix select, most significant 11-bit digit first: `rank` is the 1-based rank of the threshold
    // among the candidates, the keys that share the digits found so far. After each pass only the
    // candidates are kept, so later passes are short.
    constexpr int kDigitBits = 11;
    constexpr int kBits = 8 * sizeof(K);
    std::vector<size_t> hist(size_t{1} << kDigitBits);
    std::vector<K> candidates;
    const K* cand = keys.data();
    size_t count = n;
    K prefix = 0;
    size_t rank = k;
    for (int shift = kBits - kDigitBits; shift > -kDigitBits; shift -= kDigitBits) {
      const int s = std::max(shift, 0);
      const int width = shift >= 0 ? kDigitBits : kDigitBits + shift;
      const K digit_mask = static_cast<K>((K{1} << width) - 1);
      std::fill(hist.begin(), hist.end(), size_t{0});
      for (size_t i = 0; i < count; ++i) ++hist[static_cast<size_t>((cand[i] >> s) & digit_mask)];
      size_t d = 0;
      for (; hist[d] < rank; ++d) rank -= hist[d];
      prefix = static_cast<K>(prefix | (static_cast<K>(d) << s));
      if (s == 0) break;
      // Keep the candidates whose digit is d (in place once the first copy exists).
      std::vector<K> next;
      next.reserve(hist[d]);
      for (size_t i = 0; i < count; ++i) {
        if (static_cast<size_t>((cand[i] >> s) & digit_mask) == d) next.push_back(cand[i]);
      }
      candidates.swap(next);
      cand = candidates.data();
      count = candidates.size();
    }
    const K threshold = prefix;
    for (size_t i = 0; i < n; ++i) selected[i] = keys[i] < threshold;
    // `rank` keys equal to the threshold complete the k: the lowest indices first.
    for (size_t i = 0; i < n && rank > 0; ++i) {
      if (keys[i] == threshold) {
        selected[i] = 1;
        --rank;
      }
    }
  }
};

template <class Arch>
void Select<Arch>::fill(KernelTable& t) {
  t.select_f32 = &Select::run<float>;
  t.select_f64 = &Select::run<double>;
}

extern template struct Select<xsimd::sse2>;
#ifdef SPARSITY_HAVE_AVX2
extern template struct Select<xsimd::avx2>;
#endif
#ifdef SPARSITY_HAVE_AVX512
extern template struct Select<xsimd::avx512bw>;
#endif

}  // namespace sparsity::kernels

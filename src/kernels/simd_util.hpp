// Arch-templated helpers shared by the SIMD kernel families (every helper is a template on Arch, so the
// copy compiled with one ISA's flags is never linked into another ISA's kernels).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

// GCC 12 reports false "(maybe) uninitialized" warnings inside its own AVX-512 shift intrinsics.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop

// Declares the explicit instantiations of a kernel family's ISA template for every compiled ISA. They are
// defined in <family>_<isa>.cpp with that ISA's flags, and no other object file may instantiate them.
#ifdef SPARSITY_HAVE_AVX2
#define SPARSITY_EXTERN_AVX2(Family) extern template struct Family<xsimd::avx2>;
#else
#define SPARSITY_EXTERN_AVX2(Family)
#endif
#ifdef SPARSITY_HAVE_AVX512
#define SPARSITY_EXTERN_AVX512(Family) extern template struct Family<xsimd::avx512bw>;
#else
#define SPARSITY_EXTERN_AVX512(Family)
#endif
#define SPARSITY_EXTERN_KERNEL_FAMILY(Family) \
  extern template struct Family<xsimd::sse2>; \
  SPARSITY_EXTERN_AVX2(Family)                \
  SPARSITY_EXTERN_AVX512(Family)

namespace sparsity::kernels::simd {

template <class Arch>
constexpr bool is_avx512 = std::is_base_of_v<xsimd::avx512f, Arch>;
template <class Arch>
constexpr bool is_avx = std::is_base_of_v<xsimd::avx, Arch>;

/// Unaligned scalar load/store through memcpy (any alignment, no aliasing issue).
template <class Arch, class U>
inline U load_scalar(const void* p) {
  U v;
  std::memcpy(&v, p, sizeof(U));
  return v;
}
template <class Arch, class U>
inline void store_scalar(void* p, U v) {
  std::memcpy(p, &v, sizeof(U));
}

/// Stores an integer batch; with Stream, a non-temporal store (p must be aligned to the batch size).
template <bool Stream, class Arch, class T>
inline void store(T* p, const xsimd::batch<T, Arch>& v) {
  if constexpr (Stream) {
    if constexpr (is_avx512<Arch>) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p), v);
    } else if constexpr (is_avx<Arch>) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
    } else {
      _mm_stream_si128(reinterpret_cast<__m128i*>(p), v);
    }
  } else {
    v.store_unaligned(p);
  }
}

/// Returns v unchanged, but hides its computation from the optimiser: a product passed through it cannot
/// be fused with a later addition into an FMA (which rounds once, unlike the scalar reference).
template <class Arch, class T>
inline xsimd::batch<T, Arch> opaque(const xsimd::batch<T, Arch>& v) {
  typename xsimd::batch<T, Arch>::register_type r = v;
  __asm__("" : "+v"(r));
  return xsimd::batch<T, Arch>(r);
}

/// Orders the non-temporal stores before whatever follows.
template <class Arch>
inline void stream_fence() {
  _mm_sfence();
}

/// The next batch<uint32_t>::size bytes at p, zero-extended to 32-bit lanes.
template <class Arch>
inline xsimd::batch<uint32_t, Arch> load_widen_u8(const uint8_t* p) {
  if constexpr (is_avx512<Arch>) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else if constexpr (is_avx<Arch>) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  } else {
    int32_t four;
    std::memcpy(&four, p, 4);
    const __m128i zero = _mm_setzero_si128();
    return _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(four), zero), zero);
  }
}

/// Bit l set iff lane l of a 32-bit-lane condition is true.
template <class Arch, class T>
inline uint64_t movemask(const xsimd::batch_bool<T, Arch>& b) {
  static_assert(sizeof(T) == 4, "32-bit lanes");
  const typename xsimd::batch_bool<T, Arch>::register_type r = b;
  if constexpr (is_avx512<Arch>) {
    return static_cast<uint64_t>(r);
  } else if constexpr (is_avx<Arch>) {
    if constexpr (std::is_same_v<T, float>) {
      return static_cast<uint64_t>(_mm256_movemask_ps(r));
    } else {
      return static_cast<uint64_t>(_mm256_movemask_ps(_mm256_castsi256_ps(r)));
    }
  } else {
    if constexpr (std::is_same_v<T, float>) {
      return static_cast<uint64_t>(_mm_movemask_ps(r));
    } else {
      return static_cast<uint64_t>(_mm_movemask_ps(_mm_castsi128_ps(r)));
    }
  }
}

/// Bit i set iff byte i of the little-endian word `x` is non-zero (i < 8).
template <class Arch>
inline uint64_t nonzero_bytes_to_bits(uint64_t x) {
  const uint64_t low7 = 0x7f7f7f7f7f7f7f7full;
  const uint64_t high = (((x & low7) + low7) | x) & 0x8080808080808080ull;
  // The multiplier moves bit 8i + 7 to bit 56 + i; the partial products never overlap, so no carries.
  return ((high >> 7) * 0x0102040810204080ull) >> 56;
}

/// 64 mask bytes -> 64 keep bits.
template <class Arch>
inline uint64_t bytes64_to_bits(const uint8_t* m) {
  uint64_t word = 0;
  for (int j = 0; j < 8; ++j) word |= nonzero_bytes_to_bits<Arch>(load_scalar<Arch, uint64_t>(m + 8 * j)) << (8 * j);
  return word;
}

/// 64 keep bits starting at bit `first` of `bits` (bits[first / 8 .. (first + 63) / 8] must exist).
template <class Arch>
inline uint64_t bits64_at(const uint8_t* bits, size_t first) {
  const uint8_t* p = bits + first / 8;
  const unsigned shift = static_cast<unsigned>(first % 8);
  const uint64_t lo = load_scalar<Arch, uint64_t>(p);
  return shift == 0 ? lo : (lo >> shift) | (static_cast<uint64_t>(p[8]) << (64 - shift));
}

}  // namespace sparsity::kernels::simd

// Lane helpers of the sparse-linear kernels: the SIMD operations xsimd 8.1 lacks, templated on the ISA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/dispatch.hpp"
#include "kernels/simd_util.hpp"

namespace sparsity::kernels {

/// Lane operations xsimd 8.1 lacks (widening loads, f16 -> f32, left-packing selected lanes, clamped
/// index loads, concatenated pieces), and the scalar helpers of the kernels. Every one is a template on
/// the ISA, so the copy compiled with one ISA's flags is never linked into another's kernels.
template <class Arch>
struct SparseLanes {
  using BF = xsimd::batch<float, Arch>;
  using BU = xsimd::batch<uint32_t, Arch>;
  using BI = xsimd::batch<int32_t, Arch>;
  static constexpr int64_t L = static_cast<int64_t>(BF::size);

  /// A product rounded to f32 on its own: never fused with the addition that follows (the scalar
  /// reference rounds twice, and so does every ISA).
  static BF mul(const BF& a, const BF& b) { return simd::opaque<Arch>(a * b); }
  static float mul(float a, float b) {
    float p = a * b;
    __asm__("" : "+x"(p));
    return p;
  }

  static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

  /// Bytes ahead of the value, index and mask streams to prefetch: with few loads per instruction the
  /// out-of-order window alone keeps too few cache lines in flight to reach memory bandwidth.
  static constexpr int64_t kPrefetchBytes = 4096;
  /// Prefetches the cache lines kPrefetchBytes ahead of [p, p + bytes) (bytes a multiple of 64, or
  /// smaller: one line).
  static void prefetch_ahead(const void* p, int64_t bytes) {
    const char* q = static_cast<const char*>(p) + kPrefetchBytes;
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(q + o);
  }
  static int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }
  static int popcount(uint32_t v) { return __builtin_popcount(v); }

  /// Element i of an index or offset part (u8, i16, i32 or i64) as int64.
  static int64_t index_at(const void* p, DType dtype, int64_t i) {
    switch (dtype) {
      case DType::u8: return static_cast<const uint8_t*>(p)[i];
      case DType::i16: {
        int16_t v;
        std::memcpy(&v, static_cast<const char*>(p) + 2 * i, 2);
        return v;
      }
      case DType::i32: {
        int32_t v;
        std::memcpy(&v, static_cast<const char*>(p) + 4 * i, 4);
        return v;
      }
      default: {
        int64_t v;
        std::memcpy(&v, static_cast<const char*>(p) + 8 * i, 8);
        return v;
      }
    }
  }
  /// A column (or block-column) index read as unsigned 32 bits and clamped to `last`.
  template <class I>
  static int64_t column(const I* p, int64_t k, int64_t last) {
    I v;
    std::memcpy(&v, p + k, sizeof(I));
    const uint32_t u = static_cast<uint32_t>(static_cast<int32_t>(v));
    return u > static_cast<uint64_t>(last) ? last : static_cast<int64_t>(u);
  }

  // ---- values -------------------------------------------------------------------------------------

  static float half_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu;
    uint32_t mag;
    if (em >= 0x7c00u) {
      mag = 0x7f800000u | ((em & 0x3ffu) << 13);
    } else {
      float f;
      const uint32_t shifted = em << 13;
      std::memcpy(&f, &shifted, 4);
      f *= 0x1p112f;  // exact: a power of two
      std::memcpy(&mag, &f, 4);
    }
    const uint32_t bits = mag | sign;
    float out;
    std::memcpy(&out, &bits, 4);
    return out;
  }

  /// One value of storage type V (float, Half or BFloat16) as f32.
  template <class V>
  static float value(const V* p) {
    if constexpr (std::is_same_v<V, float>) {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    } else {
      uint16_t h;
      std::memcpy(&h, p, 2);
      if constexpr (std::is_same_v<V, BFloat16>) {
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        float v;
        std::memcpy(&v, &bits, 4);
        return v;
      } else {
        return half_to_float(h);
      }
    }
  }

  /// The next L u16 at p, zero-extended to 32-bit lanes.
  static BU widen_u16(const void* p) {
    if constexpr (simd::is_avx512<Arch>) {
      return _mm512_cvtepu16_epi32(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
    } else if constexpr (simd::is_avx<Arch>) {
      return _mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    } else {
      return _mm_unpacklo_epi16(_mm_loadl_epi64(static_cast<const __m128i*>(p)), _mm_setzero_si128());
    }
  }

  /// L values of storage type V as f32 lanes (conversions are exact).
  template <class V>
  static BF load(const V* p) {
    if constexpr (std::is_same_v<V, float>) {
      return BF::load_unaligned(p);
    } else if constexpr (std::is_same_v<V, BFloat16>) {
      return xsimd::bitwise_cast<BF>(widen_u16(p) << 16);
    } else if constexpr (simd::is_avx512<Arch>) {
      return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    } else if constexpr (simd::is_avx<Arch>) {
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
      // binary16 -> binary32 without F16C: rebias normal and subnormal values by a multiply by 2^112.
      const BU h = widen_u16(p);
      const BU sign = (h & BU(0x8000u)) << 16;
      const BU em = h & BU(0x7fffu);
      const BF scaled = xsimd::bitwise_cast<BF>(em << 13) * BF(0x1p112f);
      const BU special = BU(0x7f800000u) | ((em & BU(0x3ffu)) << 13);
      const BU mag = xsimd::select(em >= BU(0x7c00u), special, xsimd::bitwise_cast<BU>(scaled));
      return xsimd::bitwise_cast<BF>(mag | sign);
    }
  }

  // ---- input lanes ----------------------------------------------------------------------------------

  /// Lane l of each entry of the left-pack table: the index of the l-th set bit of the byte (4 bits each).
  struct LeftPackTable {
    uint32_t v[256];
    constexpr LeftPackTable() : v() {
      for (uint32_t m = 0; m < 256; ++m) {
        uint32_t packed = 0, k = 0;
        for (uint32_t j = 0; j < 8; ++j) {
          if ((m >> j) & 1u) packed |= j << (4 * k++);
        }
        v[m] = packed;
      }
    }
  };
  static constexpr LeftPackTable kLeftPack{};

  /// The lanes of x whose bit is set, moved in order to lanes 0, 1, ... (the others unspecified).
  static BF compress(const BF& x, uint32_t bits) {
    if constexpr (simd::is_avx512<Arch>) {
      return _mm512_maskz_compress_ps(static_cast<__mmask16>(bits), x);
    } else {
      static_assert(simd::is_avx<Arch>, "compress: AVX2 or AVX-512");
      const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
      const __m256i idx = _mm256_and_si256(
          _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(kLeftPack.v[bits & 0xffu])), shifts),
          _mm256_set1_epi32(7));
      return _mm256_permutevar8x32_ps(x, idx);
    }
  }

  /// Writes x[j] for the set bits j < L of `bits`, in order, to out[0, popcount(bits)); may write up
  /// to L floats at out.
  static void left_pack(const float* x, uint32_t bits, float* out) {
    if constexpr (simd::is_avx<Arch> || simd::is_avx512<Arch>) {
      compress(BF::load_unaligned(x), bits).store_unaligned(out);
    } else {
      int k = 0;
      for (int j = 0; j < 4; ++j) {
        if ((bits >> j) & 1u) out[k++] = x[j];
      }
    }
  }

  /// Slots 0..L/2-1 of a and then of b (each holding L/2 compressed lanes).
  static BF join_halves(const BF& a, const BF& b) {
    if constexpr (simd::is_avx512<Arch>) {
      return _mm512_shuffle_f32x4(a, b, 0x44);
    } else {
      static_assert(simd::is_avx<Arch>, "join_halves: AVX2 or AVX-512");
      return _mm256_permute2f128_ps(a, b, 0x20);
    }
  }
  /// Slots 0..3 of a, b, c and d (AVX-512: four compressed quarters).
  static BF join_quarters(const BF& a, const BF& b, const BF& c, const BF& d) {
    static_assert(simd::is_avx512<Arch>, "join_quarters: AVX-512");
    const __m512 ab = _mm512_shuffle_f32x4(a, b, 0x00);  // a0 a0 b0 b0
    const __m512 cd = _mm512_shuffle_f32x4(c, d, 0x00);  // c0 c0 d0 d0
    return _mm512_shuffle_f32x4(ab, cd, 0x88);           // a0 b0 c0 d0
  }

  /// Entry n (< 16) of the first half: the lowest set bit of the nibble n; entry 16 + n: its second
  /// set bit (0 where there is none).
  struct NibbleTable {
    int32_t v[32];
    constexpr NibbleTable() : v() {
      for (int32_t n = 0; n < 16; ++n) {
        int32_t k = 0;
        for (int32_t j = 0; j < 4; ++j) {
          if ((n >> j) & 1) v[16 * k++ + n] = j;
          if (k == 2) break;
        }
      }
    }
  };
  static constexpr NibbleTable kNibbles{};

  /// AVX-512, 2:4 slots: the inputs of the 16 slots of columns [0, 32) at x, given the 32 mask bits of
  /// those columns (two set bits per nibble): slot l is column 4 (l / 2) + the first (even l) or second
  /// (odd l) set bit of nibble l / 2. Two table lookups and a two-source permute, no compress.
  static BF select_24(const float* x, uint32_t bits) {
    static_assert(simd::is_avx512<Arch>, "select_24: AVX-512");
    const __m512i group = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    const __m512i parity = _mm512_setr_epi32(0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16);
    const __m512i nibble = _mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(bits)), group);
    const __m512i key = _mm512_ternarylogic_epi32(nibble, _mm512_set1_epi32(0xf), parity, 0xea);  // (a & b) | c
    const __m512i pos = _mm512_permutex2var_epi32(_mm512_loadu_si512(kNibbles.v), key, _mm512_loadu_si512(kNibbles.v + 16));
    return _mm512_permutex2var_ps(_mm512_loadu_ps(x), _mm512_add_epi32(pos, group), _mm512_loadu_ps(x + 16));
  }

  /// The lanes of v summed by pairwise halving: lane j += lane j + h for h = L/2, ..., 1; lane 0.
  static float halve_lanes(const BF& v) {
    __m128 s;
    if constexpr (simd::is_avx512<Arch>) {
      const __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
      s = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    } else if constexpr (simd::is_avx<Arch>) {
      s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    } else {
      s = v;
    }
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));           // lanes 0, 1: p0 + p2, p1 + p3
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55)));  // p0 + p1
  }

  /// n < L values at p as f32 lanes (the others 0), reading only those n.
  template <class V>
  static BF load_partial(const V* p, int64_t n) {
    if constexpr (simd::is_avx512<Arch>) {
      const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
      if constexpr (std::is_same_v<V, float>) {
        return _mm512_maskz_loadu_ps(m, p);
      } else {
        const __m256i h = _mm256_maskz_loadu_epi16(m, p);
        if constexpr (std::is_same_v<V, BFloat16>) {
          return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        } else {
          return _mm512_cvtph_ps(h);
        }
      }
    } else {
      V tmp[L] = {};
      std::memcpy(tmp, p, static_cast<size_t>(n) * sizeof(V));
      return load(tmp);
    }
  }

  using BB = xsimd::batch_bool<float, Arch>;

  /// The lanes whose bit of `bits` is set.
  static BB lanes_of(uint32_t bits) {
    if constexpr (simd::is_avx512<Arch>) {
      return BB(static_cast<__mmask16>(bits));
    } else if constexpr (simd::is_avx<Arch>) {
      const __m256i one = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
      const __m256i hit = _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), one);
      return BB(_mm256_castsi256_ps(_mm256_cmpeq_epi32(hit, one)));
    } else {
      const __m128i one = _mm_setr_epi32(1, 2, 4, 8);
      const __m128i hit = _mm_and_si128(_mm_set1_epi32(static_cast<int>(bits)), one);
      return BB(_mm_castsi128_ps(_mm_cmpeq_epi32(hit, one)));
    }
  }
  /// Lanes l < n (0 <= n <= L).
  static BB lanes_below(int64_t n) { return lanes_of((1u << n) - 1u); }

  /// Lane l of each entry of the expand table: the rank of bit l among the set bits of the byte, i.e. the
  /// source lane of lane l (4 bits each).
  struct ExpandTable {
    uint32_t v[256];
    constexpr ExpandTable() : v() {
      for (uint32_t m = 0; m < 256; ++m) {
        uint32_t packed = 0, k = 0;
        for (uint32_t j = 0; j < 8; ++j) {
          if ((m >> j) & 1u) packed |= k++ << (4 * j);
        }
        v[m] = packed;
      }
    }
  };
  static constexpr ExpandTable kExpand{};

  /// The popcount(bits) values at p, as f32, placed in order in the lanes whose bit is set (the other
  /// lanes are unspecified). Never reads at or past `end`.
  template <class V>
  static BF expand(const V* p, uint32_t bits, const V* end) {
    if constexpr (simd::is_avx512<Arch>) {
      const __mmask16 m = static_cast<__mmask16>(bits);
      if constexpr (std::is_same_v<V, float>) {
        return _mm512_maskz_expandloadu_ps(m, p);
      } else {
        const __mmask16 low = static_cast<__mmask16>((1u << popcount(bits)) - 1u);
        const __m256i h = _mm256_maskz_loadu_epi16(low, p);
        __m512 f;
        if constexpr (std::is_same_v<V, BFloat16>) {
          f = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        } else {
          f = _mm512_cvtph_ps(h);
        }
        return _mm512_maskz_expand_ps(m, f);
      }
    } else {
      static_assert(simd::is_avx<Arch>, "expand: AVX2 or AVX-512");
      BF v;
      if (end - p >= L) {
        v = load(p);
      } else {
        V tmp[L] = {};
        std::memcpy(tmp, p, static_cast<size_t>(end - p) * sizeof(V));
        v = load(tmp);
      }
      const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
      const __m256i idx = _mm256_and_si256(
          _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(kExpand.v[bits & 0xffu])), shifts),
          _mm256_set1_epi32(7));
      return _mm256_permutevar8x32_ps(v, idx);
    }
  }

  /// L column indices of type I (u8, i16 sign-extended, i32) as unsigned lanes clamped to `last`.
  template <class I>
  static BU load_columns(const I* p, uint32_t last) {
    BU v;
    if constexpr (sizeof(I) == 4) {
      v = BU::load_unaligned(reinterpret_cast<const uint32_t*>(p));
    } else if constexpr (sizeof(I) == 1) {
      v = simd::load_widen_u8<Arch>(reinterpret_cast<const uint8_t*>(p));
    } else if constexpr (simd::is_avx512<Arch>) {
      v = _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    } else if constexpr (simd::is_avx<Arch>) {
      v = _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
      const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
      v = _mm_srai_epi32(_mm_unpacklo_epi16(h, h), 16);
    }
    return xsimd::min(v, BU(last));
  }

  /// a in lanes 0 .. L/2 - 1, b in lanes L/2 .. L - 1.
  static BF two_runs(float a, float b) {
    if constexpr (simd::is_avx512<Arch>) {
      return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
    } else if constexpr (simd::is_avx<Arch>) {
      return _mm256_insertf128_ps(_mm256_set1_ps(a), _mm_set1_ps(b), 1);
    } else {
      return _mm_setr_ps(a, a, b, b);
    }
  }

  /// Lane l of the result is lane idx[l] of v (idx[l] < L).
  static BU permute(const BU& v, const BU& idx) {
    if constexpr (simd::is_avx512<Arch>) {
      return _mm512_permutexvar_epi32(idx, v);
    } else if constexpr (simd::is_avx<Arch>) {
      return _mm256_permutevar8x32_epi32(v, idx);
    } else {
      alignas(16) uint32_t a[4], i[4], out[4];
      v.store_aligned(a);
      idx.store_aligned(i);
      for (int j = 0; j < 4; ++j) out[j] = a[i[j] & 3u];
      return BU::load_aligned(out);
    }
  }

  /// x at L (clamped) indices.
  static BF gather(const float* x, const BU& idx) {
    // xsimd 8.1's batch::gather misses its AVX2 / AVX-512 overloads (explicit template arguments rule
    // them out) and falls back to a scalar loop.
    if constexpr (simd::is_avx512<Arch>) {
      return _mm512_i32gather_ps(idx, x, 4);
    } else if constexpr (simd::is_avx<Arch>) {
      return _mm256_i32gather_ps(x, idx, 4);
    } else {
      alignas(16) uint32_t i[4];
      idx.store_aligned(i);
      return _mm_setr_ps(x[i[0]], x[i[1]], x[i[2]], x[i[3]]);
    }
  }

  /// L / C consecutive runs of C floats, run j starting at x + starts[j] (C = 4 or 8, C < L).
  template <int64_t C>
  static BF concat(const float* x, const int64_t* starts) {
    if constexpr (simd::is_avx512<Arch> && C == 8) {
      return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(x + starts[0])), _mm256_loadu_ps(x + starts[1]),
                                1);
    } else if constexpr (simd::is_avx512<Arch> && C == 4) {
      __m512 v = _mm512_castps128_ps512(_mm_loadu_ps(x + starts[0]));
      v = _mm512_insertf32x4(v, _mm_loadu_ps(x + starts[1]), 1);
      v = _mm512_insertf32x4(v, _mm_loadu_ps(x + starts[2]), 2);
      return _mm512_insertf32x4(v, _mm_loadu_ps(x + starts[3]), 3);
    } else {
      static_assert(simd::is_avx<Arch> && C == 4, "runs of 4 floats on AVX2, 4 or 8 on AVX-512");
      return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(x + starts[0])), _mm_loadu_ps(x + starts[1]), 1);
    }
  }

  /// The L bits of a bitmask row for columns [c, c + L) (c a multiple of L); bits at or beyond `cols`
  /// are 0, and no byte past the row's ceil(cols / 8) is read.
  static uint32_t chunk_bits(const uint8_t* row, int64_t c, int64_t cols) {
    uint32_t b;
    if constexpr (L == 16) {
      b = row[c / 8];
      if (c + 8 < cols) b |= static_cast<uint32_t>(row[c / 8 + 1]) << 8;
    } else if constexpr (L == 8) {
      b = row[c / 8];
    } else {
      b = (row[c / 8] >> (c % 8)) & 0xfu;
    }
    const int64_t valid = cols - c;
    return valid >= L ? b : b & ((1u << valid) - 1u);
  }
};

}  // namespace sparsity::kernels

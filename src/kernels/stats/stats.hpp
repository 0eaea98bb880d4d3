// Mask statistics and conversions: kept-element counts, bytes <-> bits <-> any-dtype masks, for every ISA.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>

#include "kernels/dispatch.hpp"
#include "kernels/simd_util.hpp"

namespace sparsity::kernels {

/// Counting and conversion kernels of one ISA. Byte counts accumulate 0/1 per byte lane for at most 255
/// batches before folding; bit counts use a per-byte SWAR popcount on 64-bit lanes.
template <class Arch>
struct Stats {
  using B8 = xsimd::batch<uint8_t, Arch>;
  using B64 = xsimd::batch<uint64_t, Arch>;

  static void fill(KernelTable& table);

  static int64_t count_bytes(const uint8_t* mask, size_t n) {
    constexpr size_t L = B8::size;
    const B8 zero(uint8_t{0}), one(uint8_t{1});
    int64_t total = 0;
    size_t i = 0;
    while (i + L <= n) {
      B8 acc(uint8_t{0});
      // At most 255 batches per fold, so a byte lane cannot overflow.
      const size_t end = std::min(n - (n - i) % L, i + 255 * L);
      for (; i < end; i += L) acc += xsimd::select(B8::load_unaligned(mask + i) != zero, one, zero);
      total += fold_bytes(acc);
    }
    for (; i < n; ++i) total += mask[i] != 0;
    return total;
  }

  static int64_t count_bits(const uint8_t* bits, size_t n) {
    constexpr size_t kBytes = sizeof(B64);
    const size_t full = n / 8;
    const B64 m1(0x5555555555555555ull), m2(0x3333333333333333ull), m4(0x0f0f0f0f0f0f0f0full);
    int64_t total = 0;
    size_t i = 0;
    while (i + kBytes <= full) {
      B8 acc(uint8_t{0});
      // Per-byte counts are at most 8: 31 batches fit in a byte lane.
      const size_t end = std::min(full - (full - i) % kBytes, i + 31 * kBytes);
      for (; i < end; i += kBytes) {
        B64 x = B64::load_unaligned(reinterpret_cast<const uint64_t*>(bits + i));
        x = x - ((x >> 1) & m1);
        x = (x & m2) + ((x >> 2) & m2);
        x = (x + (x >> 4)) & m4;
        acc += xsimd::bitwise_cast<B8>(x);
      }
      total += fold_bytes(acc);
    }
    for (; i < full; ++i) total += popcount8(bits[i]);
    if (n % 8) total += popcount8(static_cast<uint8_t>(bits[full] & ((1u << (n % 8)) - 1u)));
    return total;
  }

  static void bytes_to_bits(const uint8_t* bytes, size_t n, uint8_t* bits) {
    constexpr size_t kLanes = B64::size;
    const B64 low7(0x7f7f7f7f7f7f7f7full), high(0x8080808080808080ull);
    alignas(64) uint64_t lanes[kLanes];
    size_t i = 0;
    for (; i + 8 * kLanes <= n; i += 8 * kLanes) {
      const B64 x = B64::load_unaligned(reinterpret_cast<const uint64_t*>(bytes + i));
      // High bit of every non-zero byte, then fold the eight flags into the low byte of the lane.
      B64 y = ((((x & low7) + low7) | x) & high) >> 7;
      y = y | (y >> 7);
      y = y | (y >> 14);
      y = y | (y >> 28);
      y.store_aligned(lanes);
      for (size_t k = 0; k < kLanes; ++k) bits[i / 8 + k] = static_cast<uint8_t>(lanes[k]);
    }
    for (; i < n; i += 8) {
      uint8_t b = 0;
      for (size_t k = 0; k < 8 && i + k < n; ++k) b = static_cast<uint8_t>(b | ((bytes[i + k] != 0) << k));
      bits[i / 8] = b;
    }
  }

  static void bits_to_bytes(const uint8_t* bits, size_t n, uint8_t* bytes) {
    bits_to_mask<uint8_t>(bits, n, 1, bytes);
  }

  template <class U>
  static void bits_to_mask(const uint8_t* bits, size_t n, uint64_t one, void* out) {
    size_t i = 0;
    if constexpr (sizeof(U) == 1) {
      for (; i + 8 <= n; i += 8) {
        // Spread bit k of the byte to byte k, turn each non-zero byte into 1, then scale to `one`.
        const uint64_t spread = (bits[i / 8] * 0x0101010101010101ull) & 0x8040201008040201ull;
        const uint64_t ones = ((((spread & 0x7f7f7f7f7f7f7f7full) + 0x7f7f7f7f7f7f7f7full) | spread) >> 7) &
                              0x0101010101010101ull;
        simd::store_scalar<Arch, uint64_t>(static_cast<uint8_t*>(out) + i, ones * (one & 0xffu));
      }
    } else if constexpr (sizeof(U) >= 4) {
      // Each batch tests its lanes' bits of one 64-bit word of flags.
      using BW = xsimd::batch<U, Arch>;
      constexpr size_t L = BW::size;
      alignas(64) U lane_bits[L];
      for (size_t l = 0; l < L; ++l) lane_bits[l] = static_cast<U>(U{1} << l);
      const BW bit = BW::load_aligned(lane_bits), zero(U{0}), v(static_cast<U>(one));
      U* o = static_cast<U*>(out);
      for (; i + 64 <= n; i += 64) {
        const uint64_t word = simd::load_scalar<Arch, uint64_t>(bits + i / 8);
        for (size_t j = 0; j < 64; j += L) {
          const BW flags(static_cast<U>(word >> j));
          xsimd::select((flags & bit) != zero, v, zero).store_unaligned(o + i + j);
        }
      }
    }
    for (; i < n; ++i) {
      simd::store_scalar<Arch, U>(static_cast<char*>(out) + i * sizeof(U),
                                  (bits[i / 8] >> (i % 8)) & 1u ? static_cast<U>(one) : U{0});
    }
  }

  template <class U>
  static void bytes_to_mask(const uint8_t* bytes, size_t n, uint64_t one, void* out) {
    size_t i = 0;
    if constexpr (sizeof(U) == 1) {
      constexpr size_t L = B8::size;
      const B8 zero(uint8_t{0}), v(static_cast<uint8_t>(one));
      for (; i + L <= n; i += L) {
        xsimd::select(B8::load_unaligned(bytes + i) != zero, v, zero).store_unaligned(static_cast<uint8_t*>(out) + i);
      }
    }
    for (; i < n; ++i) {
      simd::store_scalar<Arch, U>(static_cast<char*>(out) + i * sizeof(U), bytes[i] ? static_cast<U>(one) : U{0});
    }
  }

  template <class U>
  static void mask_to_bytes(const void* mask, size_t n, uint64_t value_bits, uint8_t* bytes) {
    size_t i = 0;
    if constexpr (sizeof(U) == 1) {
      constexpr size_t L = B8::size;
      const B8 zero(uint8_t{0}), one(uint8_t{1}), vb(static_cast<uint8_t>(value_bits));
      const uint8_t* m = static_cast<const uint8_t*>(mask);
      for (; i + L <= n; i += L) {
        xsimd::select((B8::load_unaligned(m + i) & vb) != zero, one, zero).store_unaligned(bytes + i);
      }
    }
    const U vb = static_cast<U>(value_bits);
    for (; i < n; ++i) {
      bytes[i] = (simd::load_scalar<Arch, U>(static_cast<const char*>(mask) + i * sizeof(U)) & vb) != 0;
    }
  }

 private:
  static int64_t fold_bytes(const B8& acc) {
    alignas(64) uint8_t lanes[B8::size];
    acc.store_aligned(lanes);
    int64_t s = 0;
    for (size_t k = 0; k < B8::size; ++k) s += lanes[k];
    return s;
  }
  static int popcount8(uint8_t b) {
    int c = 0;
    for (; b; b = static_cast<uint8_t>(b & (b - 1))) ++c;
    return c;
  }
};

template <class Arch>
void Stats<Arch>::fill(KernelTable& t) {
  t.count_bytes = &Stats::count_bytes;
  t.count_bits = &Stats::count_bits;
  t.bytes_to_bits = &Stats::bytes_to_bits;
  t.bits_to_bytes = &Stats::bits_to_bytes;
  t.bits_to_mask[0] = &Stats::bits_to_mask<uint8_t>;
  t.bits_to_mask[1] = &Stats::bits_to_mask<uint16_t>;
  t.bits_to_mask[2] = &Stats::bits_to_mask<uint32_t>;
  t.bits_to_mask[3] = &Stats::bits_to_mask<uint64_t>;
  t.bytes_to_mask[0] = &Stats::bytes_to_mask<uint8_t>;
  t.bytes_to_mask[1] = &Stats::bytes_to_mask<uint16_t>;
  t.bytes_to_mask[2] = &Stats::bytes_to_mask<uint32_t>;
  t.bytes_to_mask[3] = &Stats::bytes_to_mask<uint64_t>;
  t.mask_to_bytes[0] = &Stats::mask_to_bytes<uint8_t>;
  t.mask_to_bytes[1] = &Stats::mask_to_bytes<uint16_t>;
  t.mask_to_bytes[2] = &Stats::mask_to_bytes<uint32_t>;
  t.mask_to_bytes[3] = &Stats::mask_to_bytes<uint64_t>;
}

SPARSITY_EXTERN_KERNEL_FAMILY(Stats)

}  // namespace sparsity::kernels

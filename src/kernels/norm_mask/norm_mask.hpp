// norm_mask: the SIMD passes of WeightNorm's general mask computation (any block, shape, dtype): the
// prologue that reads mask and weights once (old mask bits, masked f32 weights), and the mask pass that
// turns selected tiles and in-tile choices into new mask bits. The driver is norm_mask.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/dispatch.hpp"
#include "kernels/simd_util.hpp"

namespace sparsity::kernels {

/// Packs a stream of bits, appended at increasing positions from bit 0 of `out`; whole bytes are
/// written, the unused high bits of the last one are 0.
template <class Arch>
class BitWriter {
 public:
  explicit BitWriter(uint8_t* out) : out_(out) {}
  /// Appends the low `count` bits of `v` (count <= 32, higher bits of v zero).
  void put(uint64_t v, unsigned count) {
    acc_ |= v << fill_;
    fill_ += count;
    if (fill_ >= 32) {
      const uint32_t low = static_cast<uint32_t>(acc_);
      std::memcpy(out_, &low, 4);  // little-endian: bit i of the word is bit i % 8 of byte i / 8
      out_ += 4;
      acc_ >>= 32;
      fill_ -= 32;
    }
  }
  void finish() {
    for (unsigned b = 0; b < fill_; b += 8) *out_++ = static_cast<uint8_t>(acc_ >> b);
  }

 private:
  uint8_t* out_;
  uint64_t acc_ = 0;
  unsigned fill_ = 0;
};

/// General-path kernels of one ISA, lanes = 32-bit elements.
template <class Arch>
struct NormMask {
  using BF = xsimd::batch<float, Arch>;
  using BU = xsimd::batch<uint32_t, Arch>;
  static constexpr size_t L = BU::size;

  static void fill(KernelTable& table);

  /// NormPrologueFn for f32 weights: old_bits (bit i = mask_i non-zero: a byte mask any non-zero byte,
  /// an f32 mask any non-zero value, -0.0 being zero) and, when `masked` is not null,
  /// masked_i = keep_i ? w_i : +0; true when every mask element is exactly 0 or 1.
  template <bool ByteMask>
  static bool prologue(const void* w, const void* mask, size_t n, void* masked, uint8_t* old_bits) {
    const BU value_bits(0x7fffffffu), zero(0u), one(ByteMask ? 1u : 0x3f800000u);
    BU odd(0u);  // lanes that saw a mask element other than its canonical 0 or 1
    bool canonical = true;
    const uint32_t* wp = static_cast<const uint32_t*>(w);
    uint32_t* out = static_cast<uint32_t*>(masked);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
      uint64_t word = 0;
      for (size_t j = 0; j < 64; j += L) {
        const BU m = ByteMask ? simd::load_widen_u8<Arch>(static_cast<const uint8_t*>(mask) + i + j)
                              : BU::load_unaligned(static_cast<const uint32_t*>(mask) + i + j);
        const auto keep = (ByteMask ? m : (m & value_bits)) != zero;
        if constexpr (ByteMask) {
          odd = odd | m;  // any bit above bit 0 shows
        } else {
          odd = odd | (m ^ xsimd::select(keep, one, zero));
        }
        word |= simd::movemask<Arch>(keep) << j;
        if (out != nullptr) xsimd::select(keep, BU::load_unaligned(wp + i + j), zero).store_unaligned(out + i + j);
      }
      std::memcpy(old_bits + i / 8, &word, 8);
    }
    if (i < n) {
      uint8_t* bits = old_bits + i / 8;
      std::memset(bits, 0, (n - i + 7) / 8);
      for (size_t k = i; k < n; ++k) {
        uint32_t m;
        if constexpr (ByteMask) {
          m = static_cast<const uint8_t*>(mask)[k];
        } else {
          m = simd::load_scalar<Arch, uint32_t>(static_cast<const uint32_t*>(mask) + k) & 0x7fffffffu;
        }
        if constexpr (ByteMask) {
          canonical = canonical && m <= 1;
        } else {
          const uint32_t raw = simd::load_scalar<Arch, uint32_t>(static_cast<const uint32_t*>(mask) + k);
          canonical = canonical && (raw == 0 || raw == 0x3f800000u);
        }
        const bool keep = m != 0;
        bits[(k - i) / 8] = static_cast<uint8_t>(bits[(k - i) / 8] | (keep << ((k - i) % 8)));
        if (out != nullptr) out[k] = keep ? simd::load_scalar<Arch, uint32_t>(wp + k) : 0u;
      }
    }
    return canonical && !xsimd::any((ByteMask ? (odd & BU(~1u)) : odd) != zero);
  }

  /// NormBitsFn: new mask bits of `rows` rows of `cols` elements whose first row starts a tile row.
  static void bits(const uint8_t* selected, int64_t tiles_c, const uint8_t* pruned_bits, int64_t rows,
                   int64_t cols, int64_t br, int64_t bc, uint8_t* out) {
    switch (bc) {
      case 1: return rows_of<1>(selected, tiles_c, pruned_bits, rows, cols, br, out);
      case 2: return rows_of<2>(selected, tiles_c, pruned_bits, rows, cols, br, out);
      case 4: return rows_of<4>(selected, tiles_c, pruned_bits, rows, cols, br, out);
      case 8: return rows_of<8>(selected, tiles_c, pruned_bits, rows, cols, br, out);
      case 16: return rows_of<16>(selected, tiles_c, pruned_bits, rows, cols, br, out);
      default: return rows_of<0>(selected, tiles_c, pruned_bits, rows, cols, br, out, bc);
    }
  }

 private:
  // Lane i takes the tile flag of lane i / BC.
  template <size_t BC>
  struct TileOfLane {
    static constexpr uint32_t get(size_t i, size_t) { return static_cast<uint32_t>(i / BC); }
  };
  struct LaneBit {
    static constexpr uint32_t get(size_t i, size_t) { return uint32_t{1} << i; }
  };

  // BC = 0: a block width known only at run time (bc), element by element.
  template <size_t BC>
  static void rows_of(const uint8_t* selected, int64_t tiles_c, const uint8_t* pruned_bits, int64_t rows,
                      int64_t cols, int64_t br, uint8_t* out, int64_t bc = static_cast<int64_t>(BC)) {
    BitWriter<Arch> writer(out);
    const size_t ucols = static_cast<size_t>(cols);
    // Whole batches of a row: tiles never straddle two batches when BC divides L.
    constexpr bool kSimd = BC != 0 && BC <= L;
    const size_t simd_cols = kSimd ? ucols / L * L : 0;
    const BU zero(0u);
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* flags = selected + (r / br) * tiles_c;
      const size_t base = static_cast<size_t>(r) * ucols;
      size_t c = 0;
      if constexpr (kSimd) {
        constexpr auto lane_bit = xsimd::make_batch_constant<BU, LaneBit>();
        for (; c < simd_cols; c += L) {
          BU f = simd::load_widen_u8<Arch>(flags + c / BC);
          if constexpr (BC > 1) f = xsimd::swizzle(f, xsimd::make_batch_constant<BU, TileOfLane<BC>>());
          auto drop = f != zero;
          if (pruned_bits != nullptr) {
            const BU p(static_cast<uint32_t>(simd::bits64_at<Arch>(pruned_bits, base + c)));
            drop = drop & ((p & BU(lane_bit)) != zero);
          }
          writer.put(~simd::movemask<Arch>(drop) & ((uint64_t{1} << L) - 1), static_cast<unsigned>(L));
        }
      }
      // The rest of the row, a tile at a time.
      int64_t t = static_cast<int64_t>(c) / bc, in_tile = static_cast<int64_t>(c) % bc;
      for (; c < ucols; ++c) {
        const size_t i = base + c;
        const bool pruned = pruned_bits == nullptr || ((pruned_bits[i / 8] >> (i % 8)) & 1u);
        writer.put(!(flags[t] != 0 && pruned), 1);
        if (++in_tile == bc) {
          in_tile = 0;
          ++t;
        }
      }
    }
    writer.finish();
  }
};

template <class Arch>
void NormMask<Arch>::fill(KernelTable& t) {
  t.norm_prologue[0] = &NormMask::prologue<false>;
  t.norm_prologue[1] = &NormMask::prologue<true>;
  t.norm_bits = &NormMask::bits;
}

SPARSITY_EXTERN_KERNEL_FAMILY(NormMask)

}  // namespace sparsity::kernels

// flat_tiles: the two fused passes of block-norm pruning over flat 1 x bc tiles of f32 weights. One read
// of weights and mask gives the tile keys, the old mask bits and the in-tile choice; one read of the keys
// gives the new mask bits.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "kernels/dispatch.hpp"
#include "kernels/reference.hpp"
#include "kernels/select/select.hpp"
#include "kernels/simd_util.hpp"

namespace sparsity::kernels {

/// Writes the mask bits of elements [e0, e0 + ne) (e0 a multiple of 64) from the tile flags `selected`
/// (bit t - e0 / bc for tile t) and the in-tile choice `pruned_bits` (null: every element); compiled with
/// the baseline flags (flat_tiles.cpp).
void flat_expand_bits(const uint64_t* selected, size_t e0, size_t ne, size_t bc, const uint8_t* pruned_bits,
                      uint8_t* bits);

/// Flat-tile kernels of one ISA. Lanes are elements: a tile of bc <= lanes elements sits inside one batch,
/// its sum runs along the lanes in element order (bc - 1 shifted adds), and its rank inside the tile
/// compares every lane with the tile's other lanes (bc - 1 rotations). Wider tiles, and the elements
/// after the last whole super-block, use the reference.
template <class Arch>
struct FlatTiles {
  using BF = xsimd::batch<float, Arch>;
  using BU = xsimd::batch<uint32_t, Arch>;
  using BI = xsimd::batch<int32_t, Arch>;
  static constexpr size_t L = BF::size;

  static void fill(KernelTable& table);

  template <bool ByteMask>
  static bool scores(const void* w, const void* mask, size_t n, int64_t bc, Norm norm, int64_t zeros,
                     uint32_t* keys, uint8_t* old_bits, uint8_t* pruned_bits) {
    const bool nm = zeros < bc;
    bool canonical = true;
    // The SIMD body for a compile-time block width, with or without the in-tile choice.
    auto body = [&](auto bc_const) {
      constexpr size_t BC = decltype(bc_const)::value;
      return nm ? run<ByteMask, BC, true>(w, mask, n, norm, zeros, keys, old_bits, pruned_bits, canonical)
                : run<ByteMask, BC, false>(w, mask, n, norm, zeros, keys, old_bits, pruned_bits, canonical);
    };
    size_t done = 0;
    switch (bc) {
      case 1:
        done = body(std::integral_constant<size_t, 1>{});
        break;
      case 2:
        done = body(std::integral_constant<size_t, 2>{});
        break;
      case 4:
        done = body(std::integral_constant<size_t, 4>{});
        break;
      case 8:
        done = body(std::integral_constant<size_t, 8>{});
        break;
      case 16:
        done = body(std::integral_constant<size_t, 16>{});
        break;
      default:
        break;
    }
    if (done < n) {
      const size_t msz = ByteMask ? 1 : 4;
      canonical &= flat_scores_reference<ByteMask>(static_cast<const char*>(w) + done * 4,
                                                   static_cast<const char*>(mask) + done * msz, n - done, bc, norm,
                                                   zeros, keys + done / static_cast<size_t>(bc), old_bits + done / 8,
                                                   nm ? pruned_bits + done / 8 : nullptr);
    }
    return canonical;
  }

  /// FlatBracketFn: keys as signed integers (sign bit flipped) so that signed compares order them; the
  /// few keys inside the bracket are copied one by one from the batch's lane mask.
  static size_t bracket(const uint32_t* keys, size_t n, uint32_t lo, uint32_t hi, const uint32_t* heavy,
                        uint32_t* out, size_t cap, size_t* below, size_t* heavy_count) {
    const BU flip(0x80000000u);
    const BI lo_v = xsimd::bitwise_cast<BI>(BU(lo) ^ flip), hi_v = xsimd::bitwise_cast<BI>(BU(hi) ^ flip);
    // Without a heavy key, one that no key inside the bracket equals.
    const uint32_t h = heavy != nullptr ? *heavy : lo;
    const bool counting = heavy != nullptr;
    const BU h_v(h);
    size_t count = 0, under = 0, equal = 0, i = 0;
    for (; i + L <= n; i += L) {
      const BU raw = BU::load_unaligned(keys + i);
      const BI k = xsimd::bitwise_cast<BI>(raw ^ flip);
      const auto is_below = k < lo_v;
      under += static_cast<size_t>(__builtin_popcountll(simd::movemask<Arch>(is_below)));
      uint64_t inside = simd::movemask<Arch>(!(is_below | (k > hi_v)));
      if (counting) {
        const uint64_t eq = simd::movemask<Arch>(raw == h_v) & inside;
        equal += static_cast<size_t>(__builtin_popcountll(eq));
        inside &= ~eq;
      }
      // The usual zero or one key of a batch is copied without a data-dependent branch (an empty copy
      // writes the slot past the last one and does not count); more one by one.
      if (count < cap) {
        out[count] = keys[i + static_cast<size_t>(__builtin_ctzll(inside | (uint64_t{1} << (L - 1))))];
        count += inside != 0;
        inside &= inside - 1;
      }
      while (inside != 0) {
        if (count == cap + 1) return count;
        out[count++] = keys[i + static_cast<size_t>(__builtin_ctzll(inside))];
        inside &= inside - 1;
      }
    }
    for (; i < n; ++i) {
      under += keys[i] < lo;
      if (keys[i] >= lo && keys[i] <= hi) {
        if (counting && keys[i] == h) {
          ++equal;
          continue;
        }
        if (count == cap + 1) return count;
        out[count++] = keys[i];
      }
    }
    *below = under;
    if (heavy_count != nullptr) *heavy_count = equal;
    return count;
  }

  /// FlatSplitFn: per 64 keys, the lane masks of `below` and of the heavy key go to the bit words, and the
  /// few keys inside the window are copied with their index.
  static size_t split(const uint32_t* keys, size_t n, uint32_t lo, uint32_t hi, const uint32_t* heavy,
                      uint64_t* below_bits, uint64_t* heavy_bits, uint32_t* window_keys, uint32_t* window_index,
                      uint32_t index0, size_t cap) {
    const BU flip(0x80000000u);
    const BI lo_v = xsimd::bitwise_cast<BI>(BU(lo) ^ flip), hi_v = xsimd::bitwise_cast<BI>(BU(hi) ^ flip);
    const bool counting = heavy != nullptr;
    const BU h_v(counting ? *heavy : 0u);
    size_t count = 0, i = 0;
    for (; i + 64 <= n; i += 64) {
      uint64_t below = 0, eq_heavy = 0, inside = 0;
      for (size_t j = 0; j < 64; j += L) {
        const BU raw = BU::load_unaligned(keys + i + j);
        const BI k = xsimd::bitwise_cast<BI>(raw ^ flip);
        const auto is_below = k < lo_v;
        const uint64_t in = simd::movemask<Arch>(!(is_below | (k > hi_v)));
        below |= simd::movemask<Arch>(is_below) << j;
        if (counting) eq_heavy |= (simd::movemask<Arch>(raw == h_v) & in) << j;
        inside |= in << j;
      }
      below_bits[i / 64] = below;
      if (counting) heavy_bits[i / 64] = eq_heavy;
      inside &= ~eq_heavy;
      // The usual zero to two keys of a window a few percent wide are copied without a data-dependent
      // branch (an empty copy writes the slot past the last one and does not count); the rest one by one.
      if (count + 1 < cap) {
        for (int r = 0; r < 2; ++r) {
          const size_t at = i + static_cast<size_t>(__builtin_ctzll(inside | (uint64_t{1} << 63)));
          window_keys[count] = keys[at];
          window_index[count] = static_cast<uint32_t>(index0 + at);
          count += inside != 0;
          inside &= inside - 1;
        }
      }
      while (inside != 0) {
        if (count == cap + 1) return count;
        const size_t at = i + static_cast<size_t>(__builtin_ctzll(inside));
        window_keys[count] = keys[at];
        window_index[count] = static_cast<uint32_t>(index0 + at);
        ++count;
        inside &= inside - 1;
      }
    }
    if (i < n) {
      const size_t m = flat_split_reference(keys + i, n - i, lo, hi, heavy, below_bits + i / 64,
                                            counting ? heavy_bits + i / 64 : nullptr, window_keys + count,
                                            window_index + count, static_cast<uint32_t>(index0 + i),
                                            cap >= count ? cap - count : 0);
      count += m;
    }
    return count;
  }

  static void mask_bits(const uint32_t* keys, size_t n, int64_t bc, uint32_t threshold, size_t cut,
                        const uint8_t* pruned_bits, uint8_t* bits) {
    const size_t b = static_cast<size_t>(bc);
    if (b > 16 || (b & (b - 1)) != 0) {
      flat_mask_reference(keys, n, bc, threshold, cut, pruned_bits, bits);
      return;
    }
    const size_t tiles = n / b;
    constexpr size_t kTiles = 1024;  // tiles per block: a multiple of 64 and of every lane count
    uint64_t selected[kTiles / 64];
    const BI iota = lane_index();
    const BU flip(0x80000000u);
    const BI t_key = xsimd::bitwise_cast<BI>(BU(threshold) ^ flip);
    for (size_t t0 = 0; t0 < tiles; t0 += kTiles) {
      const size_t nt = std::min(kTiles, tiles - t0);
      const size_t rel_cut = cut > t0 ? std::min(cut - t0, nt) : 0;
      const BI cut_v(static_cast<int32_t>(rel_cut));
      std::fill(selected, selected + kTiles / 64, uint64_t{0});
      size_t t = 0;
      for (; t + L <= nt; t += L) {
        // Keys as signed integers (sign bit flipped) so that signed compares order them.
        const BI k = xsimd::bitwise_cast<BI>(BU::load_unaligned(keys + t0 + t) ^ flip);
        const auto sel = (k < t_key) | ((k == t_key) & ((iota + BI(static_cast<int32_t>(t))) < cut_v));
        selected[t / 64] |= simd::movemask<Arch>(sel) << (t % 64);
      }
      for (; t < nt; ++t) {
        const uint32_t k = keys[t0 + t];
        const bool sel = k < threshold || (k == threshold && t < rel_cut);
        selected[t / 64] |= static_cast<uint64_t>(sel) << (t % 64);
      }
      flat_expand_bits(selected, t0 * b, nt * b, b, pruned_bits, bits);
    }
    if (tiles * b < n) {  // not reached for n a multiple of bc; kept so any n gives whole bytes
      const size_t e0 = tiles * b;
      for (size_t i = e0; i < n; ++i) bits[i / 8] = static_cast<uint8_t>(bits[i / 8] | (1u << (i % 8)));
    }
  }

 private:
  template <size_t... Is, class F>
  static void static_for_impl(std::index_sequence<Is...>, F&& f) {
    (f(std::integral_constant<size_t, Is>{}), ...);
  }
  // f(std::integral_constant<size_t, i>) for i = 0 .. N - 1, unrolled.
  template <size_t N, class F>
  static void static_for(F&& f) {
    static_for_impl(std::make_index_sequence<N>{}, f);
  }

  // Swizzle patterns: lane i takes lane i - 1 (the running tile sum moves one element on); lane i takes the
  // lane R positions further inside its tile of BC; lane i takes the last lane of tile i - V * (L / BC)
  // (compacting the sums of the V-th batch of a group of BC batches).
  struct LaneBefore {
    static constexpr uint32_t get(size_t i, size_t) { return i == 0 ? 0u : static_cast<uint32_t>(i - 1); }
  };
  template <size_t BC, size_t R>
  struct RotateInTile {
    static constexpr uint32_t get(size_t i, size_t) {
      return static_cast<uint32_t>(i / BC * BC + (i % BC + R) % BC);
    }
  };
  template <size_t BC, size_t V>
  struct TileEnds {
    static constexpr uint32_t get(size_t i, size_t size) {
      return i / (size / BC) == V ? static_cast<uint32_t>(BC * (i % (size / BC)) + BC - 1) : 0u;
    }
  };

  // 1 in the lanes whose rotation by R reads a lower position of their tile (q <= k counts there).
  template <size_t BC, size_t R>
  struct LowerAfterRotation {
    static constexpr int32_t get(size_t i, size_t) { return i % BC >= BC - R ? 1 : 0; }
  };
  // The lanes that receive the tile sums of the V-th batch of a group of BC batches.
  template <size_t BC, size_t V>
  struct InGroup {
    static constexpr bool get(size_t i, size_t size) { return i / (size / BC) == V; }
  };

  // Stores the L bits of the batch of elements [i, i + L) (i a multiple of L) into a packed bit array. The
  // bits go straight to memory: accumulating them in a small local array of words was miscompiled by GCC 12
  // at -O2 (scalar replacement of aggregates) for super-blocks of more than one word.
  static void put_bits(uint8_t* bits, size_t i, uint64_t m) {
    static_assert(L == 4 || L % 8 == 0, "lane counts: 4, 8 or 16");
    if constexpr (L >= 8) {
      std::memcpy(bits + i / 8, &m, L / 8);  // little-endian: the low L bits
    } else if (i % 8 == 0) {
      bits[i / 8] = static_cast<uint8_t>(m);
    } else {
      bits[i / 8] = static_cast<uint8_t>(bits[i / 8] | (m << 4));
    }
  }

  static BI lane_index() {
    alignas(64) int32_t a[L];
    for (size_t l = 0; l < L; ++l) a[l] = static_cast<int32_t>(l);
    return BI::load_aligned(a);
  }

  // Whole super-blocks of max(64, BC * L) elements; returns the number of elements done.
  // `canonical` is cleared when a mask element is neither 0 nor 1 (+0.0 nor 1.0 for an f32 mask).
  template <bool ByteMask, size_t BC, bool NM>
  static size_t run(const void* w, const void* mask, size_t n, Norm norm, int64_t zeros, uint32_t* keys,
                    uint8_t* old_bits, uint8_t* pruned_bits, bool& canonical) {
    if constexpr (BC > L) {
      return 0;
    } else {
      const BU one(ByteMask ? 1u : 0x3f800000u);
      BU odd(0u);  // lanes that saw a mask element other than its canonical 0 or 1
      constexpr size_t S = std::max<size_t>(64, BC * L);  // elements per super-block
      constexpr size_t kVectors = S / L;
      const uint32_t* wp = static_cast<const uint32_t*>(w);
      const BU value_bits(0x7fffffffu), u_zero(0u);
      const BI magnitude(0x7fffffff), nan_key(0x7f800001), limit(static_cast<int32_t>(zeros));
      const BF count(static_cast<float>(BC)), qnan(std::numeric_limits<float>::quiet_NaN());
      const bool l1 = norm == Norm::L1;
      const size_t blocks = n / S;
      for (size_t blk = 0; blk < blocks; ++blk) {
        const size_t base = blk * S;
        for (size_t g = 0; g < kVectors / BC; ++g) {
          BF sums(0.f);
          static_for<BC>([&](auto vc) {
            constexpr size_t v = decltype(vc)::value;
            const size_t vi = g * BC + v;  // batch index inside the super-block
            const size_t i = base + vi * L;
            const BU m = ByteMask ? simd::load_widen_u8<Arch>(static_cast<const uint8_t*>(mask) + i)
                                  : BU::load_unaligned(static_cast<const uint32_t*>(mask) + i);
            // Byte masks: any non-zero byte; f32 masks: any non-zero value (-0.0 is zero).
            const auto keep = (ByteMask ? m : (m & value_bits)) != u_zero;
            // Bytes: any bit above bit 0 shows; f32: the value against the 0 or 1.0 its keep calls for.
            if constexpr (ByteMask) {
              odd = odd | m;
            } else {
              odd = odd | (m ^ xsimd::select(keep, one, u_zero));
            }
            const uint64_t kb = simd::movemask<Arch>(keep);
            put_bits(old_bits, i, kb);
            // A plain load (opaque: not folded into a load masked by `keep`, which would wait for the mask).
            const BU wv = simd::opaque<Arch>(BU::load_unaligned(wp + i));
            const BF x = xsimd::bitwise_cast<BF>(xsimd::select(keep, wv, u_zero));
            const BF e = l1 ? xsimd::abs(x) : simd::opaque<Arch>(x * x);
            if constexpr (BC == 1) {
              sums = e;
            } else {
              constexpr auto before = xsimd::make_batch_constant<BU, LaneBefore>();
              BF s = e;
              static_for<BC - 1>([&](auto) { s = xsimd::swizzle(s, before) + e; });
              constexpr auto ends = xsimd::make_batch_constant<BU, TileEnds<BC, v>>();
              constexpr auto in_group = xsimd::make_batch_bool_constant<BF, InGroup<BC, v>>();
              sums = xsimd::select(in_group, xsimd::swizzle(s, ends), sums);
            }
            if constexpr (NM) {
              // Element keys: the score's bits without the sign (scores are +0 or more, or NaN), every NaN
              // just above +inf; so keys are in [0, 2^31) and their differences cannot overflow.
              const BI k = xsimd::min(xsimd::bitwise_cast<BI>(e) & magnitude, nan_key);
              BI rank(0);
              static_for<BC - 1>([&](auto rc) {
                constexpr size_t r = decltype(rc)::value + 1;
                constexpr auto rot = xsimd::make_batch_constant<BU, RotateInTile<BC, r>>();
                // Counts q < k, or q <= k where the rotation reads a lower position: the sign of q - k - w.
                constexpr auto lower = xsimd::make_batch_constant<BI, LowerAfterRotation<BC, r>>();
                rank -= (xsimd::swizzle(k, rot) - k - BI(lower)) >> 31;
              });
              put_bits(pruned_bits, i, simd::movemask<Arch>(rank < limit));
            }
          });
          BF mean = sums / count;
          mean = xsimd::select(xsimd::isnan(mean), qnan, mean);
          OrderKeys<Arch, uint32_t>::keys(xsimd::bitwise_cast<BU>(mean))
              .store_unaligned(keys + base / BC + g * L);
        }
      }
      if (xsimd::any((ByteMask ? (odd & BU(~1u)) : odd) != u_zero)) canonical = false;
      return blocks * S;
    }
  }
};

template <class Arch>
void FlatTiles<Arch>::fill(KernelTable& t) {
  t.flat_scores[0] = &FlatTiles::scores<false>;
  t.flat_scores[1] = &FlatTiles::scores<true>;
  t.flat_mask = &FlatTiles::mask_bits;
  t.flat_bracket = &FlatTiles::bracket;
  t.flat_split = &FlatTiles::split;
}

SPARSITY_EXTERN_KERNEL_FAMILY(FlatTiles)

}  // namespace sparsity::kernels

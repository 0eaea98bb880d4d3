// tile_smallest: the `zeros` smallest scores inside every br x bc tile (N:M along rows when br = 1), with
// lanes = neighbouring tiles and ranks counted by comparisons, so ties fall to the lower position.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/dispatch.hpp"
#include "kernels/reference.hpp"
#include "kernels/select/select.hpp"
#include "kernels/simd_util.hpp"

namespace sparsity::kernels {

/// tile_smallest kernels of one ISA. For tiles of at most kMaxTile elements, a chunk of L full tiles of
/// a tile row is one batch: every lane gathers its tile's order keys and ranks each position p as
///   #{q < p : key_q <= key_p} + #{q > p : key_q < key_p},
/// which is its place in (key, position) order; the `zeros` lowest ranks are pruned. Larger tiles, edge
/// tiles and partial chunks use the reference.
template <class Arch>
struct TileSmallest {
  static constexpr int64_t kMaxTile = 16;

  static void fill(KernelTable& table);

  template <class T>
  static void run(const void* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                  int64_t zeros, uint8_t* pruned, int64_t tr0, int64_t tr1) {
    using K = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    using S = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    using BK = xsimd::batch<K, Arch>;
    using BS = xsimd::batch<S, Arch>;
    constexpr int64_t L = static_cast<int64_t>(BK::size);
    const int64_t vpb = br * bc;
    const int64_t tcols = (cols + bc - 1) / bc;
    const int64_t full_tcols = vpb <= kMaxTile ? cols / bc : 0;
    const T* s = static_cast<const T*>(scores);
    alignas(64) S lane_offsets[L];
    for (int64_t l = 0; l < L; ++l) lane_offsets[l] = static_cast<S>(l * bc);
    const BS idx = BS::load_aligned(lane_offsets);
    const BS one(S{1}), zero(S{0}), limit(static_cast<S>(zeros));
    const BK flip(K{1} << (8 * sizeof(K) - 1));
    for (int64_t tr = tr0; tr < tr1; ++tr) {
      const int64_t r0 = tr * br;
      int64_t tc = 0;
      if (r0 + br <= rows) {
        for (; tc + L <= full_tcols; tc += L) {
          // Keys as signed integers (sign bit flipped) so that signed compares order them.
          BS keys[kMaxTile];
          for (int64_t p = 0; p < vpb; ++p) {
            const int64_t base = (r0 + p / bc) * ld + tc * bc + p % bc;
            const BK raw = BK::gather(reinterpret_cast<const K*>(s + base), idx);
            keys[p] = xsimd::bitwise_cast<BS>(OrderKeys<Arch, K>::keys(raw) ^ flip);
          }
          for (int64_t p = 0; p < vpb; ++p) {
            BS rank(S{0});
            for (int64_t q = 0; q < p; ++q) rank += xsimd::select(keys[q] <= keys[p], one, zero);
            for (int64_t q = p + 1; q < vpb; ++q) rank += xsimd::select(keys[q] < keys[p], one, zero);
            alignas(64) S out[L];
            xsimd::select(rank < limit, one, zero).store_aligned(out);
            uint8_t* dst = pruned + (r0 + p / bc) * cols + tc * bc + p % bc;
            for (int64_t l = 0; l < L; ++l) dst[l * bc] = static_cast<uint8_t>(out[l]);
          }
        }
      }
      for (; tc < tcols; ++tc) {
        if constexpr (sizeof(T) == 4) {
          tile_smallest_one_f32(s, rows, cols, ld, br, bc, zeros, pruned, tr, tc);
        } else {
          tile_smallest_one_f64(s, rows, cols, ld, br, bc, zeros, pruned, tr, tc);
        }
      }
    }
  }
};

template <class Arch>
void TileSmallest<Arch>::fill(KernelTable& t) {
  t.tile_smallest[0] = &TileSmallest::run<float>;
  t.tile_smallest[1] = &TileSmallest::run<double>;
}

SPARSITY_EXTERN_KERNEL_FAMILY(TileSmallest)

}  // namespace sparsity::kernels

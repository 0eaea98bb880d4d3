// Fused passes for WeightNormSparsifier over flat 1 x bc tiles of f32 weights (internal entry points).
//
// For a 2-D f32 weight with a 1 x bc block, bc in {1, 2, 4, 8, 16} dividing the columns, the tiles are
// runs of bc consecutive elements of the flat buffer, so one pass over weights and mask gives the order
// keys of the tile means, the old mask bits and the in-tile choice, a radix select over the keys gives
// the threshold, and one pass over the keys gives the new mask bits. Every result equals the one of the
// general path (apply_mask_bytes, block_scores, select_k_smallest_f32, tile_smallest).
#pragma once

#include <cstddef>
#include <cstdint>

#include "sparsity/base/dtype.hpp"
#include "sparsity/kernels/kernels.hpp"

namespace sparsity::kernels {

/// The k smallest of n order keys are those below `key` and the ties at indices below `cut`.
template <class K>
struct KeyThreshold {
  K key;
  size_t cut;
};

/// The threshold of the k smallest of n order keys in O(n) (k = 0 selects none, k >= n all).
KeyThreshold<uint32_t> select_threshold_u32(const uint32_t* keys, size_t n, size_t k);

/// Block widths the flat-tile passes handle.
inline bool flat_tiles_supported(int64_t bc) { return bc == 1 || bc == 2 || bc == 4 || bc == 8 || bc == 16; }

/// Pass 1 (FlatScoresFn in kernels/dispatch.hpp) on the active ISA: n elements of f32 weights `w`, a
/// mask of dtype f32, u8 or bool; `pruned_bits` is written only when zeros < bc. Any alignment.
void flat_tile_scores(const void* w, const void* mask, DType mask_dtype, size_t n, int64_t bc, Norm norm,
                      int64_t zeros, uint32_t* keys, uint8_t* old_bits, uint8_t* pruned_bits);

/// Pass 2 (FlatMaskFn) on the active ISA: new mask bits of n elements whose first tile has index `tile0`
/// in the threshold's numbering.
void flat_tile_mask(const uint32_t* keys, size_t n, int64_t bc, KeyThreshold<uint32_t> threshold,
                    size_t tile0, const uint8_t* pruned_bits, uint8_t* bits);

}  // namespace sparsity::kernels

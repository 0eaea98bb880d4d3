// Kernel table: one function pointer per kernel entry, filled once per ISA from registry.inc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sparsity/kernels/kernels.hpp"

namespace sparsity::kernels {

/// Lane width of an apply-mask kernel: apply is a bit select, so only the element size matters
/// (f16/bf16 -> 16 bits, f32 -> 32, f64 -> 64).
enum Width : int { kW16 = 0, kW32 = 1, kW64 = 2 };
inline Width width_of(DType t) { return t == DType::f64 ? kW64 : t == DType::f32 ? kW32 : kW16; }
/// Index of a float dtype in the per-dtype tables: f32, f64, f16, bf16.
inline int float_index(DType t) { return t == DType::f32 ? 0 : t == DType::f64 ? 1 : t == DType::f16 ? 2 : 3; }
/// log2 of the element size: 0..3.
inline int size_index(size_t bytes) { return bytes == 1 ? 0 : bytes == 2 ? 1 : bytes == 4 ? 2 : 3; }

// `stream` asks for non-temporal stores of `out` (large out-of-place outputs); the kernel may ignore it.
using ApplyBytesFn = void (*)(const void* w, const uint8_t* mask, void* out, size_t n, bool stream);
/// `bits` starts at bit 0 of bits[0].
using ApplyBitsFn = void (*)(const void* w, const uint8_t* bits, void* out, size_t n, bool stream);
using ApplyFloatFn = void (*)(const void* w, const void* mask, void* out, size_t n, bool stream);
/// Scores of the tiles in tile rows [tr0, tr1) (all tile columns), written at their row-major index.
using BlockScoresFn = void (*)(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                               Norm norm, void* scores, int64_t tr0, int64_t tr1);
using SelectF32Fn = void (*)(const float* scores, size_t n, size_t k, uint8_t* selected);
using SelectF64Fn = void (*)(const double* scores, size_t n, size_t k, uint8_t* selected);
/// Tile rows [tr0, tr1) of tile_smallest.
using TileSmallestFn = void (*)(const void* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                                int64_t bc, int64_t zeros, uint8_t* pruned, int64_t tr0, int64_t tr1);
using CountBytesFn = int64_t (*)(const uint8_t* mask, size_t n);
using CountBitsFn = int64_t (*)(const uint8_t* bits, size_t n);
using BytesToBitsFn = void (*)(const uint8_t* bytes, size_t n, uint8_t* bits);
using BitsToBytesFn = void (*)(const uint8_t* bits, size_t n, uint8_t* bytes);
/// out[i] = bit i ? one : 0, elements of 1 << size_index bytes holding the bit pattern `one`.
using BitsToMaskFn = void (*)(const uint8_t* bits, size_t n, uint64_t one, void* out);
/// out[i] = bytes[i] ? one : 0, elements of 1 << size_index bytes holding the bit pattern `one`.
using BytesToMaskFn = void (*)(const uint8_t* bytes, size_t n, uint64_t one, void* out);
/// bytes[i] = (mask[i] & value_bits) != 0 (value_bits drops the sign bit of floats).
using MaskToBytesFn = void (*)(const void* mask, size_t n, uint64_t value_bits, uint8_t* bytes);

/// Pass 1 of block-norm pruning over flat 1 x bc tiles of f32 weights (tile t = elements [t*bc, t*bc + bc);
/// bc in {1, 2, 4, 8, 16}; n a multiple of bc; `w` and an f32 `mask` aligned to 4 bytes):
///   keep_i = mask_i non-zero (an f32 mask: -0.0 is zero, NaN non-zero; a byte mask: any non-zero byte);
///   e_i = norm(keep_i ? w_i : +0);  old_bits bit i = keep_i;
///   keys[t] = order key of the tile mean (summed in f32 in element order, then / bc; NaN -> quiet NaN),
///             the same value block_scores gives for a 1 x bc block;
///   pruned_bits (only when zeros < bc) bit i = e_i is among the `zeros` smallest of its tile (NaN largest,
///             ties to the lower position), as tile_smallest ranks them.
/// Bits start at bit 0 of byte 0; the unused high bits of the last byte are 0. Returns whether every mask
/// element is exactly 0 or 1 (+0.0 or 1.0 for an f32 mask), so that unchanged mask bits mean an unchanged mask.
using FlatScoresFn = bool (*)(const void* w, const void* mask, size_t n, int64_t bc, Norm norm, int64_t zeros,
                              uint32_t* keys, uint8_t* old_bits, uint8_t* pruned_bits);
/// Pass 2: tile t is selected when keys[t] < threshold, or keys[t] == threshold and t < cut; bit i of `bits`
/// is 0 when the tile of element i is selected and the element is pruned in it (bit i of `pruned_bits`,
/// every element when it is null), else 1.
using FlatMaskFn = void (*)(const uint32_t* keys, size_t n, int64_t bc, uint32_t threshold, size_t cut,
                            const uint8_t* pruned_bits, uint8_t* bits);

/// Index of a sparse-linear value dtype in the per-dtype tables: f32, f16, bf16.
inline int sparse_value_index(DType t) { return t == DType::f32 ? 0 : t == DType::f16 ? 1 : 2; }
/// Partial sums per row of the batch-1 sparse-linear order: 32, or max(block_cols, 32 / block_rows) for
/// bsr blocks of more than one row (every value <= 32).
inline int64_t sparse_partials(const SparseWeight& w) {
  if (w.layout != SparseLayout::bsr || w.block_rows == 1) return 32;
  return w.block_cols > 32 / w.block_rows ? w.block_cols : 32 / w.block_rows;
}
/// Floats of scratch a sparse-linear call needs per thread (ldxt = 0 for batch 1).
inline size_t sparse_scratch_floats(const SparseWeight& w, int64_t ldxt) {
  return static_cast<size_t>(w.cols + 16 * ldxt + 1024);
}
/// Batch-1 sparse linear over rows [row0, row1) (multiples of block_rows): y[i] in the order of
/// sparse_linear. `scratch` holds sparse_scratch_floats(w, 0) floats, 64-byte aligned.
using SparseMatvecFn = void (*)(const SparseWeight& w, const float* x, const float* bias, float* y, int64_t row0,
                                int64_t row1, float* scratch);
/// Batched sparse linear over rows [row0, row1) (multiples of block_rows). `xt` is the input transposed:
/// cols x ldxt floats, 64-byte aligned, ldxt a multiple of 16 >= batch (lanes from batch on are ignored);
/// y[b * ldy + i] for b < batch. `scratch` holds sparse_scratch_floats(w, ldxt) floats, 64-byte aligned.
using SparseMatmulFn = void (*)(const SparseWeight& w, const float* xt, int64_t ldxt, int64_t batch,
                                const float* bias, float* y, int64_t ldy, int64_t row0, int64_t row1,
                                float* scratch);

/// The bracket pass of flat_threshold() and of a global ranking: counts the keys below `lo` into *below and
/// copies the keys in [lo, hi] (in index order) to `out`, except the keys equal to *heavy (when `heavy` is
/// not null), which are only counted into *heavy_count; returns how many were copied, or a number above
/// `cap` (with `out` holding the first cap + 1 and the counts unspecified) when there are more than `cap`.
using FlatBracketFn = size_t (*)(const uint32_t* keys, size_t n, uint32_t lo, uint32_t hi, const uint32_t* heavy,
                                 uint32_t* out, size_t cap, size_t* below, size_t* heavy_count);

/// A global ranking's split of n tile keys by its window [lo, hi]: bit i of below_bits = keys[i] < lo; bit i
/// of heavy_bits = keys[i] == *heavy inside the window (heavy and heavy_bits null: none); the other keys
/// inside the window are copied with their index (index0 + i) to window_keys / window_index. Bits start at
/// bit 0 of word 0 (whole words written, unused high bits 0). Returns how many were copied, or a number
/// above `cap` (outputs partial) when there are more than `cap`.
using FlatSplitFn = size_t (*)(const uint32_t* keys, size_t n, uint32_t lo, uint32_t hi, const uint32_t* heavy,
                               uint64_t* below_bits, uint64_t* heavy_bits, uint32_t* window_keys,
                               uint32_t* window_index, uint32_t index0, size_t cap);

/// WeightNorm's general path, prologue of a chunk of n f32 weights: bit i of `old_bits` = mask_i kept (a byte
/// mask: non-zero byte; an f32 mask: non-zero value, -0.0 being zero); when `masked` is not null,
/// masked_i = kept ? w_i : +0. Bits start at bit 0 of byte 0; the unused high bits of the last byte are 0.
/// Returns whether every mask element is exactly 0 or 1 (+0.0 or 1.0 for an f32 mask).
using NormPrologueFn = bool (*)(const void* w, const void* mask, size_t n, void* masked, uint8_t* old_bits);
/// WeightNorm's general path, mask pass over `rows` rows of `cols` elements that start a row of br x bc tiles:
/// element (r, c) is pruned (bit 0) when its tile's flag selected[(r / br) * tiles_c + c / bc] is non-zero
/// and (pruned_bits null, or bit r * cols + c of pruned_bits set); else kept (bit 1). `selected` may be read
/// up to 64 bytes past the last flag and `pruned_bits` up to 8 bytes past its last byte.
using NormBitsFn = void (*)(const uint8_t* selected, int64_t tiles_c, const uint8_t* pruned_bits, int64_t rows,
                            int64_t cols, int64_t br, int64_t bc, uint8_t* bits);

/// Every kernel entry of one ISA. Entries an ISA does not specialise keep the scalar reference.
struct KernelTable {
  Isa isa = Isa::scalar;
  ApplyBytesFn apply_bytes[3] = {};
  ApplyBitsFn apply_bits[3] = {};
  ApplyFloatFn apply_float[3] = {};
  BlockScoresFn block_scores[4] = {};  // f32, f64, f16, bf16
  SelectF32Fn select_f32 = nullptr;
  SelectF64Fn select_f64 = nullptr;
  TileSmallestFn tile_smallest[2] = {};  // f32, f64 scores
  CountBytesFn count_bytes = nullptr;
  CountBitsFn count_bits = nullptr;
  BytesToBitsFn bytes_to_bits = nullptr;
  BitsToBytesFn bits_to_bytes = nullptr;
  BitsToMaskFn bits_to_mask[4] = {};    // element size 1, 2, 4, 8
  BytesToMaskFn bytes_to_mask[4] = {};  // element size 1, 2, 4, 8
  MaskToBytesFn mask_to_bytes[4] = {};
  FlatScoresFn flat_scores[2] = {};  // f32 mask, byte mask
  FlatMaskFn flat_mask = nullptr;
  SparseMatvecFn sparse_matvec[4][3] = {};  // SparseLayout (nm, bsr, bitmask, csr) x value dtype (f32, f16, bf16)
  SparseMatmulFn sparse_matmul[4][3] = {};
  FlatBracketFn flat_bracket = nullptr;
  FlatSplitFn flat_split = nullptr;
  NormPrologueFn norm_prologue[2] = {};  // f32 mask, byte mask
  NormBitsFn norm_bits = nullptr;
};

/// The table of `isa` (compiled in and supported, else FailedPrecondition naming it).
const KernelTable& table_for(Isa isa);
/// The table of active_isa().
const KernelTable& active_table();

// Each registry line SPARSITY_KERNEL(family, isa) is a function that overrides that family's entries.
#define SPARSITY_KERNEL(family, isa) void fill_##family##_##isa(KernelTable& table);
#include "kernels/registry.inc"
#undef SPARSITY_KERNEL

}  // namespace sparsity::kernels

// Scalar reference kernels: the ground truth every SIMD variant is tested against, and the Isa::scalar table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/dispatch.hpp"
#include "kernels/fused.hpp"

namespace sparsity::kernels {

/// Fills every entry of `table` with the scalar reference.
void fill_reference(KernelTable& table);

template <class U>
void apply_bytes_reference(const void* w, const uint8_t* mask, void* out, size_t n, bool stream);
template <class U>
void apply_bits_reference(const void* w, const uint8_t* bits, void* out, size_t n, bool stream);
template <class U>
void apply_float_reference(const void* w, const void* mask, void* out, size_t n, bool stream);

void block_scores_f32_reference(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                                Norm norm, void* scores, int64_t tr0, int64_t tr1);
void block_scores_f64_reference(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                                Norm norm, void* scores, int64_t tr0, int64_t tr1);
void block_scores_f16_reference(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                                Norm norm, void* scores, int64_t tr0, int64_t tr1);
void block_scores_bf16_reference(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                                 int64_t bc, Norm norm, void* scores, int64_t tr0, int64_t tr1);

/// Tiles tc >= tc_begin of tile row tr, for the float dtype at `float_index` (0 f32, 1 f64, 2 f16, 3 bf16);
/// SIMD variants finish partial chunks and edge tiles with it.
void block_scores_tail_reference(int float_index, const void* w, int64_t rows, int64_t cols, int64_t ld,
                                 int64_t br, int64_t bc, Norm norm, void* scores, int64_t tr, int64_t tc_begin);

void select_f32_reference(const float* scores, size_t n, size_t k, uint8_t* selected);
void select_f64_reference(const double* scores, size_t n, size_t k, uint8_t* selected);

void tile_smallest_f32_reference(const void* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                                 int64_t bc, int64_t zeros, uint8_t* pruned, int64_t tr0, int64_t tr1);
void tile_smallest_f64_reference(const void* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                                 int64_t bc, int64_t zeros, uint8_t* pruned, int64_t tr0, int64_t tr1);
/// One tile (tile row tr, tile column tc) of tile_smallest; SIMD variants use it for large or edge tiles.
void tile_smallest_one_f32(const float* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                           int64_t zeros, uint8_t* pruned, int64_t tr, int64_t tc);
void tile_smallest_one_f64(const double* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                           int64_t bc, int64_t zeros, uint8_t* pruned, int64_t tr, int64_t tc);

int64_t count_bytes_reference(const uint8_t* mask, size_t n);
int64_t count_bits_reference(const uint8_t* bits, size_t n);
void bytes_to_bits_reference(const uint8_t* bytes, size_t n, uint8_t* bits);
void bits_to_bytes_reference(const uint8_t* bits, size_t n, uint8_t* bytes);
template <class U>
void bits_to_mask_reference(const uint8_t* bits, size_t n, uint64_t one, void* out);
template <class U>
void bytes_to_mask_reference(const uint8_t* bytes, size_t n, uint64_t one, void* out);
template <class U>
void mask_to_bytes_reference(const void* mask, size_t n, uint64_t value_bits, uint8_t* bytes);

/// Fused WeightNorm passes over flat tiles (FlatScoresFn, FlatMaskFn); SIMD variants finish with them.
template <bool ByteMask>
bool flat_scores_reference(const void* w, const void* mask, size_t n, int64_t bc, Norm norm, int64_t zeros,
                           uint32_t* keys, uint8_t* old_bits, uint8_t* pruned_bits);
void flat_mask_reference(const uint32_t* keys, size_t n, int64_t bc, uint32_t threshold, size_t cut,
                         const uint8_t* pruned_bits, uint8_t* bits);

/// Sparse linear (SparseMatvecFn / SparseMatmulFn) for values of type V (float, Half, BFloat16): the
/// definition of the summation order every SIMD variant reproduces.
template <class V>
void sparse_matvec_reference(const SparseWeight& w, const float* x, const float* bias, float* y, int64_t row0,
                             int64_t row1, float* scratch);
template <class V>
void sparse_matmul_reference(const SparseWeight& w, const float* xt, int64_t ldxt, int64_t batch,
                             const float* bias, float* y, int64_t ldy, int64_t row0, int64_t row1, float* scratch);

/// flat_tiles' bracket pass (FlatBracketFn).
size_t flat_bracket_reference(const uint32_t* keys, size_t n, uint32_t lo, uint32_t hi, const uint32_t* heavy,
                              uint32_t* out, size_t cap, size_t* below, size_t* heavy_count);
/// A global ranking's split of tile keys by its window (FlatSplitFn).
size_t flat_split_reference(const uint32_t* keys, size_t n, uint32_t lo, uint32_t hi, const uint32_t* heavy,
                            uint64_t* below_bits, uint64_t* heavy_bits, uint32_t* window_keys, uint32_t* window_index,
                            uint32_t index0, size_t cap);
/// The general path's prologue (NormPrologueFn) and mask pass (NormBitsFn).
template <bool ByteMask>
bool norm_prologue_reference(const void* w, const void* mask, size_t n, void* masked, uint8_t* old_bits);
void norm_bits_reference(const uint8_t* selected, int64_t tiles_c, const uint8_t* pruned_bits, int64_t rows,
                         int64_t cols, int64_t br, int64_t bc, uint8_t* bits);

/// The whole WeightNorm mask computation of norm_mask() (kernels/fused.hpp), written plainly: element
/// scores, tile means, a sort of all tiles by (key, index), a sort of each selected tile's positions.
/// The oracle the conformance tests compare every ISA, path and thread count with. Single-threaded;
/// O(n log n); arguments as norm_mask() (not checked).
void norm_mask_reference(const NormMaskArgs& args);

/// Order-preserving keys: a < b as scores (NaN largest, -0 == +0) iff key(a) < key(b) as unsigned.
inline uint32_t order_key_f32(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0xffffffffu;  // any NaN
  if (bits == 0x80000000u) bits = 0;                             // -0 -> +0
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
inline uint64_t order_key_f64(uint64_t bits) {
  if ((bits & 0x7fffffffffffffffull) > 0x7ff0000000000000ull) return ~0ull;
  if (bits == 0x8000000000000000ull) bits = 0;
  return (bits & 0x8000000000000000ull) ? ~bits : (bits | 0x8000000000000000ull);
}

/// The f32 score of a 32-bit order key (0xffffffff: NaN).
inline float value_of_key_f32(uint32_t k) {
  const uint32_t bits = k == ~uint32_t{0} ? 0x7fc00000u : (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// The 64-bit order key (of the score as a double) of a 32-bit one; non-decreasing in k. The keys no score
/// gets never equal one that does: those below -inf's map below everything, -0.0's (the score has +0.0's
/// key) maps with the largest negative number's, and those between +inf's and NaN's with +inf's.
inline uint64_t widen_key_f32(uint32_t k) {
  if (k < 0x007fffffu) return 0;
  if (k == 0x7fffffffu) k = 0x7ffffffeu;
  if (k > 0xff800000u && k != ~uint32_t{0}) k = 0xff800000u;
  const double d = static_cast<double>(value_of_key_f32(k));
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return order_key_f64(b);
}

/// The first 32-bit key whose widening is >= v (2^32 when none).
inline uint64_t first_key_f32_at_least(uint64_t v) {
  uint64_t lo = 0, hi = uint64_t{1} << 32;
  while (lo < hi) {
    const uint64_t mid = (lo + hi) / 2;
    if (widen_key_f32(static_cast<uint32_t>(mid)) >= v) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

}  // namespace sparsity::kernels

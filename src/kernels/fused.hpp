// WeightNorm's mask computation (internal kernel entry points): norm_mask(), the one entry that turns a
// weight and its current mask into the new mask, and the fused flat-tile passes and threshold it uses.
//
// norm_mask() picks one of two paths, which give the same masks (tests/kernels/kernel_conformance_test.cpp
// checks both against norm_mask_reference(), a plain implementation of the whole computation):
// - flat tiles: f32 weights scored through their own f32/u8/bool mask with 1 x bc tiles, bc in
//   {1, 2, 4, 8, 16} dividing the columns: the tiles are runs of the flat buffer, so one SIMD pass over
//   weights and mask gives the order keys of the tile means, the old mask bits and the in-tile choice; a
//   threshold select over the keys; one pass over the keys gives the new mask bits;
// - general (norm_mask family): chunks of whole tile rows: prologue (old bits, masked weights), block
//   scores, in-tile choice, a k-smallest selection over the tile scores, then the mask pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "sparsity/base/dtype.hpp"
#include "sparsity/kernels/global_threshold.hpp"
#include "sparsity/kernels/kernels.hpp"

namespace sparsity::kernels {

/// A custom element score (torch's callable norm) on the masked weight value. Called on the calling
/// thread only, element by element in memory order; it may throw (the mask is then left unchanged or
/// partly written, never torn inside an element).
using ElementScore = std::function<double(double)>;

/// One weight and its mask for norm_mask(). The weight is `batch` matrices of rows x cols stored back to
/// back (a 2-D weight: batch 1), cut into block_rows x block_cols tiles anchored at (0, 0) of each
/// matrix; an edge tile holds the in-range elements only. Tiles are numbered matrix by matrix, row-major;
/// positions inside a tile row-major. Both buffers are contiguous, any alignment.
struct NormMaskArgs {
  DType weight_dtype = DType::f32;  ///< f32, f64, f16 or bf16
  const void* weight = nullptr;
  DType mask_dtype = DType::f32;  ///< any dtype; non-zero (a float: non-zero value, NaN included) = kept
  void* mask = nullptr;           ///< the current mask, overwritten with the new one
  /// Score weight x mask (the mask is the weight's own parametrization); false: `weight` is already the
  /// masked value, and the mask is only read for what changes.
  bool mask_weights = true;
  int64_t batch = 1, rows = 0, cols = 0;
  int64_t block_rows = 1, block_cols = 1;
  int64_t zeros_per_block = 1;  ///< in [0, block_rows * block_cols]
  /// Selected tiles: k = round-half-even(level * L) clamped to [0, L - 1] (L tiles); every tile when
  /// level >= 1 (then zeros_per_block < block size, else the mask is all zeros).
  double sparsity_level = 0.0;
  /// When >= 0, exactly min(tiles_to_prune, L) tiles, instead of the level (a global ranking's share).
  int64_t tiles_to_prune = -1;
  Norm norm = Norm::L2;
  const ElementScore* score = nullptr;  ///< replaces `norm` when set
};

/// The new mask of a WeightNorm step, written over the current one in its own dtype (0 or 1).
///   score   s_i = norm(w_i x keep_i) (or score(.)), in f32 (f64 for f64 weights; f16/bf16 round s_i and
///           the tile mean to their dtype, as torch computes them);
///   tiles   the k tiles of smallest mean s (NaN above +inf above every finite score, -0 == +0, ties to
///           the lower tile index) are selected;
///   mask    inside a selected tile, the zeros_per_block smallest s (positions of an edge tile outside
///           the matrix rank as NaN at their place; ties to the lower position) are 0, everything else 1.
/// A block side beyond the matrix is clamped to it. Level <= 0 or zeros_per_block == 0 (without
/// tiles_to_prune): all ones; level >= 1 with whole blocks: all zeros. Threads: num_threads() (none
/// with a custom score); the result never depends on them or on the ISA. A step that keeps the mask
/// writes nothing. Throws InvalidArgument for a non-float weight, a bad geometry or null buffers.
void norm_mask(const NormMaskArgs& args);

/// Tiles of norm_mask()'s geometry for these arguments (a global ranking's unit).
uint64_t norm_mask_tiles(const NormMaskArgs& args);

/// A round of a global ranking for one tensor: every tile score of the weight, as norm_mask() ranks
/// them, given to `global` as `tensor` (the selection and in-tile fields of `args` are not used; the
/// mask is only read). The kernels, chunks and threads of norm_mask().
void norm_mask_scores(const NormMaskArgs& args, GlobalThreshold& global, size_t tensor);

/// f64 means of `count` tiles spread evenly over the tile numbering, in runs of 32 consecutive tiles
/// (GlobalThreshold::sample); computed plainly, one thread (a custom score is called here too).
void norm_sample_scores(const NormMaskArgs& args, size_t count, std::vector<double>* out);

/// A global ranking of several tensors' masks with the mask kernels (the in-memory driver of
/// GlobalThreshold). Per round, score() every tensor, then finish(); once it returns true, apply() writes
/// each tensor's mask. A flat-tile tensor keeps from its scoring what writing its mask needs (old mask,
/// in-tile choice and per-tile window bits: ~2 bits per element, plus the window's keys), so apply()
/// reads neither its weights nor its mask again when its share is the common threshold's; otherwise
/// apply() scores it again and prunes its share with norm_mask().
///   GlobalNormMask g(tensors, total);                 // tiles from norm_mask_tiles()
///   for (t) g.sample(t, args[t]);
///   do { for (t) g.score(t, args[t]); } while (!g.finish());
///   for (t) g.apply(t, args[t]);
class GlobalNormMask {
 public:
  GlobalNormMask(std::vector<GlobalTensor> tensors, uint64_t total);
  ~GlobalNormMask();
  GlobalNormMask(const GlobalNormMask&) = delete;
  GlobalNormMask& operator=(const GlobalNormMask&) = delete;

  /// Before the first round: `count` tiles of tensor t spread evenly (norm_sample_scores).
  void sample(size_t tensor, const NormMaskArgs& args, size_t count = 8192);
  void score(size_t tensor, const NormMaskArgs& args);
  bool finish();
  bool done() const;
  uint64_t tiles_to_prune(size_t tensor) const;
  /// Writes tensor t's mask (args as given to score(), the mask unchanged since).
  void apply(size_t tensor, const NormMaskArgs& args);
  const GlobalThreshold& threshold() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The mask a step gives whatever the weights, before looking at them (torch's order): 1 = all kept
/// (level <= 0, or tiles_to_prune == 0, or zeros_per_block == 0), 0 = all pruned (level >= 1 with
/// whole blocks), -1 = it depends on the weights. tiles_to_prune < 0: by level.
int norm_mask_constant(double sparsity_level, int64_t tiles_to_prune, int64_t zeros_per_block, int64_t block_size);

// ---- the flat-tile path --------------------------------------------------------------------------

/// The k smallest of n order keys are those below `key` and the ties at indices below `cut`.
template <class K>
struct KeyThreshold {
  K key;
  size_t cut;
};

/// The threshold of the k smallest of n order keys in O(n) (k = 0 selects none, k >= n all): a radix
/// select (select.cpp).
KeyThreshold<uint32_t> select_threshold_u32(const uint32_t* keys, size_t n, size_t k);

/// Keys in flat_threshold()'s sample, taken when n >= 16 * kFlatSample: sample[i] = keys[i * s + s / 2]
/// with s = n / kFlatSample.
constexpr size_t kFlatSample = 32768;

/// The same threshold, found for large n by bracketing the k-th key with a strided sample and one SIMD
/// pass that counts the keys below the bracket and collects those inside it (the flat_bracket kernel),
/// then selecting among the few; a key held by many tiles is confirmed by one counting pass. Falls back
/// to select_threshold_u32 when the sample misleads (the result is exact either way). `sample`: the
/// sample already taken (kFlatSample keys, overwritten), e.g. while the keys were made; null: taken here.
KeyThreshold<uint32_t> flat_threshold(const uint32_t* keys, size_t n, size_t k, uint32_t* sample = nullptr);

/// Block widths the flat-tile passes handle.
inline bool flat_tiles_supported(int64_t bc) { return bc == 1 || bc == 2 || bc == 4 || bc == 8 || bc == 16; }

/// Pass 1 (FlatScoresFn in kernels/dispatch.hpp) on the active ISA: n elements of f32 weights `w`, a
/// mask of dtype f32, u8 or bool; `pruned_bits` is written only when zeros < bc. Any alignment. Returns
/// whether every mask element is exactly 0 or 1.
bool flat_tile_scores(const void* w, const void* mask, DType mask_dtype, size_t n, int64_t bc, Norm norm,
                      int64_t zeros, uint32_t* keys, uint8_t* old_bits, uint8_t* pruned_bits);

/// Pass 2 (FlatMaskFn) on the active ISA: new mask bits of n elements whose first tile has index `tile0`
/// in the threshold's numbering.
void flat_tile_mask(const uint32_t* keys, size_t n, int64_t bc, KeyThreshold<uint32_t> threshold,
                    size_t tile0, const uint8_t* pruned_bits, uint8_t* bits);

}  // namespace sparsity::kernels

// Mask kernels: pointer + count entry points, dispatched at run time to the best ISA of the CPU.
//
// Every family has a scalar reference and SIMD variants (SSE2, AVX2, AVX-512) written once against xsimd;
// every variant gives bit-identical results, for every thread count. Masks come in three forms:
//   bytes  - one uint8_t per element, non-zero = kept (torch's bool mask);
//   bits   - packed, element i is bit (i % 8) of byte i / 8, 1 = kept;
//   float  - the weight's own dtype, non-zero = kept (torch's float mask).
// Pruned elements become +0.0 (select, not multiply): a pruned NaN or Inf becomes 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "sparsity/base/dtype.hpp"

namespace sparsity::kernels {

/// Instruction sets with a compiled kernel table.
enum class Isa : uint8_t { scalar, sse2, avx2, avx512 };

const char* to_string(Isa isa) noexcept;
/// "scalar" | "sse2" | "avx2" | "avx512"; throws InvalidArgument naming the text otherwise.
Isa isa_from_string(std::string_view name);
/// ISAs compiled in *and* supported by this CPU, scalar first, best last.
std::vector<Isa> available_isas();
bool isa_available(Isa isa) noexcept;
/// The ISA the kernels use now: the best available, unless forced by set_isa() or the environment
/// variable SPARSITY_ISA=scalar|sse2|avx2|avx512 (read once, at first use).
Isa active_isa();
/// Force an ISA for this process; throws FailedPrecondition naming the ISA when the CPU lacks it.
void set_isa(Isa isa);
/// Undo set_isa(): back to SPARSITY_ISA or the best available.
void reset_isa();

/// Forces an ISA for the lifetime of the object, then restores the previous choice.
///   { sparsity::kernels::ScopedIsaOverride scalar(sparsity::kernels::Isa::scalar); run(); }
class ScopedIsaOverride {
 public:
  explicit ScopedIsaOverride(Isa isa);
  ~ScopedIsaOverride();
  ScopedIsaOverride(const ScopedIsaOverride&) = delete;
  ScopedIsaOverride& operator=(const ScopedIsaOverride&) = delete;

 private:
  Isa previous_;
  bool was_forced_;
};

/// Threads used by the multi-threaded kernels and sparsifiers (1 without OpenMP). Default: 1.
/// Results never depend on it.
void set_num_threads(int threads);
int num_threads() noexcept;

/// Norm used for scores: L1 = |w|, L2 = w*w (squared, no square root, as torch).
enum class Norm : uint8_t { L1, L2 };

// ---- apply / squash -------------------------------------------------------------------------------
// `dtype` is the weight's: f32, f64, f16 or bf16. `out` may equal `w` (in place = squash). Any
// alignment. n elements.

/// out[i] = mask[i] != 0 ? w[i] : +0.
void apply_mask_bytes(DType dtype, const void* w, const uint8_t* mask, void* out, size_t n);
/// out[i] = bit i of `bits` ? w[i] : +0.
void apply_mask_bits(DType dtype, const void* w, const uint8_t* bits, void* out, size_t n);
/// out[i] = mask[i] != 0 ? w[i] : +0, mask of the weight's dtype (a NaN mask element keeps w).
void apply_mask_float(DType dtype, const void* w, const void* mask, void* out, size_t n);

// ---- block scores ------------------------------------------------------------------------------
/// Mean of norm(w) over each br x bc tile of a rows x cols matrix (row stride `ld` elements), tiles
/// anchored at (0,0) and numbered row-major over the ceil(rows/br) x ceil(cols/bc) grid; an edge tile
/// is averaged over its in-range elements only. Scores are f64 for f64 weights, else f32 (summed in
/// f32, row-major inside the tile; for f16/bf16 both norm(w) and the mean are rounded to the weight's
/// dtype, as torch computes them in that dtype).
void block_scores(DType dtype, const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                  Norm norm, void* scores);

// ---- selection ---------------------------------------------------------------------------------
/// selected[i] = 1 for the k smallest of n scores, else 0, in O(n). Ties: lower index first; NaN ranks
/// above +inf above every finite score; -0.0 == +0.0. k > n selects all.
void select_k_smallest_f32(const float* scores, size_t n, size_t k, uint8_t* selected);
void select_k_smallest_f64(const double* scores, size_t n, size_t k, uint8_t* selected);

/// Inside every br x bc tile of a rows x cols score matrix (f32, or f64 when `f64` is set; row stride
/// `ld`), mark the `zeros` smallest elements: pruned[r*cols + c] = 1, else 0. Positions of an edge tile
/// outside the matrix rank as NaN at their place in the tile (row-major inside the tile), so they are
/// chosen after every real finite score. br = 1, bc = M, zeros = M - N is N:M sparsity along rows.
void tile_smallest(const void* scores, bool f64, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                   int64_t bc, int64_t zeros, uint8_t* pruned);

// ---- statistics ---------------------------------------------------------------------------------
/// Number of non-zero mask bytes / set bits among n elements.
int64_t count_kept_bytes(const uint8_t* mask, size_t n);
int64_t count_kept_bits(const uint8_t* bits, size_t n);
/// Kept elements per row of a rows x cols byte mask (row stride cols): out[rows].
void count_kept_rows(const uint8_t* mask, int64_t rows, int64_t cols, int64_t* out);
/// Kept elements per br x bc tile (row-major tile grid, edge tiles partial): out[ceil(r/br)*ceil(c/bc)].
void count_kept_tiles(const uint8_t* mask, int64_t rows, int64_t cols, int64_t br, int64_t bc, int64_t* out);

// ---- conversions --------------------------------------------------------------------------------
/// bytes (non-zero = kept) -> packed bits; the unused high bits of the last byte are 0.
void bytes_to_bits(const uint8_t* bytes, size_t n, uint8_t* bits);
/// packed bits -> bytes of 0/1.
void bits_to_bytes(const uint8_t* bits, size_t n, uint8_t* bytes);
/// packed bits -> 0/1 in `dtype` (f32, f64, f16, bf16, or bool/u8/i8/i32/i64).
void bits_to_mask(const uint8_t* bits, size_t n, DType dtype, void* mask);
/// bytes -> 0/1 in `dtype` (f32, f64, f16, bf16, or bool/u8/i8/i32/i64).
void bytes_to_mask(const uint8_t* bytes, size_t n, DType dtype, void* mask);
/// any-dtype mask -> bytes of 0/1 (non-zero, including NaN, = 1).
void mask_to_bytes(DType dtype, const void* mask, size_t n, uint8_t* bytes);

// ---- sparse linear ---------------------------------------------------------------------------------
/// How a packed sparse weight stores its kept elements (byte layouts: sparsity/core/packed.hpp).
enum class SparseLayout : uint8_t {
  nm,       ///< exactly n values per group of m columns; bitmask marks their positions
  bsr,      ///< block-sparse rows: dense block_rows x block_cols blocks with block-column indices
  bitmask,  ///< compressed-tensors' sparse-bitmask: kept values, one bit per element, row offsets
  csr,      ///< compressed sparse rows: values, column indices, row pointers
};

/// A packed rows x cols weight W as the sparse-linear kernels read it: pointers into its parts, no
/// ownership. Values are f32, f16 or bf16 in `dtype`.
///   nm:      values [rows, cols / m * n]; bitmask [rows, ceil(cols / 8)] with n bits per group of m.
///   bsr:     values [nnz / (br * bc), br, bc] (blocks of a block row in order, each row-major);
///            indices: block column of each block (u8, i16 or i32); offsets: rows / br + 1 block pointers
///            (u8, i16, i32 or i64).
///   bitmask: values [nnz]; bitmask [rows, ceil(cols / 8)]; offsets: rows entries (i64), the index of
///            each row's first value.
///   csr:     values [nnz]; indices: column of each value (u8, i16 or i32); offsets: rows + 1 row
///            pointers (u8, i16, i32 or i64).
/// Bit j of bitmask byte k of a row is column 8k + j. The kernels never read outside these extents,
/// whatever the index contents (out-of-range offsets and indices are clamped); the result is then
/// unspecified, so validate untrusted parts first (PackedTensor::from_parts does).
struct SparseWeight {
  SparseLayout layout = SparseLayout::csr;
  DType dtype = DType::f32;  ///< of the values
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t n = 0;  ///< nm
  int64_t m = 0;  ///< nm: 4, 8 or 16, dividing cols
  int64_t block_rows = 1;  ///< bsr: 1, 2, 4, 8 or 16, dividing rows
  int64_t block_cols = 1;  ///< bsr: 1, 2, 4, 8 or 16, dividing cols
  int64_t nnz = 0;         ///< stored values (bsr: blocks * block_rows * block_cols)
  const void* values = nullptr;
  const uint8_t* bitmask = nullptr;
  const void* offsets = nullptr;
  DType offsets_dtype = DType::i64;
  const void* indices = nullptr;
  DType indices_dtype = DType::i32;
};

/// y[b][i] = bias[i] + sum over the stored elements (i, j) of W of W[i][j] * x[b][j], for b < batch and
/// i < rows: x is batch x cols with row stride ldx, y batch x rows with row stride ldy (both f32), bias
/// f32 [rows] or null. Products are rounded to f32 and summed in f32 in a fixed order, so every ISA and
/// thread count gives the same bits:
///   batch 1: P partial sums per row, each summed in storage order from +0, then halved pairwise
///   (p[j] += p[j + h] for h = P/2, ..., 1). bitmask: the element at column c goes to partial c % 32;
///   nm, csr and bsr: the t-th stored element of the row (nm: slots, padding included; bsr: blocks,
///   then columns) to partial t % P, P = 32, or max(block_cols, 32 / r) for bsr blocks of r > 1 rows.
///   batch >= 2: one sum per output in storage order from +0.
///   The bias is added last.
/// Rows are split over kernels::num_threads() in fixed pieces; a row's sum is never split.
///   sparsity::kernels::sparse_linear(w, x, /*batch=*/8, /*ldx=*/w.cols, bias, y, /*ldy=*/w.rows);
void sparse_linear(const SparseWeight& w, const float* x, int64_t batch, int64_t ldx, const float* bias,
                   float* y, int64_t ldy);

}  // namespace sparsity::kernels

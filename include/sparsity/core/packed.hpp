// PackedTensor: a pruned 2-D weight stored as its kept values and their positions (N:M, BSR,
// compressed-tensors' bitmask, CSR), with named parts a tensor file can hold.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sparsity/core/tensor.hpp"
#include "sparsity/kernels/kernels.hpp"

namespace sparsity {

/// A packed layout with its parameters, or `auto` (a request to pack(): the smallest layout the
/// pattern fits). Names (to_string / from_string):
///   "sparse-24-bitmask"        N:M with n = 2, m = 4 (compressed-tensors' name); other N:M "nm<N>of<M>"
///                              (m in {4, 8, 16}, 1 <= n < m), e.g. "nm1of4", "nm4of8";
///   "bsr<R>x<C>"               block-sparse rows, R, C in {1, 2, 4, 8, 16}, e.g. "bsr1x8", "bsr8x1";
///   "sparse-bitmask"           compressed-tensors' bitmask layout;
///   "csr"                      compressed sparse rows;
///   "auto".
/// from_string also accepts "nm2of4" and "bitmask".
///
///   auto f = sparsity::PackFormat::from_string("bsr1x8");   // == PackFormat::bsr(1, 8)
class PackFormat {
 public:
  static PackFormat nm(int64_t n, int64_t m);
  static PackFormat bsr(int64_t block_rows, int64_t block_cols);
  static PackFormat bitmask();
  static PackFormat csr();
  static PackFormat automatic();
  /// InvalidArgument quoting `name` when it is none of the names above.
  static PackFormat from_string(std::string_view name);
  std::string to_string() const;

  bool is_auto() const noexcept { return auto_; }
  /// The layout; FailedPrecondition for `auto`.
  kernels::SparseLayout layout() const;
  int64_t n() const noexcept { return n_; }                    ///< N:M
  int64_t m() const noexcept { return m_; }                    ///< N:M
  int64_t block_rows() const noexcept { return block_rows_; }  ///< BSR
  int64_t block_cols() const noexcept { return block_cols_; }  ///< BSR
  bool operator==(const PackFormat& o) const noexcept;
  bool operator!=(const PackFormat& o) const noexcept { return !(*this == o); }

 private:
  PackFormat() = default;
  bool auto_ = false;
  kernels::SparseLayout layout_ = kernels::SparseLayout::csr;
  int64_t n_ = 0, m_ = 0, block_rows_ = 1, block_cols_ = 1;
};

/// A rows x cols weight packed in one layout. Parts (the names and order of parts() / from_parts(); a
/// file stores weight `a.b.weight` as `a.b.<part>`). es = bytes per value (f32: 4, f16/bf16: 2).
///
///   N:M (sparse-24-bitmask for 2:4; exactly n stored values per group of m columns; groups with fewer
///   kept elements are padded with +0.0 at their first unkept positions):
///     shape        i64  [2, 1]                    rows, cols
///     compressed   dtype [rows, cols / m * n]     the stored values, row by row
///     bitmask      u8   [rows, ceil(cols / 8)]    bit j of byte k of a row: column 8k + j is stored
///     bytes = 16 + rows cols n / m es + rows ceil(cols / 8)
///   sparse-bitmask (compressed-tensors):
///     shape        i64  [2]
///     compressed   dtype [nnz]                    kept values, row-major
///     bitmask      u8   [rows, ceil(cols / 8)]
///     row_offsets  i64  [rows]                    index in `compressed` of each row's first value
///     bytes = 16 + nnz es + rows ceil(cols / 8) + 8 rows
///   csr:
///     shape        i64  [2]
///     compressed   dtype [nnz]                    kept values, row-major
///     col_indices  u8 | i16 | i32 [nnz]           column of each value, increasing within a row
///     crow_indices u8 | i16 | i32 | i64 [rows + 1]  crow[i] .. crow[i + 1] are row i's values
///     bytes = 16 + nnz (es + ci) + (rows + 1) oi
///   bsr r x c (blocks holding at least one kept element, stored whole):
///     shape        i64  [2]
///     compressed   dtype [blocks, r, c]           blocks of a block row left to right, row-major inside
///     col_indices  u8 | i16 | i32 [blocks]        block column (column / c) of each block
///     crow_indices u8 | i16 | i32 | i64 [rows / r + 1]  block pointers per block row
///     bytes = 16 + blocks r c es + blocks ci + (rows / r + 1) oi
/// Index parts take the narrowest type their largest value fits: ci from cols - 1 (csr) or cols / c - 1
/// (bsr), oi from nnz or blocks (u8 <= 255, i16 <= 32767, i32 <= 2^31 - 1, else i64).
///
/// The parts are Tensors shared with the PackedTensor (reference semantics): writing into them changes
/// it. Every operation stays inside the parts whatever their contents (offsets and indices are
/// clamped); contents that fail from_parts' full check give unspecified numbers.
class PackedTensor {
 public:
  /// What from_parts checks: `full` every name, dtype, shape, offset, index and bit (O(size)); `shapes`
  /// names, dtypes and shapes only (O(1)), for parts already checked once (e.g. a module's buffers).
  enum class Check : uint8_t { full, shapes };

  /// An undefined packed tensor (defined() == false).
  PackedTensor() = default;

  /// Rebuilds a packed tensor from named parts (any order, no others), sharing their storage. Errors
  /// (InvalidArgument, NotFound for a missing part) name the part and, for contents, the row or
  /// entry: a wrong dtype or shape, offsets that do not match the bitmask or do not increase, a
  /// column index out of range or not increasing, an N:M group without exactly n bits, bits set past
  /// the last column. `shape` may be [2] or [2, 1] for every layout.
  static PackedTensor from_parts(const PackFormat& format, const NamedList<Tensor>& parts, Check check = Check::full);

  bool defined() const noexcept { return values_.defined(); }
  const PackFormat& format() const noexcept { return format_; }
  /// The dense shape {rows, cols}.
  Shape shape() const { return {rows_, cols_}; }
  int64_t rows() const noexcept { return rows_; }
  int64_t cols() const noexcept { return cols_; }
  /// Dtype of the values: f32, f16 or bf16.
  DType dtype() const;
  /// Stored values (N:M: rows cols n / m, padding included; BSR: blocks r c).
  int64_t nnz() const;
  /// Fraction of the dense elements not stored: 1 - nnz / (rows cols).
  double sparsity() const;
  /// Packed size: the bytes of every part.
  int64_t bytes() const;
  /// The named parts, in the order listed above.
  NamedList<Tensor> parts() const;
  /// One part by name; NotFound quoting the name for a part this layout does not have.
  Tensor part(std::string_view name) const;
  /// The dense tensor, bit for bit what was packed (see pack()).
  Tensor unpack() const;
  /// Pointers for kernels::sparse_linear (valid while this PackedTensor or its parts live).
  kernels::SparseWeight kernel_weight() const;
  /// "PackedTensor(sparse-24-bitmask, [4096, 4096], bf16, 8388608 values, 18874384 bytes)".
  std::string to_string() const;

 private:
  friend struct PackedTensorAccess;
  PackFormat format_ = PackFormat::csr();
  int64_t rows_ = 0, cols_ = 0;
  Tensor shape_, values_, bitmask_, offsets_, indices_;
};

/// Packs a 2-D f32, f16 or bf16 weight. Kept elements are those whose bits are not +0.0: -0.0, NaN
/// and every non-zero value are stored, so unpack() gives back every bit of `dense`. `auto` picks the
/// layout with the fewest bytes() the pattern fits (ties: N:M, then BSR with larger blocks, then
/// sparse-bitmask, then csr). Errors (InvalidArgument) name the first offending row and column: an
/// N:M group with more than n kept elements, a column count m does not divide, blocks that do not tile
/// the shape; a weight that is not 2-D or not f32/f16/bf16 names its shape or dtype.
///
///   sparsity::PackedTensor p = sparsity::pack(linear->weight(), sparsity::PackFormat::nm(2, 4));
///   sparsity::Tensor back = p.unpack();             // bitwise_equal(back, linear->weight())
PackedTensor pack(const Tensor& dense, const PackFormat& format);
/// Packs the elements `mask` keeps (same shape as `dense`, any dtype; non-zero keeps, a float mask's
/// -0.0 does not, NaN does). Elements outside the mask are not stored and unpack as +0.0, so unpack()
/// equals kernels' apply_mask(dense, mask) bit for bit (a kept -0.0 stays -0.0), which is `dense`
/// itself for any weight squash_mask produced.
PackedTensor pack(const Tensor& dense, const PackFormat& format, const Tensor& mask);
/// packed.unpack().
Tensor unpack(const PackedTensor& packed);

}  // namespace sparsity

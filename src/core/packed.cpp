// PackedTensor: packing a weight's kept elements into N:M, BSR, bitmask or CSR parts, the layout `auto`
// picks, unpacking, and rebuilding (with validation) from named parts.
#include "sparsity/core/packed.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <sstream>
#include <vector>

#include "base/text.hpp"
#include "sparsity/base/error.hpp"

namespace sparsity {

using kernels::SparseLayout;
using detail::quote;

// ---- PackFormat ------------------------------------------------------------------------------------------

namespace {
bool is_block_side(int64_t b) { return b == 1 || b == 2 || b == 4 || b == 8 || b == 16; }
}  // namespace

PackFormat PackFormat::nm(int64_t n, int64_t m) {
  SPARSITY_CHECK((m == 4 || m == 8 || m == 16) && n >= 1 && n < m, InvalidArgument, "N:M format ", n, ":", m,
                 ": m must be 4, 8 or 16 and 1 <= n < m");
  PackFormat f;
  f.layout_ = SparseLayout::nm;
  f.n_ = n;
  f.m_ = m;
  return f;
}

PackFormat PackFormat::bsr(int64_t block_rows, int64_t block_cols) {
  SPARSITY_CHECK(is_block_side(block_rows) && is_block_side(block_cols), InvalidArgument, "BSR block ", block_rows,
                 "x", block_cols, ": each side must be 1, 2, 4, 8 or 16");
  PackFormat f;
  f.layout_ = SparseLayout::bsr;
  f.block_rows_ = block_rows;
  f.block_cols_ = block_cols;
  return f;
}

PackFormat PackFormat::bitmask() {
  PackFormat f;
  f.layout_ = SparseLayout::bitmask;
  return f;
}

PackFormat PackFormat::csr() {
  PackFormat f;
  f.layout_ = SparseLayout::csr;
  return f;
}

PackFormat PackFormat::automatic() {
  PackFormat f;
  f.auto_ = true;
  return f;
}

PackFormat PackFormat::from_string(std::string_view name) {
  if (name == "auto") return automatic();
  if (name == "sparse-bitmask" || name == "bitmask") return bitmask();
  if (name == "sparse-24-bitmask") return nm(2, 4);
  if (name == "csr") return csr();
  // "nm<N>of<M>" and "bsr<R>x<C>" with small decimal numbers.
  auto number = [&](size_t& pos, int64_t& out) {
    const size_t begin = pos;
    out = 0;
    while (pos < name.size() && pos - begin < 3 && name[pos] >= '0' && name[pos] <= '9') {
      out = out * 10 + (name[pos++] - '0');
    }
    return pos > begin;
  };
  auto parse = [&](std::string_view prefix, std::string_view sep, int64_t& a, int64_t& b) {
    if (name.substr(0, prefix.size()) != prefix) return false;
    size_t pos = prefix.size();
    if (!number(pos, a) || name.substr(pos, sep.size()) != sep) return false;
    pos += sep.size();
    return number(pos, b) && pos == name.size();
  };
  int64_t a = 0, b = 0;
  try {
    if (parse("nm", "of", a, b)) return nm(a, b);
    if (parse("bsr", "x", a, b)) return bsr(a, b);
  } catch (const Error& e) {
    SPARSITY_FAIL(InvalidArgument, "packed format ", quote(name), ": ", e.what());
  }
  SPARSITY_FAIL(InvalidArgument, "unknown packed format ", quote(name),
                " (expected auto, sparse-bitmask, sparse-24-bitmask, nm<N>of<M>, bsr<R>x<C> or csr)");
}

std::string PackFormat::to_string() const {
  if (auto_) return "auto";
  switch (layout_) {
    case SparseLayout::nm:
      return n_ == 2 && m_ == 4 ? "sparse-24-bitmask" : "nm" + std::to_string(n_) + "of" + std::to_string(m_);
    case SparseLayout::bsr: return "bsr" + std::to_string(block_rows_) + "x" + std::to_string(block_cols_);
    case SparseLayout::bitmask: return "sparse-bitmask";
    case SparseLayout::csr: return "csr";
  }
  return "?";
}

SparseLayout PackFormat::layout() const {
  SPARSITY_CHECK(!auto_, FailedPrecondition, "the packed format 'auto' has no layout until pack() chooses one");
  return layout_;
}

bool PackFormat::operator==(const PackFormat& o) const noexcept {
  return auto_ == o.auto_ && layout_ == o.layout_ && n_ == o.n_ && m_ == o.m_ && block_rows_ == o.block_rows_ &&
         block_cols_ == o.block_cols_;
}

// ---- helpers ---------------------------------------------------------------------------------------------

namespace {

constexpr int64_t kShapeBytes = 16;  // the i64 shape part

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// The narrowest index dtype holding every value in [0, max_value].
DType index_dtype_for(int64_t max_value) {
  if (max_value <= 255) return DType::u8;
  if (max_value <= std::numeric_limits<int16_t>::max()) return DType::i16;
  if (max_value <= std::numeric_limits<int32_t>::max()) return DType::i32;
  return DType::i64;
}

int64_t read_index(const void* p, DType dtype, int64_t i) {
  const auto* b = static_cast<const uint8_t*>(p) + i * static_cast<int64_t>(size_of(dtype));
  switch (dtype) {
    case DType::u8: return *b;
    case DType::i16: {
      int16_t v;
      std::memcpy(&v, b, 2);
      return v;
    }
    case DType::i32: {
      int32_t v;
      std::memcpy(&v, b, 4);
      return v;
    }
    default: {
      int64_t v;
      std::memcpy(&v, b, 8);
      return v;
    }
  }
}

void write_index(void* p, DType dtype, int64_t i, int64_t v) {
  auto* b = static_cast<uint8_t*>(p) + i * static_cast<int64_t>(size_of(dtype));
  switch (dtype) {
    case DType::u8: *b = static_cast<uint8_t>(v); break;
    case DType::i16: {
      const int16_t s = static_cast<int16_t>(v);
      std::memcpy(b, &s, 2);
      break;
    }
    case DType::i32: {
      const int32_t s = static_cast<int32_t>(v);
      std::memcpy(b, &s, 4);
      break;
    }
    default: std::memcpy(b, &v, 8); break;
  }
}

// Clamping as the kernels do (kernels.hpp SparseWeight): every read stays inside the parts.
int64_t clamp_offset(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }
int64_t clamp_index(int64_t v, int64_t last) {
  const uint32_t u = static_cast<uint32_t>(static_cast<int32_t>(v));
  return u > static_cast<uint64_t>(last) ? last : static_cast<int64_t>(u);
}

const char* ordinal_suffix(int64_t k) {
  if (k % 100 >= 11 && k % 100 <= 13) return "th";
  return k % 10 == 1 ? "st" : k % 10 == 2 ? "nd" : k % 10 == 3 ? "rd" : "th";
}

/// The kept elements of a rows x cols weight as bits: word w of row r holds columns 64 w .. 64 w + 63.
struct KeepBits {
  int64_t rows = 0, cols = 0, words_per_row = 0;
  std::vector<uint64_t> words;

  KeepBits(int64_t r, int64_t c) : rows(r), cols(c), words_per_row(ceil_div(c, 64)) {
    words.assign(static_cast<size_t>(rows * words_per_row), 0);
  }
  const uint64_t* row(int64_t r) const { return words.data() + r * words_per_row; }
  bool get(int64_t r, int64_t c) const { return (row(r)[c / 64] >> (c % 64)) & 1u; }
  /// The `width` bits (width divides 64) starting at column c (a multiple of width).
  uint64_t field(int64_t r, int64_t c, int64_t width) const {
    const uint64_t w = row(r)[c / 64] >> (c % 64);
    return width == 64 ? w : w & ((uint64_t{1} << width) - 1);
  }
  int64_t count() const {
    int64_t n = 0;
    for (uint64_t w : words) n += __builtin_popcountll(w);
    return n;
  }
};

template <class U>
void keep_nonzero_bits(const U* p, KeepBits& k) {
  for (int64_t r = 0; r < k.rows; ++r) {
    const U* src = p + r * k.cols;
    uint64_t* dst = k.words.data() + r * k.words_per_row;
    for (int64_t c0 = 0; c0 < k.cols; c0 += 64) {
      const int64_t n = std::min<int64_t>(64, k.cols - c0);
      uint64_t w = 0;
      for (int64_t j = 0; j < n; ++j) w |= static_cast<uint64_t>(src[c0 + j] != 0) << j;
      dst[c0 / 64] = w;
    }
  }
}

/// Elements whose bits are not +0.0.
KeepBits keep_from_zeros(const Tensor& dense) {
  KeepBits k(dense.size(0), dense.size(1));
  if (dense.element_size() == 4) {
    keep_nonzero_bits(static_cast<const uint32_t*>(dense.data_ptr()), k);
  } else {
    keep_nonzero_bits(static_cast<const uint16_t*>(dense.data_ptr()), k);
  }
  return k;
}

/// Elements the mask keeps (mask_to_bytes: non-zero, NaN included, -0.0 not).
KeepBits keep_from_mask(const Tensor& dense, const Tensor& mask) {
  SPARSITY_CHECK(mask.defined() && mask.shape() == dense.shape(), InvalidArgument, "pack: mask of shape ",
                 mask.defined() ? shape_to_string(mask.shape()) : std::string("(undefined)"), " for a weight of shape ",
                 shape_to_string(dense.shape()));
  const Tensor m = mask.contiguous();
  KeepBits k(dense.size(0), dense.size(1));
  std::vector<uint8_t> bytes(static_cast<size_t>(k.cols));
  for (int64_t r = 0; r < k.rows; ++r) {
    kernels::mask_to_bytes(m.dtype(), static_cast<const char*>(m.data_ptr()) + r * k.cols * m.element_size(),
                           static_cast<size_t>(k.cols), bytes.data());
    kernels::bytes_to_bits(bytes.data(), static_cast<size_t>(k.cols),
                           reinterpret_cast<uint8_t*>(k.words.data() + r * k.words_per_row));
  }
  return k;
}

/// Copies row r's bits into `out` (ceil(cols / 8) bytes).
void row_bytes_of(const KeepBits& k, int64_t r, uint8_t* out) {
  std::memcpy(out, k.row(r), static_cast<size_t>(ceil_div(k.cols, 8)));
}

std::string prefix(const PackFormat& f) { return "pack as " + f.to_string() + ": "; }

// ---- fitting -------------------------------------------------------------------------------------------

void check_nm_width(const PackFormat& f, int64_t cols) {
  SPARSITY_CHECK(cols % f.m() == 0, InvalidArgument, prefix(f), cols, " columns are not a multiple of ", f.m(),
                 " (the group at row 0, column ", cols / f.m() * f.m(), " is partial)");
}

/// The largest kept count of any group of m columns; with `limit` >= 0, throws at the first group above it.
int64_t nm_max_kept(const KeepBits& k, const PackFormat* f, int64_t m, int64_t limit) {
  int64_t most = 0;
  for (int64_t r = 0; r < k.rows; ++r) {
    for (int64_t g = 0; g < k.cols; g += m) {
      const uint64_t bits = k.field(r, g, m);
      const int64_t n = __builtin_popcountll(bits);
      if (limit >= 0 && n > limit) {
        uint64_t rest = bits;
        for (int64_t i = 0; i < limit; ++i) rest &= rest - 1;
        const int64_t col = g + __builtin_ctzll(rest);
        SPARSITY_FAIL(InvalidArgument, prefix(*f), "row ", r, ", column ", col, " is the ", limit + 1,
                      ordinal_suffix(limit + 1), " kept element of the group of columns ", g, "..", g + m - 1, " (",
                      f->n(), ":", f->m(), " keeps at most ", f->n(),
                      "; kept = every element whose bits are not +0.0, or the mask's)");
      }
      most = std::max(most, n);
    }
  }
  return most;
}

void check_bsr_tiles(const PackFormat& f, int64_t rows, int64_t cols) {
  const int64_t r = f.block_rows(), c = f.block_cols();
  SPARSITY_CHECK(rows % r == 0, InvalidArgument, prefix(f), r, "x", c, " blocks do not tile a [", rows, ", ", cols,
                 "] weight: rows ", rows / r * r, "..", rows - 1, " are a partial block row (row ", rows / r * r,
                 ", column 0)");
  SPARSITY_CHECK(cols % c == 0, InvalidArgument, prefix(f), r, "x", c, " blocks do not tile a [", rows, ", ", cols,
                 "] weight: columns ", cols / c * c, "..", cols - 1, " are a partial block column (row 0, column ",
                 cols / c * c, ")");
}

/// Occupied c-wide column blocks per row, as bits: word w of row r holds block columns 64 w ...
struct BlockBits {
  int64_t words_per_row = 0;
  std::vector<uint64_t> words;
};

BlockBits block_columns(const KeepBits& k, int64_t c) {
  BlockBits b;
  const int64_t bcols = k.cols / c;
  b.words_per_row = ceil_div(bcols, 64);
  b.words.assign(static_cast<size_t>(k.rows * b.words_per_row), 0);
  for (int64_t r = 0; r < k.rows; ++r) {
    uint64_t* dst = b.words.data() + r * b.words_per_row;
    for (int64_t bc = 0; bc < bcols; ++bc) {
      if (k.field(r, bc * c, c) != 0) dst[bc / 64] |= uint64_t{1} << (bc % 64);
    }
  }
  return b;
}

/// Blocks of r rows holding a kept element, from the per-row occupied block columns.
int64_t count_blocks(const BlockBits& b, int64_t rows, int64_t r) {
  int64_t n = 0;
  for (int64_t br = 0; br < rows / r; ++br) {
    for (int64_t w = 0; w < b.words_per_row; ++w) {
      uint64_t any = 0;
      for (int64_t i = 0; i < r; ++i) any |= b.words[static_cast<size_t>((br * r + i) * b.words_per_row + w)];
      n += __builtin_popcountll(any);
    }
  }
  return n;
}

int64_t nm_bytes(int64_t rows, int64_t cols, int64_t n, int64_t m, int64_t es) {
  return kShapeBytes + rows * (cols / m * n) * es + rows * ceil_div(cols, 8);
}
int64_t bitmask_bytes(int64_t rows, int64_t cols, int64_t nnz, int64_t es) {
  return kShapeBytes + nnz * es + rows * ceil_div(cols, 8) + 8 * rows;
}
int64_t csr_bytes(int64_t rows, int64_t cols, int64_t nnz, int64_t es) {
  const int64_t ci = static_cast<int64_t>(size_of(index_dtype_for(std::max<int64_t>(cols - 1, 0))));
  const int64_t oi = static_cast<int64_t>(size_of(index_dtype_for(nnz)));
  return kShapeBytes + nnz * (es + ci) + (rows + 1) * oi;
}
int64_t bsr_bytes(int64_t rows, int64_t cols, int64_t r, int64_t c, int64_t blocks, int64_t es) {
  const int64_t ci = static_cast<int64_t>(size_of(index_dtype_for(std::max<int64_t>(cols / c - 1, 0))));
  const int64_t oi = static_cast<int64_t>(size_of(index_dtype_for(blocks)));
  return kShapeBytes + blocks * r * c * es + blocks * ci + (rows / r + 1) * oi;
}

/// The layout with the fewest bytes the pattern fits (ties: the earlier candidate).
PackFormat choose_layout(const KeepBits& k, int64_t es) {
  const int64_t rows = k.rows, cols = k.cols, nnz = k.count();
  std::optional<PackFormat> best;
  int64_t best_bytes = 0;
  auto offer = [&](const PackFormat& f, int64_t bytes) {
    if (!best || bytes < best_bytes) {
      best = f;
      best_bytes = bytes;
    }
  };
  for (int64_t m : {4, 8, 16}) {
    if (cols % m != 0) continue;
    const int64_t n = std::max<int64_t>(1, nm_max_kept(k, nullptr, m, -1));
    if (n < m) offer(PackFormat::nm(n, m), nm_bytes(rows, cols, n, m, es));
  }
  // Larger blocks first: fewer indices for the same bytes win ties (1x1 blocks would be csr itself).
  std::vector<std::optional<BlockBits>> by_width(17);
  for (int64_t area : {256, 128, 64, 32, 16, 8, 4, 2}) {
    for (int64_t c : {16, 8, 4, 2, 1}) {
      const int64_t r = area / c;
      if (r * c != area || !is_block_side(r) || rows % r != 0 || cols % c != 0) continue;
      if (!by_width[static_cast<size_t>(c)]) by_width[static_cast<size_t>(c)] = block_columns(k, c);
      offer(PackFormat::bsr(r, c), bsr_bytes(rows, cols, r, c, count_blocks(*by_width[static_cast<size_t>(c)], rows, r), es));
    }
  }
  offer(PackFormat::bitmask(), bitmask_bytes(rows, cols, nnz, es));
  offer(PackFormat::csr(), csr_bytes(rows, cols, nnz, es));
  return *best;
}

}  // namespace

// ---- packing ---------------------------------------------------------------------------------------------

/// Builds PackedTensors from a weight and its kept bits (the one place that fills the private fields).
struct PackedTensorAccess {
  static Tensor shape_part(int64_t rows, int64_t cols, bool column) {
    return Tensor::from_values({static_cast<double>(rows), static_cast<double>(cols)},
                               column ? Shape{2, 1} : Shape{2}, DType::i64);
  }

  static PackedTensor make(const PackFormat& f, const Tensor& dense, const KeepBits& k) {
    PackedTensor p;
    p.format_ = f;
    p.rows_ = k.rows;
    p.cols_ = k.cols;
    p.shape_ = shape_part(k.rows, k.cols, f.layout() == SparseLayout::nm);
    const int64_t es = static_cast<int64_t>(dense.element_size());
    const auto* src = static_cast<const uint8_t*>(dense.data_ptr());
    auto copy = [&](uint8_t* dst, int64_t slot, int64_t r, int64_t c) {
      std::memcpy(dst + slot * es, src + (r * k.cols + c) * es, static_cast<size_t>(es));
    };
    const int64_t rows = k.rows, cols = k.cols, row_bytes = ceil_div(cols, 8);
    switch (f.layout()) {
      case SparseLayout::nm: {
        const int64_t n = f.n(), m = f.m(), slots = cols / m * n;
        p.values_ = Tensor::zeros({rows, slots}, dense.dtype());
        p.bitmask_ = Tensor::zeros({rows, row_bytes}, DType::u8);
        auto* vals = static_cast<uint8_t*>(p.values_.mutable_data_ptr());
        auto* bits = static_cast<uint8_t*>(p.bitmask_.mutable_data_ptr());
        std::vector<uint64_t> row_words(static_cast<size_t>(k.words_per_row));
        for (int64_t r = 0; r < rows; ++r) {
          std::fill(row_words.begin(), row_words.end(), 0);
          int64_t t = r * slots;
          for (int64_t g = 0; g < cols; g += m) {
            const uint64_t kept = k.field(r, g, m);
            uint64_t chosen = kept;
            // Pad to exactly n with the first unkept positions (stored as +0.0: the zeros of `vals`).
            for (int64_t have = __builtin_popcountll(chosen); have < n; ++have) chosen |= ~chosen & (chosen + 1);
            for (uint64_t b = chosen; b != 0; b &= b - 1, ++t) {
              const int64_t j = __builtin_ctzll(b);
              if ((kept >> j) & 1u) copy(vals, t, r, g + j);
            }
            row_words[static_cast<size_t>(g / 64)] |= chosen << (g % 64);
          }
          std::memcpy(bits + r * row_bytes, row_words.data(), static_cast<size_t>(row_bytes));
        }
        break;
      }
      case SparseLayout::bitmask:
      case SparseLayout::csr: {
        const int64_t nnz = k.count();
        p.values_ = Tensor::zeros({nnz}, dense.dtype());
        auto* vals = static_cast<uint8_t*>(p.values_.mutable_data_ptr());
        const bool csr = f.layout() == SparseLayout::csr;
        if (csr) {
          p.indices_ = Tensor::zeros({nnz}, index_dtype_for(std::max<int64_t>(cols - 1, 0)));
          p.offsets_ = Tensor::zeros({rows + 1}, index_dtype_for(nnz));
        } else {
          p.bitmask_ = Tensor::zeros({rows, row_bytes}, DType::u8);
          p.offsets_ = Tensor::zeros({rows}, DType::i64);
        }
        int64_t t = 0;
        for (int64_t r = 0; r < rows; ++r) {
          write_index(p.offsets_.mutable_data_ptr(), p.offsets_.dtype(), r, t);
          if (!csr) row_bytes_of(k, r, static_cast<uint8_t*>(p.bitmask_.mutable_data_ptr()) + r * row_bytes);
          for (int64_t w = 0; w < k.words_per_row; ++w) {
            for (uint64_t b = k.row(r)[w]; b != 0; b &= b - 1, ++t) {
              const int64_t c = w * 64 + __builtin_ctzll(b);
              copy(vals, t, r, c);
              if (csr) write_index(p.indices_.mutable_data_ptr(), p.indices_.dtype(), t, c);
            }
          }
        }
        if (csr) write_index(p.offsets_.mutable_data_ptr(), p.offsets_.dtype(), rows, t);
        break;
      }
      case SparseLayout::bsr: {
        const int64_t br = f.block_rows(), bc = f.block_cols(), bcols = cols / bc;
        const BlockBits occ = block_columns(k, bc);
        const int64_t blocks = count_blocks(occ, rows, br);
        p.values_ = Tensor::zeros({blocks, br, bc}, dense.dtype());
        p.indices_ = Tensor::zeros({blocks}, index_dtype_for(std::max<int64_t>(bcols - 1, 0)));
        p.offsets_ = Tensor::zeros({rows / br + 1}, index_dtype_for(blocks));
        auto* vals = static_cast<uint8_t*>(p.values_.mutable_data_ptr());
        int64_t q = 0;
        for (int64_t R = 0; R < rows / br; ++R) {
          write_index(p.offsets_.mutable_data_ptr(), p.offsets_.dtype(), R, q);
          for (int64_t w = 0; w < occ.words_per_row; ++w) {
            uint64_t any = 0;
            for (int64_t i = 0; i < br; ++i) any |= occ.words[static_cast<size_t>((R * br + i) * occ.words_per_row + w)];
            for (; any != 0; any &= any - 1, ++q) {
              const int64_t B = w * 64 + __builtin_ctzll(any);
              write_index(p.indices_.mutable_data_ptr(), p.indices_.dtype(), q, B);
              for (int64_t i = 0; i < br; ++i) {
                for (int64_t e = 0; e < bc; ++e) {
                  // Unkept elements stay +0.0 (from a mask they may hold anything).
                  if (k.get(R * br + i, B * bc + e)) copy(vals, (q * br + i) * bc + e, R * br + i, B * bc + e);
                }
              }
            }
          }
        }
        write_index(p.offsets_.mutable_data_ptr(), p.offsets_.dtype(), rows / br, q);
        break;
      }
    }
    return p;
  }

  static PackedTensor pack(const Tensor& dense_in, const PackFormat& format, const Tensor* mask) {
    SPARSITY_CHECK(dense_in.defined(), InvalidArgument, "pack: the weight is undefined");
    SPARSITY_CHECK(dense_in.dim() == 2, InvalidArgument, "pack: the weight must be 2-D, got shape ",
                   shape_to_string(dense_in.shape()));
    const DType dt = dense_in.dtype();
    SPARSITY_CHECK(dt == DType::f32 || dt == DType::f16 || dt == DType::bf16, InvalidArgument,
                   "pack: the weight's values must be f32, f16 or bf16, got ", sparsity::to_string(dt));
    const Tensor dense = dense_in.contiguous();
    const KeepBits k = mask != nullptr ? keep_from_mask(dense, *mask) : keep_from_zeros(dense);
    const PackFormat f = format.is_auto() ? choose_layout(k, static_cast<int64_t>(dense.element_size())) : format;
    switch (f.layout()) {
      case SparseLayout::nm:
        check_nm_width(f, k.cols);
        nm_max_kept(k, &f, f.m(), f.n());
        break;
      case SparseLayout::bsr: check_bsr_tiles(f, k.rows, k.cols); break;
      case SparseLayout::bitmask:
      case SparseLayout::csr: break;
    }
    return make(f, dense, k);
  }
};

PackedTensor pack(const Tensor& dense, const PackFormat& format) {
  return PackedTensorAccess::pack(dense, format, nullptr);
}

PackedTensor pack(const Tensor& dense, const PackFormat& format, const Tensor& mask) {
  return PackedTensorAccess::pack(dense, format, &mask);
}

Tensor unpack(const PackedTensor& packed) { return packed.unpack(); }

// ---- accessors -------------------------------------------------------------------------------------------

namespace {
void check_defined(const PackedTensor& p, const char* what) {
  SPARSITY_CHECK(p.defined(), FailedPrecondition, "PackedTensor::", what, " on an undefined packed tensor");
}
}  // namespace

DType PackedTensor::dtype() const {
  check_defined(*this, "dtype");
  return values_.dtype();
}

int64_t PackedTensor::nnz() const {
  check_defined(*this, "nnz");
  return values_.numel();
}

double PackedTensor::sparsity() const {
  const int64_t n = rows_ * cols_;
  return n == 0 ? 0.0 : 1.0 - static_cast<double>(nnz()) / static_cast<double>(n);
}

NamedList<Tensor> PackedTensor::parts() const {
  check_defined(*this, "parts");
  NamedList<Tensor> out{{"shape", shape_}, {"compressed", values_}};
  switch (format_.layout()) {
    case SparseLayout::nm: out.emplace_back("bitmask", bitmask_); break;
    case SparseLayout::bitmask:
      out.emplace_back("bitmask", bitmask_);
      out.emplace_back("row_offsets", offsets_);
      break;
    case SparseLayout::csr:
    case SparseLayout::bsr:
      out.emplace_back("col_indices", indices_);
      out.emplace_back("crow_indices", offsets_);
      break;
  }
  return out;
}

Tensor PackedTensor::part(std::string_view name) const {
  for (auto& [n, t] : parts()) {
    if (n == name) return t;
  }
  SPARSITY_FAIL(NotFound, "a ", format_.to_string(), " packed tensor has no part ", quote(name));
}

int64_t PackedTensor::bytes() const {
  int64_t total = 0;
  for (const auto& [name, t] : parts()) total += static_cast<int64_t>(t.nbytes());
  return total;
}

kernels::SparseWeight PackedTensor::kernel_weight() const {
  check_defined(*this, "kernel_weight");
  kernels::SparseWeight w;
  w.layout = format_.layout();
  w.dtype = values_.dtype();
  w.rows = rows_;
  w.cols = cols_;
  w.n = format_.n();
  w.m = format_.m();
  w.block_rows = format_.block_rows();
  w.block_cols = format_.block_cols();
  w.nnz = values_.numel();
  w.values = values_.data_ptr();
  if (bitmask_.defined()) w.bitmask = static_cast<const uint8_t*>(bitmask_.data_ptr());
  if (offsets_.defined()) {
    w.offsets = offsets_.data_ptr();
    w.offsets_dtype = offsets_.dtype();
  }
  if (indices_.defined()) {
    w.indices = indices_.data_ptr();
    w.indices_dtype = indices_.dtype();
  }
  return w;
}

std::string PackedTensor::to_string() const {
  if (!defined()) return "PackedTensor(undefined)";
  std::ostringstream os;
  os << "PackedTensor(" << format_.to_string() << ", " << shape_to_string(shape()) << ", "
     << sparsity::to_string(dtype()) << ", " << nnz() << " values, " << bytes() << " bytes)";
  return os.str();
}

Tensor PackedTensor::unpack() const {
  check_defined(*this, "unpack");
  Tensor dense = Tensor::zeros({rows_, cols_}, values_.dtype());
  const int64_t es = static_cast<int64_t>(values_.element_size()), nnz = values_.numel();
  const auto* vals = static_cast<const uint8_t*>(values_.data_ptr());
  auto* dst = static_cast<uint8_t*>(dense.mutable_data_ptr());
  auto put = [&](int64_t r, int64_t c, int64_t v) {
    std::memcpy(dst + (r * cols_ + c) * es, vals + v * es, static_cast<size_t>(es));
  };
  const int64_t row_bytes = ceil_div(cols_, 8);
  switch (format_.layout()) {
    case SparseLayout::nm:
    case SparseLayout::bitmask: {
      const bool nm = format_.layout() == SparseLayout::nm;
      const int64_t slots = nm ? cols_ / format_.m() * format_.n() : 0;
      const auto* bits = static_cast<const uint8_t*>(bitmask_.data_ptr());
      for (int64_t r = 0; r < rows_; ++r) {
        const int64_t start = nm ? r * slots : clamp_offset(read_index(offsets_.data_ptr(), DType::i64, r), 0, nnz);
        const int64_t avail = nm ? slots : nnz - start;
        int64_t t = 0;
        for (int64_t c = 0; c < cols_ && t < avail; ++c) {
          if ((bits[r * row_bytes + c / 8] >> (c % 8)) & 1u) put(r, c, start + t++);
        }
      }
      break;
    }
    case SparseLayout::csr:
      for (int64_t r = 0; r < rows_; ++r) {
        const int64_t start = clamp_offset(read_index(offsets_.data_ptr(), offsets_.dtype(), r), 0, nnz);
        const int64_t end = clamp_offset(read_index(offsets_.data_ptr(), offsets_.dtype(), r + 1), start, nnz);
        for (int64_t q = start; q < end; ++q) {
          put(r, clamp_index(read_index(indices_.data_ptr(), indices_.dtype(), q), cols_ - 1), q);
        }
      }
      break;
    case SparseLayout::bsr: {
      const int64_t br = format_.block_rows(), bc = format_.block_cols(), blocks = nnz / (br * bc);
      for (int64_t R = 0; R < rows_ / br; ++R) {
        const int64_t start = clamp_offset(read_index(offsets_.data_ptr(), offsets_.dtype(), R), 0, blocks);
        const int64_t end = clamp_offset(read_index(offsets_.data_ptr(), offsets_.dtype(), R + 1), start, blocks);
        for (int64_t q = start; q < end; ++q) {
          const int64_t B = clamp_index(read_index(indices_.data_ptr(), indices_.dtype(), q), cols_ / bc - 1);
          for (int64_t f = 0; f < br * bc; ++f) put(R * br + f / bc, B * bc + f % bc, q * br * bc + f);
        }
      }
      break;
    }
  }
  return dense;
}

// ---- from_parts ------------------------------------------------------------------------------------------

namespace {

struct PartCheck {
  std::string where;  // "from_parts (csr): "

  [[noreturn]] void fail(ErrorCode code, const std::string& part, const std::string& what) const {
    throw Error(code, where + "part " + quote(part) + ": " + what);
  }
  void dtype_in(const std::string& part, const Tensor& t, std::initializer_list<DType> allowed) const {
    for (DType d : allowed) {
      if (t.dtype() == d) return;
    }
    std::string names;
    for (DType d : allowed) names += (names.empty() ? "" : ", ") + std::string(sparsity::to_string(d));
    fail(ErrorCode::InvalidArgument, part, std::string("dtype ") + sparsity::to_string(t.dtype()) + ", expected " + names);
  }
  void shape_is(const std::string& part, const Tensor& t, const Shape& want) const {
    if (t.shape() != want) {
      fail(ErrorCode::InvalidArgument, part,
           "shape " + shape_to_string(t.shape()) + ", expected " + shape_to_string(want));
    }
  }
};

/// Offsets part: starts at 0, never decreases, ends at `total` (when `last_is_total`).
void check_pointers(const PartCheck& pc, const std::string& part, const Tensor& t, int64_t count, int64_t total) {
  int64_t prev = 0;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t v = read_index(t.data_ptr(), t.dtype(), i);
    if (i == 0 && v != 0) pc.fail(ErrorCode::InvalidArgument, part, "entry 0 is " + std::to_string(v) + ", expected 0");
    if (v < prev) {
      pc.fail(ErrorCode::InvalidArgument, part,
              "entry " + std::to_string(i) + " is " + std::to_string(v) + ", below entry " + std::to_string(i - 1) +
                  " (" + std::to_string(prev) + ")");
    }
    prev = v;
  }
  if (prev != total) {
    pc.fail(ErrorCode::InvalidArgument, part,
            "the last entry is " + std::to_string(prev) + ", expected " + std::to_string(total) +
                " (the stored values or blocks)");
  }
}

/// Column indices of each row (or block row) in [0, limit) and increasing.
void check_columns(const PartCheck& pc, const Tensor& idx, const Tensor& ptr, int64_t rows, int64_t limit,
                   const char* row_word) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t b = read_index(ptr.data_ptr(), ptr.dtype(), r), e = read_index(ptr.data_ptr(), ptr.dtype(), r + 1);
    for (int64_t q = b; q < e; ++q) {
      const int64_t c = read_index(idx.data_ptr(), idx.dtype(), q);
      const std::string at = "entry " + std::to_string(q) + " (" + row_word + " " + std::to_string(r) + ") is " +
                             std::to_string(c);
      if (c < 0 || c >= limit) {
        pc.fail(ErrorCode::InvalidArgument, "col_indices", at + ", outside [0, " + std::to_string(limit) + ")");
      }
      if (q > b && c <= read_index(idx.data_ptr(), idx.dtype(), q - 1)) {
        pc.fail(ErrorCode::InvalidArgument, "col_indices", at + ", not above the entry before it");
      }
    }
  }
}

}  // namespace

PackedTensor PackedTensor::from_parts(const PackFormat& format, const NamedList<Tensor>& parts, Check check) {
  SPARSITY_CHECK(!format.is_auto(), InvalidArgument, "from_parts: the format must be a layout, not 'auto'");
  const SparseLayout layout = format.layout();
  const PartCheck pc{"from_parts (" + format.to_string() + "): "};
  std::vector<std::string> expected{"shape", "compressed"};
  if (layout == SparseLayout::nm || layout == SparseLayout::bitmask) expected.push_back("bitmask");
  if (layout == SparseLayout::bitmask) expected.push_back("row_offsets");
  if (layout == SparseLayout::csr || layout == SparseLayout::bsr) {
    expected.push_back("col_indices");
    expected.push_back("crow_indices");
  }
  std::string expected_list;
  for (const auto& e : expected) expected_list += (expected_list.empty() ? "" : ", ") + e;
  std::vector<Tensor> got(expected.size());
  for (const auto& [name, t] : parts) {
    const auto it = std::find(expected.begin(), expected.end(), name);
    if (it == expected.end()) {
      pc.fail(ErrorCode::InvalidArgument, name, "not a part of this layout (expected " + expected_list + ")");
    }
    Tensor& slot = got[static_cast<size_t>(it - expected.begin())];
    if (slot.defined()) pc.fail(ErrorCode::InvalidArgument, name, "given twice");
    if (!t.defined()) pc.fail(ErrorCode::InvalidArgument, name, "undefined tensor");
    slot = t.contiguous();
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!got[i].defined()) pc.fail(ErrorCode::NotFound, expected[i], "missing (expected " + expected_list + ")");
  }
  const Tensor& shape = got[0];
  const Tensor& values = got[1];
  pc.dtype_in("shape", shape, {DType::i64});
  if (shape.shape() != Shape{2} && shape.shape() != Shape{2, 1}) {
    pc.fail(ErrorCode::InvalidArgument, "shape", "shape " + shape_to_string(shape.shape()) + ", expected [2] or [2, 1]");
  }
  const int64_t rows = read_index(shape.data_ptr(), DType::i64, 0), cols = read_index(shape.data_ptr(), DType::i64, 1);
  if (rows < 0 || cols < 0 || (cols > 0 && rows > std::numeric_limits<int64_t>::max() / cols) ||
      cols > std::numeric_limits<int32_t>::max()) {
    pc.fail(ErrorCode::InvalidArgument, "shape",
            "dense shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "] is out of range");
  }
  pc.dtype_in("compressed", values, {DType::f32, DType::f16, DType::bf16});
  PackedTensor p;
  p.format_ = format;
  p.rows_ = rows;
  p.cols_ = cols;
  p.shape_ = shape;
  p.values_ = values;
  const int64_t row_bytes = ceil_div(cols, 8);
  if (layout == SparseLayout::nm || layout == SparseLayout::bitmask) {
    p.bitmask_ = got[2];
    pc.dtype_in("bitmask", p.bitmask_, {DType::u8});
    pc.shape_is("bitmask", p.bitmask_, {rows, row_bytes});
  }
  switch (layout) {
    case SparseLayout::nm: {
      if (cols % format.m() != 0) {
        pc.fail(ErrorCode::InvalidArgument, "shape",
                std::to_string(cols) + " columns are not a multiple of " + std::to_string(format.m()));
      }
      pc.shape_is("compressed", values, {rows, cols / format.m() * format.n()});
      break;
    }
    case SparseLayout::bitmask:
      p.offsets_ = got[3];
      pc.dtype_in("row_offsets", p.offsets_, {DType::i64});
      pc.shape_is("row_offsets", p.offsets_, {rows});
      if (values.dim() != 1) pc.shape_is("compressed", values, {values.numel()});
      break;
    case SparseLayout::csr:
    case SparseLayout::bsr: {
      p.indices_ = got[2];
      p.offsets_ = got[3];
      pc.dtype_in("col_indices", p.indices_, {DType::u8, DType::i16, DType::i32});
      pc.dtype_in("crow_indices", p.offsets_, {DType::u8, DType::i16, DType::i32, DType::i64});
      const int64_t r = format.block_rows(), c = format.block_cols();
      if (layout == SparseLayout::bsr && (rows % r != 0 || cols % c != 0)) {
        pc.fail(ErrorCode::InvalidArgument, "shape",
                std::to_string(r) + "x" + std::to_string(c) + " blocks do not tile [" + std::to_string(rows) + ", " +
                    std::to_string(cols) + "]");
      }
      const int64_t units = layout == SparseLayout::bsr ? rows / r : rows;
      const int64_t entries = layout == SparseLayout::bsr ? values.numel() / (r * c) : values.numel();
      if (layout == SparseLayout::bsr) {
        pc.shape_is("compressed", values, {values.dim() == 3 ? values.size(0) : entries, r, c});
      } else if (values.dim() != 1) {
        pc.shape_is("compressed", values, {values.numel()});
      }
      pc.shape_is("col_indices", p.indices_, {entries});
      pc.shape_is("crow_indices", p.offsets_, {units + 1});
      // Without columns no index can be clamped into range: such a weight stores nothing.
      if (cols == 0 && entries != 0) {
        pc.fail(ErrorCode::InvalidArgument, "compressed",
                std::to_string(values.numel()) + " values for a weight of no columns");
      }
      break;
    }
  }
  if (check == Check::shapes) return p;

  // Contents.
  if (p.bitmask_.defined()) {
    const auto* bits = static_cast<const uint8_t*>(p.bitmask_.data_ptr());
    int64_t total = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* row = bits + r * row_bytes;
      if (cols % 8 != 0 && (row[row_bytes - 1] >> (cols % 8)) != 0) {
        pc.fail(ErrorCode::InvalidArgument, "bitmask",
                "row " + std::to_string(r) + " has bits set past the last column (" + std::to_string(cols - 1) + ")");
      }
      int64_t kept = 0;
      for (int64_t b = 0; b < row_bytes; ++b) kept += __builtin_popcount(row[b]);
      if (layout == SparseLayout::nm) {
        const int64_t m = format.m();
        for (int64_t g = 0; g < cols; g += m) {
          int64_t n = 0;
          for (int64_t c = g; c < g + m; ++c) n += (row[c / 8] >> (c % 8)) & 1;
          if (n != format.n()) {
            pc.fail(ErrorCode::InvalidArgument, "bitmask",
                    "row " + std::to_string(r) + ", columns " + std::to_string(g) + ".." + std::to_string(g + m - 1) +
                        " hold " + std::to_string(n) + " set bits (" + std::to_string(format.n()) + ":" +
                        std::to_string(m) + " needs exactly " + std::to_string(format.n()) + ")");
          }
        }
      } else {
        const int64_t off = read_index(p.offsets_.data_ptr(), DType::i64, r);
        if (off != total) {
          pc.fail(ErrorCode::InvalidArgument, "row_offsets",
                  "entry " + std::to_string(r) + " is " + std::to_string(off) + ", expected " + std::to_string(total) +
                      " (the set bits of 'bitmask' in rows before it)");
        }
      }
      total += kept;
    }
    if (layout == SparseLayout::bitmask && total != values.numel()) {
      pc.fail(ErrorCode::InvalidArgument, "compressed",
              std::to_string(values.numel()) + " values for " + std::to_string(total) + " set bits of 'bitmask'");
    }
  } else {
    const bool bsr = layout == SparseLayout::bsr;
    const int64_t units = bsr ? rows / format.block_rows() : rows;
    const int64_t entries = p.indices_.numel();
    check_pointers(pc, "crow_indices", p.offsets_, units + 1, entries);
    check_columns(pc, p.indices_, p.offsets_, units, bsr ? cols / format.block_cols() : cols,
                  bsr ? "block row" : "row");
  }
  return p;
}

}  // namespace sparsity

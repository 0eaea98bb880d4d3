// Public kernel entry points: argument checks, the split into fixed chunks for threads, then the active table.
#include "sparsity/kernels/kernels.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "base/parallel.hpp"
#include "kernels/dispatch.hpp"
#include "base/scratch.hpp"
#include "kernels/fused.hpp"
#include "kernels/mask_bits.hpp"
#include "sparsity/base/error.hpp"

namespace sparsity::kernels {

namespace {

// Every entry splits its work into fixed pieces over num_threads() threads (base/parallel.hpp).
template <class F>
void parallel_for(int64_t count, int64_t work_per_item, int64_t align, F&& f) {
  detail::parallel_for(num_threads(), count, work_per_item, align, std::forward<F>(f));
}

void check_float(DType dtype, const char* what) {
  SPARSITY_CHECK(is_floating(dtype), InvalidArgument, what, ": weight dtype must be f32, f64, f16 or bf16, got ",
                 to_string(dtype));
}

void check_ptr(const void* p, size_t n, const char* what, const char* arg) {
  SPARSITY_CHECK(p != nullptr || n == 0, InvalidArgument, what, ": null `", arg, "` for ", n, " elements");
}

void check_matrix(int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc, const char* what) {
  SPARSITY_CHECK(rows >= 0 && cols >= 0, InvalidArgument, what, ": negative matrix shape [", rows, ", ", cols,
                 "]");
  SPARSITY_CHECK(ld >= cols, InvalidArgument, what, ": row stride ", ld, " is smaller than ", cols, " columns");
  SPARSITY_CHECK(br >= 1 && bc >= 1, InvalidArgument, what, ": block shape (", br, ", ", bc,
                 ") must be positive");
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }


// Out-of-place outputs this large bypass the cache (as memcpy does), so they do not evict the inputs.
constexpr size_t kStreamMinBytes = size_t{4} << 20;

template <class Fn, class M>
void run_apply(Fn fn, DType dtype, const void* w, M mask_at, void* out, size_t n, int64_t align) {
  const size_t es = size_of(dtype);
  const bool stream = out != w && n * es >= kStreamMinBytes;
  parallel_for(static_cast<int64_t>(n), 1, align, [&](int64_t b, int64_t e) {
    fn(static_cast<const char*>(w) + b * es, mask_at(b), static_cast<char*>(out) + b * es,
       static_cast<size_t>(e - b), stream);
  });
}

// The SIMD block-score and tile kernels gather with typed element loads, which need naturally aligned
// elements; a buffer that is not (e.g. a tensor at an odd offset of a safetensors file) takes the scalar
// table, whose loads go through memcpy. Results are identical either way.
const KernelTable& table_for_elements(const void* p, size_t element_size) {
  return reinterpret_cast<uintptr_t>(p) % element_size == 0 ? active_table() : table_for(Isa::scalar);
}

}  // namespace

void apply_mask_bytes(DType dtype, const void* w, const uint8_t* mask, void* out, size_t n) {
  check_float(dtype, "apply_mask_bytes");
  check_ptr(w, n, "apply_mask_bytes", "w");
  check_ptr(mask, n, "apply_mask_bytes", "mask");
  check_ptr(out, n, "apply_mask_bytes", "out");
  run_apply(active_table().apply_bytes[width_of(dtype)], dtype, w, [&](int64_t b) { return mask + b; }, out, n,
            64);
}

void apply_mask_bits(DType dtype, const void* w, const uint8_t* bits, void* out, size_t n) {
  check_float(dtype, "apply_mask_bits");
  check_ptr(w, n, "apply_mask_bits", "w");
  check_ptr(bits, n, "apply_mask_bits", "bits");
  check_ptr(out, n, "apply_mask_bits", "out");
  run_apply(active_table().apply_bits[width_of(dtype)], dtype, w, [&](int64_t b) { return bits + b / 8; }, out,
            n, 64);
}

void apply_mask_float(DType dtype, const void* w, const void* mask, void* out, size_t n) {
  check_float(dtype, "apply_mask_float");
  check_ptr(w, n, "apply_mask_float", "w");
  check_ptr(mask, n, "apply_mask_float", "mask");
  check_ptr(out, n, "apply_mask_float", "out");
  const size_t es = size_of(dtype);
  run_apply(active_table().apply_float[width_of(dtype)], dtype, w,
            [&](int64_t b) { return static_cast<const char*>(mask) + b * es; }, out, n, 64);
}

void block_scores(DType dtype, const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                  Norm norm, void* scores) {
  check_float(dtype, "block_scores");
  check_matrix(rows, cols, ld, br, bc, "block_scores");
  const int64_t trows = ceil_div(rows, br);
  if (trows == 0 || cols == 0) return;
  check_ptr(w, static_cast<size_t>(rows * cols), "block_scores", "w");
  check_ptr(scores, 1, "block_scores", "scores");
  const BlockScoresFn fn = table_for_elements(w, size_of(dtype)).block_scores[float_index(dtype)];
  parallel_for(trows, br * cols, 1,
               [&](int64_t b, int64_t e) { fn(w, rows, cols, ld, br, bc, norm, scores, b, e); });
}

void select_k_smallest_f32(const float* scores, size_t n, size_t k, uint8_t* selected) {
  check_ptr(scores, n, "select_k_smallest_f32", "scores");
  check_ptr(selected, n, "select_k_smallest_f32", "selected");
  active_table().select_f32(scores, n, k, selected);
}

void select_k_smallest_f64(const double* scores, size_t n, size_t k, uint8_t* selected) {
  check_ptr(scores, n, "select_k_smallest_f64", "scores");
  check_ptr(selected, n, "select_k_smallest_f64", "selected");
  active_table().select_f64(scores, n, k, selected);
}

void tile_smallest(const void* scores, bool f64, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                   int64_t zeros, uint8_t* pruned) {
  check_matrix(rows, cols, ld, br, bc, "tile_smallest");
  SPARSITY_CHECK(zeros >= 0 && zeros <= br * bc, InvalidArgument, "tile_smallest: zeros ", zeros,
                 " outside [0, ", br * bc, "] for block (", br, ", ", bc, ")");
  const int64_t trows = ceil_div(rows, br);
  if (trows == 0 || cols == 0) return;
  check_ptr(scores, static_cast<size_t>(rows * cols), "tile_smallest", "scores");
  check_ptr(pruned, static_cast<size_t>(rows * cols), "tile_smallest", "pruned");
  const TileSmallestFn fn = table_for_elements(scores, f64 ? 8 : 4).tile_smallest[f64 ? 1 : 0];
  parallel_for(trows, br * cols, 1,
               [&](int64_t b, int64_t e) { fn(scores, rows, cols, ld, br, bc, zeros, pruned, b, e); });
}

int64_t count_kept_bytes(const uint8_t* mask, size_t n) {
  check_ptr(mask, n, "count_kept_bytes", "mask");
  const CountBytesFn fn = active_table().count_bytes;
  // Integer partial sums: the total is exact whatever the split.
  return detail::parallel_sum<int64_t>(num_threads(), static_cast<int64_t>(n), 1, 64, [&](int64_t b, int64_t e) {
    return fn(mask + b, static_cast<size_t>(e - b));
  });
}

int64_t count_kept_bits(const uint8_t* bits, size_t n) {
  check_ptr(bits, n, "count_kept_bits", "bits");
  return active_table().count_bits(bits, n);
}

void count_kept_rows(const uint8_t* mask, int64_t rows, int64_t cols, int64_t* out) {
  check_matrix(rows, cols, cols, 1, 1, "count_kept_rows");
  check_ptr(mask, static_cast<size_t>(rows * cols), "count_kept_rows", "mask");
  check_ptr(out, static_cast<size_t>(rows), "count_kept_rows", "out");
  const CountBytesFn fn = active_table().count_bytes;
  parallel_for(rows, cols, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) out[r] = fn(mask + r * cols, static_cast<size_t>(cols));
  });
}

void count_kept_tiles(const uint8_t* mask, int64_t rows, int64_t cols, int64_t br, int64_t bc, int64_t* out) {
  check_matrix(rows, cols, cols, br, bc, "count_kept_tiles");
  const int64_t trows = ceil_div(rows, br), tcols = ceil_div(cols, bc);
  if (trows == 0 || tcols == 0) return;
  check_ptr(mask, static_cast<size_t>(rows * cols), "count_kept_tiles", "mask");
  check_ptr(out, static_cast<size_t>(trows * tcols), "count_kept_tiles", "out");
  const CountBytesFn fn = active_table().count_bytes;
  parallel_for(trows, br * cols, 1, [&](int64_t b, int64_t e) {
    for (int64_t tr = b; tr < e; ++tr) {
      for (int64_t tc = 0; tc < tcols; ++tc) {
        const int64_t r0 = tr * br, r1 = std::min(rows, r0 + br);
        const int64_t c0 = tc * bc, c1 = std::min(cols, c0 + bc);
        int64_t sum = 0;
        for (int64_t r = r0; r < r1; ++r) sum += fn(mask + r * cols + c0, static_cast<size_t>(c1 - c0));
        out[tr * tcols + tc] = sum;
      }
    }
  });
}

void bytes_to_bits(const uint8_t* bytes, size_t n, uint8_t* bits) {
  check_ptr(bytes, n, "bytes_to_bits", "bytes");
  check_ptr(bits, n, "bytes_to_bits", "bits");
  const BytesToBitsFn fn = active_table().bytes_to_bits;
  parallel_for(static_cast<int64_t>(n), 1, 64,
               [&](int64_t b, int64_t e) { fn(bytes + b, static_cast<size_t>(e - b), bits + b / 8); });
}

void bits_to_bytes(const uint8_t* bits, size_t n, uint8_t* bytes) {
  check_ptr(bits, n, "bits_to_bytes", "bits");
  check_ptr(bytes, n, "bits_to_bytes", "bytes");
  const BitsToBytesFn fn = active_table().bits_to_bytes;
  parallel_for(static_cast<int64_t>(n), 1, 64,
               [&](int64_t b, int64_t e) { fn(bits + b / 8, static_cast<size_t>(e - b), bytes + b); });
}

void bits_to_mask(const uint8_t* bits, size_t n, DType dtype, void* mask) {
  check_ptr(bits, n, "bits_to_mask", "bits");
  check_ptr(mask, n, "bits_to_mask", "mask");
  const size_t es = size_of(dtype);
  // Element-misaligned outputs take the reference, which stores through memcpy.
  const KernelTable& table =
      reinterpret_cast<uintptr_t>(mask) % es == 0 ? active_table() : table_for(Isa::scalar);
  const BitsToMaskFn fn = table.bits_to_mask[size_index(es)];
  const uint64_t one = one_bits(dtype);
  parallel_for(static_cast<int64_t>(n), 1, 64, [&](int64_t b, int64_t e) {
    fn(bits + b / 8, static_cast<size_t>(e - b), one, static_cast<char*>(mask) + b * es);
  });
}

void bytes_to_mask(const uint8_t* bytes, size_t n, DType dtype, void* mask) {
  check_ptr(bytes, n, "bytes_to_mask", "bytes");
  check_ptr(mask, n, "bytes_to_mask", "mask");
  const size_t es = size_of(dtype);
  const BytesToMaskFn fn = active_table().bytes_to_mask[size_index(es)];
  const uint64_t one = one_bits(dtype);
  parallel_for(static_cast<int64_t>(n), 1, 64, [&](int64_t b, int64_t e) {
    fn(bytes + b, static_cast<size_t>(e - b), one, static_cast<char*>(mask) + b * es);
  });
}

void mask_to_bytes(DType dtype, const void* mask, size_t n, uint8_t* bytes) {
  check_ptr(mask, n, "mask_to_bytes", "mask");
  check_ptr(bytes, n, "mask_to_bytes", "bytes");
  const size_t es = size_of(dtype);
  const MaskToBytesFn fn = active_table().mask_to_bytes[size_index(es)];
  const uint64_t vb = value_bits(dtype);
  parallel_for(static_cast<int64_t>(n), 1, 64, [&](int64_t b, int64_t e) {
    fn(static_cast<const char*>(mask) + b * es, static_cast<size_t>(e - b), vb, bytes + b);
  });
}

// ---- fused WeightNorm passes (kernels/fused.hpp) ------------------------------------------------------

namespace {
void check_flat_block(int64_t bc, size_t n, const char* what) {
  SPARSITY_CHECK(flat_tiles_supported(bc) && n % static_cast<size_t>(bc) == 0, InvalidArgument, what,
                 ": block width ", bc, " must be 1, 2, 4, 8 or 16 and divide ", n, " elements");
}
}  // namespace

bool flat_tile_scores(const void* w, const void* mask, DType mask_dtype, size_t n, int64_t bc, Norm norm,
                      int64_t zeros, uint32_t* keys, uint8_t* old_bits, uint8_t* pruned_bits) {
  check_flat_block(bc, n, "flat_tile_scores");
  const bool byte_mask = mask_dtype == DType::u8 || mask_dtype == DType::bool_;
  SPARSITY_CHECK(byte_mask || mask_dtype == DType::f32, InvalidArgument,
                 "flat_tile_scores: mask dtype must be f32, u8 or bool, got ", to_string(mask_dtype));
  check_ptr(w, n, "flat_tile_scores", "w");
  check_ptr(mask, n, "flat_tile_scores", "mask");
  // The SIMD variants load 32-bit lanes: element-misaligned buffers take the reference.
  const bool aligned =
      reinterpret_cast<uintptr_t>(w) % 4 == 0 && (byte_mask || reinterpret_cast<uintptr_t>(mask) % 4 == 0);
  const KernelTable& table = aligned ? active_table() : table_for(Isa::scalar);
  return table.flat_scores[byte_mask ? 1 : 0](w, mask, n, bc, norm, zeros, keys, old_bits, pruned_bits);
}

void flat_tile_mask(const uint32_t* keys, size_t n, int64_t bc, KeyThreshold<uint32_t> threshold, size_t tile0,
                    const uint8_t* pruned_bits, uint8_t* bits) {
  check_flat_block(bc, n, "flat_tile_mask");
  const size_t tiles = n / static_cast<size_t>(bc);
  const size_t cut = threshold.cut > tile0 ? std::min(threshold.cut - tile0, tiles) : 0;
  active_table().flat_mask(keys, n, bc, threshold.key, cut, pruned_bits, bits);
}

// ---- sparse linear ---------------------------------------------------------------------------------------

namespace {

bool is_block_size(int64_t b) { return b == 1 || b == 2 || b == 4 || b == 8 || b == 16; }

const char* layout_name(SparseLayout layout) {
  switch (layout) {
    case SparseLayout::nm: return "nm";
    case SparseLayout::bsr: return "bsr";
    case SparseLayout::bitmask: return "bitmask";
    case SparseLayout::csr: return "csr";
  }
  return "?";
}

// The O(1) consistency of a SparseWeight: sizes, parameters, dtypes and pointers (never the contents).
void check_sparse_weight(const SparseWeight& w) {
  const char* name = layout_name(w.layout);
  SPARSITY_CHECK(w.layout == SparseLayout::nm || w.layout == SparseLayout::bsr || w.layout == SparseLayout::bitmask ||
                     w.layout == SparseLayout::csr,
                 InvalidArgument, "sparse_linear: unknown layout ", static_cast<int>(w.layout));
  SPARSITY_CHECK(w.dtype == DType::f32 || w.dtype == DType::f16 || w.dtype == DType::bf16, InvalidArgument,
                 "sparse_linear (", name, "): values must be f32, f16 or bf16, got ", to_string(w.dtype));
  SPARSITY_CHECK(w.rows >= 0 && w.cols >= 0 && w.nnz >= 0, InvalidArgument, "sparse_linear (", name,
                 "): negative size: rows ", w.rows, ", cols ", w.cols, ", nnz ", w.nnz);
  SPARSITY_CHECK(w.cols <= (int64_t{1} << 31) - 1, OutOfRange, "sparse_linear (", name, "): ", w.cols,
                 " columns exceed the 32-bit column range");
  const int64_t rows_cols = w.rows * w.cols;
  switch (w.layout) {
    case SparseLayout::nm:
      SPARSITY_CHECK((w.m == 4 || w.m == 8 || w.m == 16) && w.n >= 1 && w.n < w.m, InvalidArgument,
                     "sparse_linear (nm): n:m = ", w.n, ":", w.m, " (m must be 4, 8 or 16 and 1 <= n < m)");
      SPARSITY_CHECK(w.cols % w.m == 0, InvalidArgument, "sparse_linear (nm): ", w.cols,
                     " columns are not a multiple of m = ", w.m);
      SPARSITY_CHECK(w.nnz == w.rows * (w.cols / w.m) * w.n, InvalidArgument, "sparse_linear (nm): nnz ", w.nnz,
                     " != rows * cols / m * n = ", w.rows * (w.cols / w.m) * w.n);
      break;
    case SparseLayout::bsr:
      SPARSITY_CHECK(is_block_size(w.block_rows) && is_block_size(w.block_cols), InvalidArgument,
                     "sparse_linear (bsr): block ", w.block_rows, "x", w.block_cols,
                     " (each side must be 1, 2, 4, 8 or 16)");
      SPARSITY_CHECK(w.rows % w.block_rows == 0 && w.cols % w.block_cols == 0, InvalidArgument,
                     "sparse_linear (bsr): blocks ", w.block_rows, "x", w.block_cols, " do not tile ", w.rows, "x",
                     w.cols);
      SPARSITY_CHECK(w.nnz % (w.block_rows * w.block_cols) == 0, InvalidArgument, "sparse_linear (bsr): nnz ",
                     w.nnz, " is not a whole number of ", w.block_rows, "x", w.block_cols, " blocks");
      break;
    case SparseLayout::bitmask:
      SPARSITY_CHECK(w.offsets_dtype == DType::i64, InvalidArgument,
                     "sparse_linear (bitmask): row offsets must be i64, got ", to_string(w.offsets_dtype));
      break;
    case SparseLayout::csr: break;
  }
  SPARSITY_CHECK(w.nnz <= rows_cols, InvalidArgument, "sparse_linear (", name, "): nnz ", w.nnz,
                 " exceeds rows * cols = ", rows_cols);
  if (w.layout == SparseLayout::csr || w.layout == SparseLayout::bsr) {
    SPARSITY_CHECK(w.indices_dtype == DType::u8 || w.indices_dtype == DType::i16 || w.indices_dtype == DType::i32,
                   InvalidArgument, "sparse_linear (", name, "): column indices must be u8, i16 or i32, got ",
                   to_string(w.indices_dtype));
    SPARSITY_CHECK(w.offsets_dtype == DType::u8 || w.offsets_dtype == DType::i16 || w.offsets_dtype == DType::i32 ||
                       w.offsets_dtype == DType::i64,
                   InvalidArgument, "sparse_linear (", name, "): row offsets must be u8, i16, i32 or i64, got ",
                   to_string(w.offsets_dtype));
    SPARSITY_CHECK(w.rows == 0 || w.offsets != nullptr, InvalidArgument, "sparse_linear (", name, "): null offsets");
    SPARSITY_CHECK(w.nnz == 0 || w.indices != nullptr, InvalidArgument, "sparse_linear (", name, "): null indices");
  } else {
    SPARSITY_CHECK(rows_cols == 0 || w.bitmask != nullptr, InvalidArgument, "sparse_linear (", name,
                   "): null bitmask");
    SPARSITY_CHECK(w.layout != SparseLayout::bitmask || w.rows == 0 || w.offsets != nullptr, InvalidArgument,
                   "sparse_linear (bitmask): null row offsets");
  }
  SPARSITY_CHECK(w.nnz == 0 || w.values != nullptr, InvalidArgument, "sparse_linear (", name, "): null values");
}

// x (batch x cols, row stride ldx) -> xt (cols x ldxt), lanes from batch on set to 0.
void transpose_input(const float* x, int64_t batch, int64_t ldx, int64_t cols, float* xt, int64_t ldxt) {
  parallel_for(cols, ldxt, 16, [&](int64_t c0, int64_t c1) {
    constexpr int64_t kBlock = 16;
    for (int64_t cb = c0; cb < c1; cb += kBlock) {
      const int64_t ce = std::min(c1, cb + kBlock);
      for (int64_t b = 0; b < batch; ++b) {
        const float* src = x + b * ldx;
        for (int64_t c = cb; c < ce; ++c) xt[c * ldxt + b] = src[c];
      }
      for (int64_t c = cb; c < ce; ++c) std::fill(xt + c * ldxt + batch, xt + (c + 1) * ldxt, 0.0f);
    }
  });
}

float* aligned64(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) / 64 * 64);
}

}  // namespace

void sparse_linear(const SparseWeight& w, const float* x, int64_t batch, int64_t ldx, const float* bias,
                   float* y, int64_t ldy) {
  check_sparse_weight(w);
  SPARSITY_CHECK(batch >= 0, InvalidArgument, "sparse_linear: negative batch ", batch);
  if (batch == 0 || w.rows == 0) return;
  SPARSITY_CHECK(batch == 1 || ldx >= w.cols, InvalidArgument, "sparse_linear: input row stride ", ldx,
                 " is smaller than ", w.cols, " columns");
  SPARSITY_CHECK(batch == 1 || ldy >= w.rows, InvalidArgument, "sparse_linear: output row stride ", ldy,
                 " is smaller than ", w.rows, " rows");
  SPARSITY_CHECK(x != nullptr || w.cols == 0, InvalidArgument, "sparse_linear: null input");
  SPARSITY_CHECK(y != nullptr, InvalidArgument, "sparse_linear: null output");
  const KernelTable& table = active_table();
  const int li = static_cast<int>(w.layout), vi = sparse_value_index(w.dtype);
  const int64_t unit = w.layout == SparseLayout::bsr ? w.block_rows : 1;
  const int64_t units = w.rows / unit;
  // Work of one unit of rows, in multiply-adds, for the decision to use threads at all.
  const int64_t work = std::max<int64_t>(1, w.nnz / units + w.cols / 8) * batch;
  if (batch == 1) {
    const SparseMatvecFn fn = table.sparse_matvec[li][vi];
    parallel_for(units, work, 1, [&](int64_t b, int64_t e) {
      thread_local detail::Scratch<float> scratch;
      fn(w, x, bias, y, b * unit, e * unit, aligned64(scratch.get(sparse_scratch_floats(w, 0) + 16)));
    });
    return;
  }
  const int64_t ldxt = (batch + 15) / 16 * 16;
  thread_local detail::Scratch<float> xt_buffer;
  float* xt = aligned64(xt_buffer.get(static_cast<size_t>(w.cols * ldxt + 16)));
  transpose_input(x, batch, ldx, w.cols, xt, ldxt);
  const SparseMatmulFn fn = table.sparse_matmul[li][vi];
  parallel_for(units, work, 1, [&](int64_t b, int64_t e) {
    thread_local detail::Scratch<float> scratch;
    fn(w, xt, ldxt, batch, bias, y, ldy, b * unit, e * unit, aligned64(scratch.get(sparse_scratch_floats(w, ldxt) + 16)));
  });
}

}  // namespace sparsity::kernels

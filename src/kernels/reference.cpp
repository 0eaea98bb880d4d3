// Scalar reference kernels: plain loops that define the result every SIMD variant must reproduce bit for bit.
#include "kernels/reference.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "sparsity/base/dtype.hpp"

namespace sparsity::kernels {

namespace {

template <class U>
U load_u(const void* p, size_t i) {
  U v;
  std::memcpy(&v, static_cast<const char*>(p) + i * sizeof(U), sizeof(U));
  return v;
}
template <class U>
void store_u(void* p, size_t i, U v) {
  std::memcpy(static_cast<char*>(p) + i * sizeof(U), &v, sizeof(U));
}
// Bits of a float mask element without its sign: non-zero iff the element is non-zero (NaN included).
template <class U>
constexpr U magnitude_bits() {
  return static_cast<U>(~U{0} >> 1);
}

// Element score and tile mean, per weight type: f16/bf16 round both to their own dtype.
struct F32Traits {
  using Acc = float;
  static float norm(const void* w, int64_t i, Norm nm) {
    const float x = load_u<float>(w, static_cast<size_t>(i));
    return nm == Norm::L1 ? std::fabs(x) : x * x;
  }
  static float finish(float sum, int64_t count) { return sum / static_cast<float>(count); }
};
struct F64Traits {
  using Acc = double;
  static double norm(const void* w, int64_t i, Norm nm) {
    const double x = load_u<double>(w, static_cast<size_t>(i));
    return nm == Norm::L1 ? std::fabs(x) : x * x;
  }
  static double finish(double sum, int64_t count) { return sum / static_cast<double>(count); }
};
template <class H>
struct Half16Traits {
  using Acc = float;
  static float round(float v) { return H::to_float(H::from_float(v)); }
  static float norm(const void* w, int64_t i, Norm nm) {
    const float x = H::to_float(load_u<uint16_t>(w, static_cast<size_t>(i)));
    return round(nm == Norm::L1 ? std::fabs(x) : x * x);
  }
  static float finish(float sum, int64_t count) { return round(sum / static_cast<float>(count)); }
};

template <class Tr>
void block_scores_ref(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc, Norm nm,
                      void* scores, int64_t tr0, int64_t tr1, int64_t tc_begin = 0) {
  using Acc = typename Tr::Acc;
  const int64_t tcols = (cols + bc - 1) / bc;
  for (int64_t tr = tr0; tr < tr1; ++tr) {
    const int64_t r0 = tr * br, r1 = std::min(rows, r0 + br);
    for (int64_t tc = tc_begin; tc < tcols; ++tc) {
      const int64_t c0 = tc * bc, c1 = std::min(cols, c0 + bc);
      Acc sum = 0;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) sum += Tr::norm(w, r * ld + c, nm);
      }
      Acc mean = Tr::finish(sum, (r1 - r0) * (c1 - c0));
      // NaN payloads depend on operand order, which compilers may swap: every NaN score is the quiet NaN.
      if (std::isnan(mean)) mean = std::numeric_limits<Acc>::quiet_NaN();
      store_u<Acc>(scores, static_cast<size_t>(tr * tcols + tc), mean);
    }
  }
}

template <class T, class K>
void select_ref(const T* scores, size_t n, size_t k, uint8_t* selected) {
  if (k >= n) {
    std::fill(selected, selected + n, uint8_t{1});
    return;
  }
  std::fill(selected, selected + n, uint8_t{0});
  if (k == 0) return;
  std::vector<K> keys(n);
  for (size_t i = 0; i < n; ++i) {
    if constexpr (sizeof(K) == 4) {
      keys[i] = order_key_f32(load_u<uint32_t>(scores, i));
    } else {
      keys[i] = order_key_f64(load_u<uint64_t>(scores, i));
    }
  }
  std::vector<K> sorted = keys;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<ptrdiff_t>(k - 1), sorted.end());
  const K threshold = sorted[k - 1];
  size_t taken = 0;
  for (size_t i = 0; i < n; ++i) {
    if (keys[i] < threshold) {
      selected[i] = 1;
      ++taken;
    }
  }
  for (size_t i = 0; i < n && taken < k; ++i) {
    if (keys[i] == threshold) {
      selected[i] = 1;
      ++taken;
    }
  }
}

template <class T>
void tile_one(const T* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc, int64_t zeros,
              uint8_t* pruned, int64_t tr, int64_t tc) {
  using K = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  const int64_t vpb = br * bc;
  std::vector<std::pair<K, int64_t>> entries(static_cast<size_t>(vpb));
  for (int64_t p = 0; p < vpb; ++p) {
    const int64_t r = tr * br + p / bc, c = tc * bc + p % bc;
    K key = ~K{0};  // out of range: NaN at its place
    if (r < rows && c < cols) {
      if constexpr (sizeof(T) == 4) {
        key = order_key_f32(load_u<uint32_t>(scores, static_cast<size_t>(r * ld + c)));
      } else {
        key = order_key_f64(load_u<uint64_t>(scores, static_cast<size_t>(r * ld + c)));
      }
      pruned[r * cols + c] = 0;
    }
    entries[static_cast<size_t>(p)] = {key, p};
  }
  const int64_t z = std::min(zeros, vpb);
  if (z <= 0) return;
  std::nth_element(entries.begin(), entries.begin() + (z - 1), entries.end());
  for (int64_t i = 0; i < z; ++i) {
    const int64_t p = entries[static_cast<size_t>(i)].second;
    const int64_t r = tr * br + p / bc, c = tc * bc + p % bc;
    if (r < rows && c < cols) pruned[r * cols + c] = 1;
  }
}

template <class T>
void tile_smallest_ref(const void* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                       int64_t zeros, uint8_t* pruned, int64_t tr0, int64_t tr1) {
  const int64_t tcols = (cols + bc - 1) / bc;
  for (int64_t tr = tr0; tr < tr1; ++tr) {
    for (int64_t tc = 0; tc < tcols; ++tc) {
      tile_one(static_cast<const T*>(scores), rows, cols, ld, br, bc, zeros, pruned, tr, tc);
    }
  }
}

}  // namespace

// All ones when `keep`, else zero: the apply loops select without branches (random masks would
// mispredict every other element).
template <class U>
U keep_bits(bool keep) {
  return static_cast<U>(U{0} - static_cast<U>(keep));
}

template <class U>
void apply_bytes_reference(const void* w, const uint8_t* mask, void* out, size_t n, bool /*stream*/) {
  for (size_t i = 0; i < n; ++i) store_u<U>(out, i, load_u<U>(w, i) & keep_bits<U>(mask[i] != 0));
}
template <class U>
void apply_bits_reference(const void* w, const uint8_t* bits, void* out, size_t n, bool /*stream*/) {
  for (size_t i = 0; i < n; ++i) {
    store_u<U>(out, i, load_u<U>(w, i) & keep_bits<U>((bits[i / 8] >> (i % 8)) & 1u));
  }
}
template <class U>
void apply_float_reference(const void* w, const void* mask, void* out, size_t n, bool /*stream*/) {
  for (size_t i = 0; i < n; ++i) {
    store_u<U>(out, i, load_u<U>(w, i) & keep_bits<U>((load_u<U>(mask, i) & magnitude_bits<U>()) != 0));
  }
}

void block_scores_f32_reference(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                                Norm norm, void* scores, int64_t tr0, int64_t tr1) {
  block_scores_ref<F32Traits>(w, rows, cols, ld, br, bc, norm, scores, tr0, tr1);
}
void block_scores_f64_reference(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                                Norm norm, void* scores, int64_t tr0, int64_t tr1) {
  block_scores_ref<F64Traits>(w, rows, cols, ld, br, bc, norm, scores, tr0, tr1);
}
void block_scores_f16_reference(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                                Norm norm, void* scores, int64_t tr0, int64_t tr1) {
  block_scores_ref<Half16Traits<Half>>(w, rows, cols, ld, br, bc, norm, scores, tr0, tr1);
}
void block_scores_bf16_reference(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                                 int64_t bc, Norm norm, void* scores, int64_t tr0, int64_t tr1) {
  block_scores_ref<Half16Traits<BFloat16>>(w, rows, cols, ld, br, bc, norm, scores, tr0, tr1);
}

void block_scores_tail_reference(int float_index, const void* w, int64_t rows, int64_t cols, int64_t ld,
                                 int64_t br, int64_t bc, Norm norm, void* scores, int64_t tr, int64_t tc_begin) {
  switch (float_index) {
    case 0: block_scores_ref<F32Traits>(w, rows, cols, ld, br, bc, norm, scores, tr, tr + 1, tc_begin); break;
    case 1: block_scores_ref<F64Traits>(w, rows, cols, ld, br, bc, norm, scores, tr, tr + 1, tc_begin); break;
    case 2:
      block_scores_ref<Half16Traits<Half>>(w, rows, cols, ld, br, bc, norm, scores, tr, tr + 1, tc_begin);
      break;
    default:
      block_scores_ref<Half16Traits<BFloat16>>(w, rows, cols, ld, br, bc, norm, scores, tr, tr + 1, tc_begin);
      break;
  }
}

void select_f32_reference(const float* scores, size_t n, size_t k, uint8_t* selected) {
  select_ref<float, uint32_t>(scores, n, k, selected);
}
void select_f64_reference(const double* scores, size_t n, size_t k, uint8_t* selected) {
  select_ref<double, uint64_t>(scores, n, k, selected);
}

void tile_smallest_f32_reference(const void* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                                 int64_t bc, int64_t zeros, uint8_t* pruned, int64_t tr0, int64_t tr1) {
  tile_smallest_ref<float>(scores, rows, cols, ld, br, bc, zeros, pruned, tr0, tr1);
}
void tile_smallest_f64_reference(const void* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                                 int64_t bc, int64_t zeros, uint8_t* pruned, int64_t tr0, int64_t tr1) {
  tile_smallest_ref<double>(scores, rows, cols, ld, br, bc, zeros, pruned, tr0, tr1);
}
void tile_smallest_one_f32(const float* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc,
                           int64_t zeros, uint8_t* pruned, int64_t tr, int64_t tc) {
  tile_one(scores, rows, cols, ld, br, bc, zeros, pruned, tr, tc);
}
void tile_smallest_one_f64(const double* scores, int64_t rows, int64_t cols, int64_t ld, int64_t br,
                           int64_t bc, int64_t zeros, uint8_t* pruned, int64_t tr, int64_t tc) {
  tile_one(scores, rows, cols, ld, br, bc, zeros, pruned, tr, tc);
}

int64_t count_bytes_reference(const uint8_t* mask, size_t n) {
  int64_t c = 0;
  for (size_t i = 0; i < n; ++i) c += mask[i] != 0;
  return c;
}
int64_t count_bits_reference(const uint8_t* bits, size_t n) {
  int64_t c = 0;
  for (size_t i = 0; i < n; ++i) c += (bits[i / 8] >> (i % 8)) & 1u;
  return c;
}
void bytes_to_bits_reference(const uint8_t* bytes, size_t n, uint8_t* bits) {
  std::fill(bits, bits + (n + 7) / 8, uint8_t{0});
  for (size_t i = 0; i < n; ++i) {
    if (bytes[i]) bits[i / 8] = static_cast<uint8_t>(bits[i / 8] | (1u << (i % 8)));
  }
}
template <class U>
void bits_to_mask_reference(const uint8_t* bits, size_t n, uint64_t one, void* out) {
  for (size_t i = 0; i < n; ++i) {
    store_u<U>(out, i, (bits[i / 8] >> (i % 8)) & 1u ? static_cast<U>(one) : U{0});
  }
}
void bits_to_bytes_reference(const uint8_t* bits, size_t n, uint8_t* bytes) {
  bits_to_mask_reference<uint8_t>(bits, n, 1, bytes);
}
template <class U>
void bytes_to_mask_reference(const uint8_t* bytes, size_t n, uint64_t one, void* out) {
  for (size_t i = 0; i < n; ++i) store_u<U>(out, i, bytes[i] ? static_cast<U>(one) : U{0});
}
template <class U>
void mask_to_bytes_reference(const void* mask, size_t n, uint64_t value_bits, uint8_t* bytes) {
  for (size_t i = 0; i < n; ++i) bytes[i] = (load_u<U>(mask, i) & static_cast<U>(value_bits)) != 0;
}

template <bool ByteMask>
void flat_scores_reference(const void* w, const void* mask, size_t n, int64_t bc, Norm norm, int64_t zeros,
                           uint32_t* keys, uint8_t* old_bits, uint8_t* pruned_bits) {
  const size_t b = static_cast<size_t>(bc);
  const bool nm = zeros < bc;
  std::fill(old_bits, old_bits + (n + 7) / 8, uint8_t{0});
  if (nm) std::fill(pruned_bits, pruned_bits + (n + 7) / 8, uint8_t{0});
  std::vector<float> e(b);
  std::vector<uint32_t> ek(b);
  for (size_t t = 0; t < n / b; ++t) {
    float sum = 0;
    for (size_t j = 0; j < b; ++j) {
      const size_t i = t * b + j;
      const bool keep =
          ByteMask ? load_u<uint8_t>(mask, i) != 0 : (load_u<uint32_t>(mask, i) & 0x7fffffffu) != 0;
      const float x = keep ? load_u<float>(w, i) : 0.0f;
      e[j] = norm == Norm::L1 ? std::fabs(x) : x * x;
      sum += e[j];
      if (keep) old_bits[i / 8] = static_cast<uint8_t>(old_bits[i / 8] | (1u << (i % 8)));
    }
    float mean = sum / static_cast<float>(b);
    if (std::isnan(mean)) mean = std::numeric_limits<float>::quiet_NaN();
    uint32_t mb;
    std::memcpy(&mb, &mean, 4);
    keys[t] = order_key_f32(mb);
    if (!nm) continue;
    for (size_t j = 0; j < b; ++j) {
      uint32_t eb;
      std::memcpy(&eb, &e[j], 4);
      ek[j] = order_key_f32(eb);
    }
    for (size_t p = 0; p < b; ++p) {
      int64_t rank = 0;  // place of p in (score, position) order
      for (size_t q = 0; q < b; ++q) rank += q < p ? ek[q] <= ek[p] : (q > p && ek[q] < ek[p]);
      const size_t i = t * b + p;
      if (rank < zeros) pruned_bits[i / 8] = static_cast<uint8_t>(pruned_bits[i / 8] | (1u << (i % 8)));
    }
  }
}
template void flat_scores_reference<false>(const void*, const void*, size_t, int64_t, Norm, int64_t, uint32_t*,
                                           uint8_t*, uint8_t*);
template void flat_scores_reference<true>(const void*, const void*, size_t, int64_t, Norm, int64_t, uint32_t*,
                                          uint8_t*, uint8_t*);

void flat_mask_reference(const uint32_t* keys, size_t n, int64_t bc, uint32_t threshold, size_t cut,
                         const uint8_t* pruned_bits, uint8_t* bits) {
  std::fill(bits, bits + (n + 7) / 8, uint8_t{0});
  for (size_t i = 0; i < n; ++i) {
    const size_t t = i / static_cast<size_t>(bc);
    const bool selected = keys[t] < threshold || (keys[t] == threshold && t < cut);
    const bool pruned = pruned_bits == nullptr || ((pruned_bits[i / 8] >> (i % 8)) & 1u);
    if (!(selected && pruned)) bits[i / 8] = static_cast<uint8_t>(bits[i / 8] | (1u << (i % 8)));
  }
}

#define SPARSITY_INSTANTIATE_U(U)                                                         \
  template void apply_bytes_reference<U>(const void*, const uint8_t*, void*, size_t, bool); \
  template void apply_bits_reference<U>(const void*, const uint8_t*, void*, size_t, bool);  \
  template void apply_float_reference<U>(const void*, const void*, void*, size_t, bool);    \
  template void bits_to_mask_reference<U>(const uint8_t*, size_t, uint64_t, void*);         \
  template void bytes_to_mask_reference<U>(const uint8_t*, size_t, uint64_t, void*);        \
  template void mask_to_bytes_reference<U>(const void*, size_t, uint64_t, uint8_t*);
SPARSITY_INSTANTIATE_U(uint8_t)
SPARSITY_INSTANTIATE_U(uint16_t)
SPARSITY_INSTANTIATE_U(uint32_t)
SPARSITY_INSTANTIATE_U(uint64_t)
#undef SPARSITY_INSTANTIATE_U

// ---- sparse linear --------------------------------------------------------------------------------------

namespace {

template <class V>
float sparse_value(const void* values, int64_t i) {
  if constexpr (std::is_same_v<V, float>) {
    return load_u<float>(values, static_cast<size_t>(i));
  } else {
    return V::to_float(load_u<uint16_t>(values, static_cast<size_t>(i)));
  }
}

// Element of an index or offset part as int64 (u8, i16, i32 or i64).
int64_t index_value(const void* p, DType dtype, int64_t i) {
  const size_t k = static_cast<size_t>(i);
  switch (dtype) {
    case DType::u8: return load_u<uint8_t>(p, k);
    case DType::i16: return load_u<int16_t>(p, k);
    case DType::i32: return load_u<int32_t>(p, k);
    default: return load_u<int64_t>(p, k);
  }
}

// Offsets are clamped to [lo, hi]; indices are read as 32-bit unsigned (i16 sign-extended first) and
// clamped to `last`: the kernels never leave their parts, whatever the contents.
int64_t clamp_offset(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }
int64_t clamp_index(int64_t v, int64_t last) {
  const uint32_t u = static_cast<uint32_t>(static_cast<int32_t>(v));
  return u > static_cast<uint64_t>(last) ? last : static_cast<int64_t>(u);
}

// A product rounded to f32 on its own: never fused with the following addition.
float mul_rounded(float a, float b) {
  float p = a * b;
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+x"(p));
#endif
  return p;
}

// Calls f(t, value_index, column) for the stored elements of row i in storage order (t = 0, 1, ...).
template <class F>
void for_each_term(const SparseWeight& w, int64_t i, F&& f) {
  const int64_t row_bytes = (w.cols + 7) / 8;
  switch (w.layout) {
    case SparseLayout::nm:
    case SparseLayout::bitmask: {
      int64_t start, avail;
      if (w.layout == SparseLayout::nm) {
        avail = w.cols / w.m * w.n;
        start = i * avail;
      } else {
        start = clamp_offset(index_value(w.offsets, w.offsets_dtype, i), 0, w.nnz);
        avail = w.nnz - start;
      }
      const uint8_t* bits = w.bitmask + i * row_bytes;
      int64_t t = 0;
      for (int64_t c = 0; c < w.cols && t < avail; ++c) {
        if ((bits[c / 8] >> (c % 8)) & 1u) {
          f(t, start + t, c);
          ++t;
        }
      }
      break;
    }
    case SparseLayout::csr: {
      const int64_t start = clamp_offset(index_value(w.offsets, w.offsets_dtype, i), 0, w.nnz);
      const int64_t end = clamp_offset(index_value(w.offsets, w.offsets_dtype, i + 1), start, w.nnz);
      for (int64_t k = start; k < end; ++k) {
        f(k - start, k, clamp_index(index_value(w.indices, w.indices_dtype, k), w.cols - 1));
      }
      break;
    }
    case SparseLayout::bsr: {
      const int64_t r = w.block_rows, c = w.block_cols, blocks = w.nnz / (r * c);
      const int64_t br = i / r, ii = i % r;
      const int64_t start = clamp_offset(index_value(w.offsets, w.offsets_dtype, br), 0, blocks);
      const int64_t end = clamp_offset(index_value(w.offsets, w.offsets_dtype, br + 1), start, blocks);
      for (int64_t k = start; k < end; ++k) {
        const int64_t bcol = clamp_index(index_value(w.indices, w.indices_dtype, k), w.cols / c - 1);
        for (int64_t e = 0; e < c; ++e) f((k - start) * c + e, (k * r + ii) * c + e, bcol * c + e);
      }
      break;
    }
  }
}

}  // namespace

template <class V>
void sparse_matvec_reference(const SparseWeight& w, const float* x, const float* bias, float* y, int64_t row0,
                             int64_t row1, float*) {
  const int64_t parts = sparse_partials(w);
  // bitmask rows sum by column (partial col % 32); nm, csr and bsr by position in the row.
  const bool by_column = w.layout == SparseLayout::bitmask;
  for (int64_t i = row0; i < row1; ++i) {
    float p[32] = {};
    for_each_term(w, i, [&](int64_t t, int64_t vi, int64_t col) {
      const int64_t k = (by_column ? col : t) % parts;
      p[k] = p[k] + mul_rounded(sparse_value<V>(w.values, vi), x[col]);
    });
    for (int64_t h = parts / 2; h >= 1; h /= 2) {
      for (int64_t j = 0; j < h; ++j) p[j] = p[j] + p[j + h];
    }
    y[i] = bias != nullptr ? p[0] + bias[i] : p[0];
  }
}

template <class V>
void sparse_matmul_reference(const SparseWeight& w, const float* xt, int64_t ldxt, int64_t batch,
                             const float* bias, float* y, int64_t ldy, int64_t row0, int64_t row1, float*) {
  std::vector<std::pair<float, int64_t>> terms;
  for (int64_t i = row0; i < row1; ++i) {
    terms.clear();
    for_each_term(w, i, [&](int64_t, int64_t vi, int64_t col) { terms.emplace_back(sparse_value<V>(w.values, vi), col); });
    for (int64_t b = 0; b < batch; ++b) {
      float s = 0.0f;
      for (const auto& [v, col] : terms) s = s + mul_rounded(v, xt[col * ldxt + b]);
      y[b * ldy + i] = bias != nullptr ? s + bias[i] : s;
    }
  }
}

#define SPARSITY_SPARSE_REFERENCE(V)                                                                          \
  template void sparse_matvec_reference<V>(const SparseWeight&, const float*, const float*, float*, int64_t, \
                                           int64_t, float*);                                                  \
  template void sparse_matmul_reference<V>(const SparseWeight&, const float*, int64_t, int64_t, const float*, \
                                           float*, int64_t, int64_t, int64_t, float*);
SPARSITY_SPARSE_REFERENCE(float)
SPARSITY_SPARSE_REFERENCE(Half)
SPARSITY_SPARSE_REFERENCE(BFloat16)
#undef SPARSITY_SPARSE_REFERENCE

void fill_reference(KernelTable& t) {
  t.isa = Isa::scalar;
  t.apply_bytes[kW16] = apply_bytes_reference<uint16_t>;
  t.apply_bytes[kW32] = apply_bytes_reference<uint32_t>;
  t.apply_bytes[kW64] = apply_bytes_reference<uint64_t>;
  t.apply_bits[kW16] = apply_bits_reference<uint16_t>;
  t.apply_bits[kW32] = apply_bits_reference<uint32_t>;
  t.apply_bits[kW64] = apply_bits_reference<uint64_t>;
  t.apply_float[kW16] = apply_float_reference<uint16_t>;
  t.apply_float[kW32] = apply_float_reference<uint32_t>;
  t.apply_float[kW64] = apply_float_reference<uint64_t>;
  t.block_scores[0] = block_scores_f32_reference;
  t.block_scores[1] = block_scores_f64_reference;
  t.block_scores[2] = block_scores_f16_reference;
  t.block_scores[3] = block_scores_bf16_reference;
  t.select_f32 = select_f32_reference;
  t.select_f64 = select_f64_reference;
  t.tile_smallest[0] = tile_smallest_f32_reference;
  t.tile_smallest[1] = tile_smallest_f64_reference;
  t.count_bytes = count_bytes_reference;
  t.count_bits = count_bits_reference;
  t.bytes_to_bits = bytes_to_bits_reference;
  t.bits_to_bytes = bits_to_bytes_reference;
  t.bits_to_mask[0] = bits_to_mask_reference<uint8_t>;
  t.bits_to_mask[1] = bits_to_mask_reference<uint16_t>;
  t.bits_to_mask[2] = bits_to_mask_reference<uint32_t>;
  t.bits_to_mask[3] = bits_to_mask_reference<uint64_t>;
  t.flat_scores[0] = flat_scores_reference<false>;
  t.flat_scores[1] = flat_scores_reference<true>;
  t.flat_mask = flat_mask_reference;
  t.bytes_to_mask[0] = bytes_to_mask_reference<uint8_t>;
  t.bytes_to_mask[1] = bytes_to_mask_reference<uint16_t>;
  t.bytes_to_mask[2] = bytes_to_mask_reference<uint32_t>;
  t.bytes_to_mask[3] = bytes_to_mask_reference<uint64_t>;
  t.mask_to_bytes[0] = mask_to_bytes_reference<uint8_t>;
  t.mask_to_bytes[1] = mask_to_bytes_reference<uint16_t>;
  t.mask_to_bytes[2] = mask_to_bytes_reference<uint32_t>;
  t.mask_to_bytes[3] = mask_to_bytes_reference<uint64_t>;
  for (int layout = 0; layout < 4; ++layout) {
    t.sparse_matvec[layout][0] = sparse_matvec_reference<float>;
    t.sparse_matvec[layout][1] = sparse_matvec_reference<Half>;
    t.sparse_matvec[layout][2] = sparse_matvec_reference<BFloat16>;
    t.sparse_matmul[layout][0] = sparse_matmul_reference<float>;
    t.sparse_matmul[layout][1] = sparse_matmul_reference<Half>;
    t.sparse_matmul[layout][2] = sparse_matmul_reference<BFloat16>;
  }
}

}  // namespace sparsity::kernels

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

// A mask element that is exactly 0 or 1 (+0.0 or 1.0 for an f32 mask).
template <bool ByteMask>
bool canonical_mask_element(const void* mask, size_t i) {
  if constexpr (ByteMask) {
    return load_u<uint8_t>(mask, i) <= 1;
  } else {
    const uint32_t m = load_u<uint32_t>(mask, i);
    return m == 0 || m == 0x3f800000u;
  }
}

template <bool ByteMask>
bool flat_scores_reference(const void* w, const void* mask, size_t n, int64_t bc, Norm norm, int64_t zeros,
                           uint32_t* keys, uint8_t* old_bits, uint8_t* pruned_bits) {
  bool canonical = true;
  for (size_t i = 0; i < n; ++i) canonical = canonical && canonical_mask_element<ByteMask>(mask, i);
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
  return canonical;
}
template bool flat_scores_reference<false>(const void*, const void*, size_t, int64_t, Norm, int64_t, uint32_t*,
                                           uint8_t*, uint8_t*);
template bool flat_scores_reference<true>(const void*, const void*, size_t, int64_t, Norm, int64_t, uint32_t*,
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

size_t flat_bracket_reference(const uint32_t* keys, size_t n, uint32_t lo, uint32_t hi, const uint32_t* heavy,
                              uint32_t* out, size_t cap, size_t* below, size_t* heavy_count) {
  size_t count = 0, under = 0, equal = 0;
  for (size_t i = 0; i < n; ++i) {
    under += keys[i] < lo;
    if (keys[i] >= lo && keys[i] <= hi) {
      if (heavy != nullptr && keys[i] == *heavy) {
        ++equal;
        continue;
      }
      if (count == cap + 1) return count;
      out[count++] = keys[i];
    }
  }
  *below = under;
  if (heavy_count != nullptr) *heavy_count = equal;
  return count;
}

size_t flat_split_reference(const uint32_t* keys, size_t n, uint32_t lo, uint32_t hi, const uint32_t* heavy,
                            uint64_t* below_bits, uint64_t* heavy_bits, uint32_t* window_keys, uint32_t* window_index,
                            uint32_t index0, size_t cap) {
  std::fill(below_bits, below_bits + (n + 63) / 64, uint64_t{0});
  if (heavy_bits != nullptr) std::fill(heavy_bits, heavy_bits + (n + 63) / 64, uint64_t{0});
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t k = keys[i];
    if (k < lo) {
      below_bits[i / 64] |= uint64_t{1} << (i % 64);
    } else if (k <= hi) {
      if (heavy != nullptr && k == *heavy) {
        heavy_bits[i / 64] |= uint64_t{1} << (i % 64);
        continue;
      }
      if (count == cap + 1) return count;
      window_keys[count] = k;
      window_index[count] = static_cast<uint32_t>(index0 + i);
      ++count;
    }
  }
  return count;
}

template <bool ByteMask>
bool norm_prologue_reference(const void* w, const void* mask, size_t n, void* masked, uint8_t* old_bits) {
  std::fill(old_bits, old_bits + (n + 7) / 8, uint8_t{0});
  bool canonical = true;
  for (size_t i = 0; i < n; ++i) {
    canonical = canonical && canonical_mask_element<ByteMask>(mask, i);
    const bool keep =
        ByteMask ? load_u<uint8_t>(mask, i) != 0 : (load_u<uint32_t>(mask, i) & 0x7fffffffu) != 0;
    if (keep) old_bits[i / 8] = static_cast<uint8_t>(old_bits[i / 8] | (1u << (i % 8)));
    if (masked != nullptr) store_u<uint32_t>(masked, i, keep ? load_u<uint32_t>(w, i) : 0u);
  }
  return canonical;
}
template bool norm_prologue_reference<false>(const void*, const void*, size_t, void*, uint8_t*);
template bool norm_prologue_reference<true>(const void*, const void*, size_t, void*, uint8_t*);

void norm_bits_reference(const uint8_t* selected, int64_t tiles_c, const uint8_t* pruned_bits, int64_t rows,
                         int64_t cols, int64_t br, int64_t bc, uint8_t* bits) {
  const size_t n = static_cast<size_t>(rows * cols);
  std::fill(bits, bits + (n + 7) / 8, uint8_t{0});
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r * cols + c);
      const bool in_selected_tile = selected[(r / br) * tiles_c + c / bc] != 0;
      const bool pruned = pruned_bits == nullptr || ((pruned_bits[i / 8] >> (i % 8)) & 1u);
      if (!(in_selected_tile && pruned)) bits[i / 8] = static_cast<uint8_t>(bits[i / 8] | (1u << (i % 8)));
    }
  }
}

// ---- norm_mask_reference: the whole WeightNorm mask computation, plainly ----------------------------

namespace {

// Element scores and tile means in the scores' type S (double for f64 weights, else float rounded to the
// weight's dtype for f16/bf16).
template <class S>
struct NormOracle {
  const NormMaskArgs& a;
  DType dtype;

  S round(S v) const {
    if constexpr (std::is_same_v<S, float>) {
      if (dtype == DType::f16) return Half::to_float(Half::from_float(v));
      if (dtype == DType::bf16) return BFloat16::to_float(BFloat16::from_float(v));
    }
    return v;
  }
  S weight(size_t i) const {
    switch (dtype) {
      case DType::f32: return static_cast<S>(load_u<float>(a.weight, i));
      case DType::f64: return static_cast<S>(load_u<double>(a.weight, i));
      case DType::f16: return static_cast<S>(Half::to_float(load_u<uint16_t>(a.weight, i)));
      default: return static_cast<S>(BFloat16::to_float(load_u<uint16_t>(a.weight, i)));
    }
  }
  S score(S x) const {
    if (a.score != nullptr) return round(static_cast<S>((*a.score)(static_cast<double>(x))));
    return round(a.norm == Norm::L1 ? std::fabs(x) : x * x);
  }
  static uint64_t key(S v) {
    if constexpr (std::is_same_v<S, float>) {
      return order_key_f32(load_u<uint32_t>(&v, 0));
    } else {
      return order_key_f64(load_u<uint64_t>(&v, 0));
    }
  }
};

bool mask_element_kept(DType dtype, const void* mask, size_t i) {
  switch (size_of(dtype)) {
    case 1: return load_u<uint8_t>(mask, i) != 0;
    case 2: return (load_u<uint16_t>(mask, i) & (is_floating(dtype) ? 0x7fffu : 0xffffu)) != 0;
    case 4: return (load_u<uint32_t>(mask, i) & (is_floating(dtype) ? 0x7fffffffu : 0xffffffffu)) != 0;
    default: return (load_u<uint64_t>(mask, i) & (is_floating(dtype) ? ~0ull >> 1 : ~0ull)) != 0;
  }
}

void write_mask_element(DType dtype, void* mask, size_t i, bool keep) {
  uint64_t one = 1;
  if (dtype == DType::f32) one = 0x3f800000u;
  if (dtype == DType::f64) one = 0x3ff0000000000000ull;
  if (dtype == DType::f16) one = 0x3c00u;
  if (dtype == DType::bf16) one = 0x3f80u;
  const uint64_t v = keep ? one : 0;
  switch (size_of(dtype)) {
    case 1: store_u<uint8_t>(mask, i, static_cast<uint8_t>(v)); break;
    case 2: store_u<uint16_t>(mask, i, static_cast<uint16_t>(v)); break;
    case 4: store_u<uint32_t>(mask, i, static_cast<uint32_t>(v)); break;
    default: store_u<uint64_t>(mask, i, v); break;
  }
}

template <class S>
void norm_mask_oracle(const NormMaskArgs& a) {
  const NormOracle<S> o{a, a.weight_dtype};
  const int64_t rows = a.rows, cols = a.cols;
  const size_t per = static_cast<size_t>(rows * cols), n = per * static_cast<size_t>(a.batch);
  // Scores of the masked weights.
  std::vector<S> s(n);
  for (size_t i = 0; i < n; ++i) {
    const bool keep = !a.mask_weights || mask_element_kept(a.mask_dtype, a.mask, i);
    s[i] = o.score(keep ? o.weight(i) : S{0});
  }
  // Tiles of the clamped block, matrix by matrix, row-major.
  const int64_t br = std::min(a.block_rows, rows), bc = std::min(a.block_cols, cols);
  const int64_t vpb = br * bc, zeros = std::min(a.zeros_per_block, vpb);
  const int64_t tr = (rows + br - 1) / br, tc = (cols + bc - 1) / bc;
  const size_t tiles = static_cast<size_t>(a.batch * tr * tc);
  auto element = [&](size_t tile, int64_t p, size_t* index) {
    const int64_t b = static_cast<int64_t>(tile) / (tr * tc), t = static_cast<int64_t>(tile) % (tr * tc);
    const int64_t r = (t / tc) * br + p / bc, c = (t % tc) * bc + p % bc;
    *index = static_cast<size_t>(b) * per + static_cast<size_t>(r * cols + c);
    return r < rows && c < cols;
  };
  std::vector<std::pair<uint64_t, size_t>> order(tiles);
  for (size_t t = 0; t < tiles; ++t) {
    S sum = 0;
    int64_t count = 0;
    for (int64_t p = 0; p < vpb; ++p) {
      size_t i;
      if (element(t, p, &i)) {
        sum += s[i];
        ++count;
      }
    }
    order[t] = {NormOracle<S>::key(o.round(sum / static_cast<S>(count))), t};
  }
  size_t k;
  if (a.tiles_to_prune >= 0) {
    k = std::min(static_cast<size_t>(a.tiles_to_prune), tiles);
  } else if (a.sparsity_level >= 1) {
    k = tiles;
  } else {
    const double raw = std::nearbyint(a.sparsity_level * static_cast<double>(tiles));  // half to even
    k = static_cast<size_t>(std::max(0.0, std::min(static_cast<double>(tiles) - 1.0, raw)));
  }
  std::sort(order.begin(), order.end());
  std::vector<uint8_t> pruned(n, 0);
  for (size_t j = 0; j < k; ++j) {
    const size_t t = order[j].second;
    // Positions outside the matrix rank as NaN at their place.
    const uint64_t missing = NormOracle<S>::key(std::numeric_limits<S>::quiet_NaN());
    std::vector<std::pair<uint64_t, int64_t>> in_tile;
    for (int64_t p = 0; p < vpb; ++p) {
      size_t i;
      in_tile.push_back({element(t, p, &i) ? NormOracle<S>::key(s[i]) : missing, p});
    }
    std::sort(in_tile.begin(), in_tile.end());
    for (int64_t q = 0; q < zeros; ++q) {
      size_t i;
      if (element(t, in_tile[static_cast<size_t>(q)].second, &i)) pruned[i] = 1;
    }
  }
  for (size_t i = 0; i < n; ++i) write_mask_element(a.mask_dtype, a.mask, i, !pruned[i]);
}

}  // namespace

void norm_mask_reference(const NormMaskArgs& a) {
  const size_t n = static_cast<size_t>(a.batch * a.rows * a.cols);
  const int64_t vpb = a.block_rows * a.block_cols;
  const int constant = norm_mask_constant(a.sparsity_level, a.tiles_to_prune, a.zeros_per_block, vpb);
  const bool fill = constant >= 0, keep = constant == 1;
  if (fill) {
    for (size_t i = 0; i < n; ++i) write_mask_element(a.mask_dtype, a.mask, i, keep);
    return;
  }
  if (n == 0) return;
  if (a.weight_dtype == DType::f64) {
    norm_mask_oracle<double>(a);
  } else {
    norm_mask_oracle<float>(a);
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
  t.flat_bracket = flat_bracket_reference;
  t.flat_split = flat_split_reference;
  t.norm_prologue[0] = norm_prologue_reference<false>;
  t.norm_prologue[1] = norm_prologue_reference<true>;
  t.norm_bits = norm_bits_reference;
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

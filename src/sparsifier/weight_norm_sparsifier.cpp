// WeightNormSparsifier::update_mask: block-mean-norm selection and N-of-M pruning over the mask kernels.
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>

#include "kernels/fused.hpp"
#include "sparsity/sparsifier/fake_sparsity.hpp"
#include "base/scratch.hpp"

#ifdef SPARSITY_HAVE_OPENMP
#include <omp.h>
#endif

namespace sparsity {
namespace {

constexpr int64_t kMaxBlockSide = int64_t{1} << 31;

struct Settings {
  double sparsity_level;
  int64_t br, bc;
  int64_t zeros;
};

Json defaults_of(const WeightNormOptions& o) {
  SPARSITY_CHECK(o.sparse_block_shape_.first > 0 && o.sparse_block_shape_.second > 0, InvalidArgument,
                 "WeightNormSparsifier: sparse_block_shape must be positive, got [", o.sparse_block_shape_.first,
                 ", ", o.sparse_block_shape_.second, "]");
  SPARSITY_CHECK(!std::isnan(o.sparsity_level_), InvalidArgument, "WeightNormSparsifier: sparsity_level is NaN");
  Json d = Json::object();
  d["sparsity_level"] = o.sparsity_level_;
  d["sparse_block_shape"] = Json::array({o.sparse_block_shape_.first, o.sparse_block_shape_.second});
  d["zeros_per_block"] = o.zeros_per_block_ ? Json(*o.zeros_per_block_) : Json(nullptr);
  return d;
}

// Group keys over the options (an unset zeros_per_block is the effective block size).
Settings settings_of(const Json& config, const WeightNormOptions& o, const std::string& fqn) {
  Settings s{};
  s.sparsity_level = o.sparsity_level_;
  if (auto it = config.find("sparsity_level"); it != config.end()) {
    SPARSITY_CHECK(it->is_number(), InvalidArgument, "WeightNormSparsifier: 'sparsity_level' of '", fqn,
                   "' must be a number, got ", it->dump());
    s.sparsity_level = it->get<double>();
  }
  SPARSITY_CHECK(!std::isnan(s.sparsity_level), InvalidArgument, "WeightNormSparsifier: 'sparsity_level' of '",
                 fqn, "' is NaN");
  s.br = o.sparse_block_shape_.first;
  s.bc = o.sparse_block_shape_.second;
  if (auto it = config.find("sparse_block_shape"); it != config.end()) {
    const bool ok = it->is_array() && it->size() == 2 && (*it)[0].is_number_integer() &&
                    (*it)[1].is_number_integer() && (*it)[0].get<int64_t>() > 0 && (*it)[1].get<int64_t>() > 0;
    SPARSITY_CHECK(ok, InvalidArgument, "WeightNormSparsifier: 'sparse_block_shape' of '", fqn,
                   "' must be [rows, cols] of positive integers, got ", it->dump());
    s.br = (*it)[0].get<int64_t>();
    s.bc = (*it)[1].get<int64_t>();
  }
  SPARSITY_CHECK(s.br <= kMaxBlockSide && s.bc <= kMaxBlockSide, InvalidArgument,
                 "WeightNormSparsifier: 'sparse_block_shape' of '", fqn, "' is too large: [", s.br, ", ", s.bc, "]");
  const int64_t vpb = s.br * s.bc;
  std::optional<int64_t> z = o.zeros_per_block_;
  if (auto it = config.find("zeros_per_block"); it != config.end()) {
    if (it->is_null()) {
      z.reset();
    } else {
      SPARSITY_CHECK(it->is_number_integer(), InvalidArgument, "WeightNormSparsifier: 'zeros_per_block' of '",
                     fqn, "' must be an integer or null, got ", it->dump());
      z = it->get<int64_t>();
    }
  }
  s.zeros = z ? *z : vpb;
  SPARSITY_CHECK(s.zeros <= vpb, InvalidArgument, "WeightNormSparsifier: 'zeros_per_block' of '", fqn, "' (",
                 s.zeros, ") cannot be more than the total number of elements in that block (", vpb, ")");
  SPARSITY_CHECK(s.zeros >= 0, InvalidArgument, "WeightNormSparsifier: 'zeros_per_block' of '", fqn,
                 "' should be positive, got ", s.zeros);
  return s;
}

using ::sparsity::detail::Scratch;

struct Buffers {
  Scratch<uint8_t> bytes;
  Scratch<double> scores;
};

Buffers& thread_buffers(int slot) {
  // slot 0: per-chunk working memory of the thread; slot 1: whole-tensor arrays of the caller.
  thread_local Buffers buffers[2];
  return buffers[slot];
}

inline float round_to(DType dtype, float v) {
  if (dtype == DType::f16) return static_cast<float>(Half(v));
  if (dtype == DType::bf16) return static_cast<float>(BFloat16(v));
  return v;
}

// Element scores of a custom norm on the masked chunk (scalar path), in the scores' type.
template <class S>
void custom_element_scores(DType dtype, const void* w, size_t n, const std::function<double(double)>& fn,
                           S* out) {
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Half> ||
                  std::is_same_v<T, BFloat16>) {
      const T* p = static_cast<const T*>(w);
      for (size_t i = 0; i < n; ++i) {
        const double v = fn(to_double(p[i]));
        if constexpr (std::is_same_v<S, double>) {
          out[i] = v;
        } else {
          out[i] = round_to(dtype, static_cast<float>(v));
        }
      }
    }
  });
}

// Tile means of element scores (rows x cols, row-major), edge tiles over their in-range elements;
// summed in S row-major inside the tile, as the block_scores kernel.
template <class S>
void tile_means(DType dtype, const S* s, int64_t rows, int64_t cols, int64_t br, int64_t bc, S* out) {
  const int64_t tr = (rows + br - 1) / br, tc = (cols + bc - 1) / bc;
  for (int64_t i = 0; i < tr; ++i) {
    for (int64_t j = 0; j < tc; ++j) {
      const int64_t r1 = std::min(rows, (i + 1) * br), c1 = std::min(cols, (j + 1) * bc);
      S sum = 0;
      for (int64_t r = i * br; r < r1; ++r) {
        for (int64_t c = j * bc; c < c1; ++c) sum += s[r * cols + c];
      }
      S mean = sum / static_cast<S>((r1 - i * br) * (c1 - j * bc));
      if constexpr (!std::is_same_v<S, double>) mean = round_to(dtype, mean);
      out[i * tc + j] = mean;
    }
  }
}

// out[c] = sel[c / bc] for c < cols (one row of per-element "tile selected" flags).
void expand_tiles(const uint8_t* sel, int64_t tiles_c, int64_t bc, int64_t cols, uint8_t* out) {
  if (bc == 1) {
    std::memcpy(out, sel, static_cast<size_t>(cols));
    return;
  }
  const int64_t full = cols / bc;  // tiles that lie entirely inside the row
  if (bc == 4) {
    for (int64_t t = 0; t < full; ++t) {
      const uint32_t v = sel[t] * 0x01010101u;
      std::memcpy(out + 4 * t, &v, 4);
    }
  } else if (bc == 8) {
    for (int64_t t = 0; t < full; ++t) {
      const uint64_t v = sel[t] * 0x0101010101010101ull;
      std::memcpy(out + 8 * t, &v, 8);
    }
  } else {
    for (int64_t t = 0; t < full; ++t) std::memset(out + t * bc, sel[t], static_cast<size_t>(bc));
  }
  if (full < tiles_c) std::memset(out + full * bc, sel[full], static_cast<size_t>(cols - full * bc));
}

}  // namespace

WeightNormSparsifier::WeightNormSparsifier(WeightNormOptions options)
    : SparsifierCloneable<WeightNormSparsifier>(defaults_of(options)), options_(std::move(options)) {}

WeightNormSparsifier::WeightNormSparsifier(double sparsity_level, std::pair<int64_t, int64_t> sparse_block_shape,
                                           std::optional<int64_t> zeros_per_block, kernels::Norm norm)
    : WeightNormSparsifier(WeightNormOptions()
                               .sparsity_level(sparsity_level)
                               .sparse_block_shape(sparse_block_shape.first, sparse_block_shape.second)
                               .zeros_per_block(zeros_per_block)
                               .norm(norm)) {}

void WeightNormSparsifier::update_mask(Module& module, const std::string& tensor_name, Group& group) {
  const std::string fqn = group.config.value("tensor_fqn", tensor_name);
  const Settings st = settings_of(group.config, options_, fqn);
  const int64_t vpb = st.br * st.bc;
  Tensor mask = mask_of(module, tensor_name);

  if (st.sparsity_level <= 0 || st.zeros == 0) {
    mask.fill_(1.0);
    return;
  }
  if (st.sparsity_level >= 1 && st.zeros == vpb) {
    mask.fill_(0.0);
    return;
  }

  // Scores come from the masked weight. With the usual single FakeSparsity over this very mask, the
  // masked value is computed chunk by chunk from the original (one pass, no full-size temporary).
  Tensor source;
  bool apply_own_mask = false;
  const auto chain = parametrizations_of(module, tensor_name);
  if (chain.size() == 1) {
    if (auto* fs = dynamic_cast<FakeSparsity*>(chain[0].get()); fs != nullptr && fs->mask().is_same(mask)) {
      source = parametrization_original(module, tensor_name);
      apply_own_mask = true;
    }
  }
  if (!source.defined()) source = module.tensor(tensor_name);
  SPARSITY_CHECK(source.dim() == 2, InvalidArgument, "WeightNormSparsifier: '", fqn,
                 "' must be 2-D, got shape ", shape_to_string(source.shape()));
  const DType wdt = source.dtype();
  SPARSITY_CHECK(is_floating(wdt), InvalidArgument, "WeightNormSparsifier: '", fqn,
                 "' must be a floating-point tensor, got ", to_string(wdt));
  SPARSITY_CHECK(mask.shape() == source.shape(), InvalidArgument, "WeightNormSparsifier: mask of '", fqn,
                 "' has shape ", shape_to_string(mask.shape()), " but the tensor has ",
                 shape_to_string(source.shape()));
  source = source.contiguous();
  const int64_t rows = source.size(0), cols = source.size(1);
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  if (n == 0) return;

  // The mask is written through a contiguous buffer; a strided mask gets its values copied back.
  Tensor out_mask = mask.is_contiguous() ? mask : mask.contiguous().clone();
  const Tensor mask_src = mask.contiguous();
  const DType mdt = mask.dtype();
  const size_t msz = size_of(mdt);
  // Fetched here so a read-only mask fails before any work (and never inside a parallel region).
  uint8_t* const out_base = static_cast<uint8_t*>(out_mask.mutable_data_ptr());

  const bool f64 = wdt == DType::f64;
  const bool custom = static_cast<bool>(options_.norm_fn_);
  const bool all_tiles = st.sparsity_level >= 1;  // only reachable with zeros < vpb
  const bool nm = st.zeros < vpb;
  // A block side beyond the tensor gives the same tiles as one clamped to it (edge tiles count their
  // in-range elements only; missing positions rank last), so work with the clamped geometry.
  const int64_t br = std::min(st.br, rows), bc = std::min(st.bc, cols);
  const int64_t zeros = std::min(st.zeros, br * bc);
  const int64_t tiles_r = (rows + br - 1) / br, tiles_c = (cols + bc - 1) / bc;
  const size_t L = static_cast<size_t>(tiles_r) * static_cast<size_t>(tiles_c);

  const int threads =
      static_cast<int>(std::min<int64_t>(kernels::num_threads(), (static_cast<int64_t>(n) >> 14) + 1));
  // A custom norm is user code: called from this thread only (it may throw or be thread-unsafe), and
  // outside any OpenMP region, which an exception must never leave.
  const bool parallel = threads > 1 && n >= (size_t{1} << 16) && !custom;
  (void)parallel;  // unused without OpenMP
  auto for_each_chunk = [&](int64_t n_chunks, auto&& body) {
#ifdef SPARSITY_HAVE_OPENMP
    if (parallel) {
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t c = 0; c < n_chunks; ++c) body(c);
      return;
    }
#endif
    for (int64_t c = 0; c < n_chunks; ++c) body(c);
  };
  auto k_of = [&](size_t tiles) {
    const double raw = std::nearbyint(st.sparsity_level * static_cast<double>(tiles));  // half to even
    return static_cast<size_t>(std::max(0.0, std::min(static_cast<double>(tiles) - 1.0, raw)));
  };
  Buffers& whole = thread_buffers(1);
  auto trim_scratch = [&whole]() {
    // Keep the scratch for the next step unless it is unusually large.
    constexpr size_t kKeepBytes = size_t{64} << 20;
    if (whole.bytes.capacity() > kKeepBytes) whole.bytes.release();
    if (whole.scores.capacity() * sizeof(double) > kKeepBytes) whole.scores.release();
  };

  // Flat tiles: f32 weights under their own FakeSparsity with a 1 x bc block that divides the columns. The
  // tiles are runs of the flat buffer; two fused passes around a radix select over the tile keys.
  const DType mdt_in = mask.dtype();
  if (wdt == DType::f32 && apply_own_mask && !custom && br == 1 && kernels::flat_tiles_supported(bc) &&
      cols % bc == 0 && out_mask.is_same(mask) &&
      (mdt_in == DType::f32 || mdt_in == DType::u8 || mdt_in == DType::bool_)) {
    const bool flat_nm = zeros < bc;  // zeros == bc prunes whole tiles
    constexpr size_t kChunk = size_t{1} << 14;  // elements: a multiple of 64 and of every bc
    const int64_t n_chunks = static_cast<int64_t>((n + kChunk - 1) / kChunk);
    const size_t bytes = (n + 7) / 8 + 8;
    uint8_t* big = whole.bytes.get(bytes * (flat_nm ? 2 : 1));
    uint8_t* old_bits = big;
    uint8_t* pruned_bits = flat_nm ? big + bytes : nullptr;
    uint32_t* keys = reinterpret_cast<uint32_t*>(whole.scores.get((L + 1) / 2));
    const uint8_t* w = static_cast<const uint8_t*>(source.data_ptr());
    const size_t msz = size_of(mdt_in);
    const size_t ub = static_cast<size_t>(bc);
    for_each_chunk(n_chunks, [&](int64_t c) {
      const size_t off = static_cast<size_t>(c) * kChunk, cn = std::min(kChunk, n - off);
      uint8_t* pruned = flat_nm ? pruned_bits + off / 8 : nullptr;
      kernels::flat_tile_scores(w + off * 4, out_base + off * msz, mdt_in, cn, bc, options_.norm_, zeros,
                                keys + off / ub, old_bits + off / 8, pruned);
    });
    const kernels::KeyThreshold<uint32_t> threshold =
        kernels::select_threshold_u32(keys, L, all_tiles ? L : k_of(L));
    for_each_chunk(n_chunks, [&](int64_t c) {
      const size_t off = static_cast<size_t>(c) * kChunk, cn = std::min(kChunk, n - off);
      Buffers& local = thread_buffers(0);
      uint8_t* fresh = local.bytes.get(kChunk / 8);
      kernels::flat_tile_mask(keys + off / ub, cn, bc, threshold, off / ub,
                              flat_nm ? pruned_bits + off / 8 : nullptr, fresh);
      // Steps that keep the mask (the sticky steady state) write nothing.
      if (std::memcmp(fresh, old_bits + off / 8, (cn + 7) / 8) == 0) return;
      kernels::bits_to_mask(fresh, cn, mdt_in, out_base + off * msz);
    });
    trim_scratch();
    return;
  }

  // Chunks of whole tile rows, ~16K elements each, so a chunk's temporaries stay in L1/L2.
  const int64_t tile_rows_per_chunk = std::max<int64_t>(1, (int64_t{16384} / cols) / br);
  const int64_t chunk_rows = std::min(rows, tile_rows_per_chunk * br);
  const int64_t n_chunks = (rows + chunk_rows - 1) / chunk_rows;
  const size_t chunk_elems = static_cast<size_t>(chunk_rows) * static_cast<size_t>(cols);

  // Between the passes each chunk keeps its old mask (and, for N:M, its in-tile choice) as packed bits
  // in its own slot: n/8 bytes of memory traffic instead of n. Then the tile flags [L].
  const size_t slot = (chunk_elems + 7) / 8;
  const size_t n_slots = static_cast<size_t>(n_chunks);
  uint8_t* big = whole.bytes.get(slot * n_slots * (nm ? 2 : 1) + L);
  uint8_t* old_bits = big;
  uint8_t* pruned_bits = nm ? big + slot * n_slots : nullptr;
  uint8_t* selected = big + slot * n_slots * (nm ? 2 : 1);
  // Tile scores: f64 for f64 weights, else f32 (stored in the double buffer's bytes, two per double,
  // so 16M f32 scores stay within the kept scratch instead of being reallocated every step).
  double* score_store = whole.scores.get(all_tiles ? 1 : (f64 ? L : (L + 1) / 2));
  float* scores32 = reinterpret_cast<float*>(score_store);
  double* scores64 = score_store;

  const uint8_t* wbase = static_cast<const uint8_t*>(source.data_ptr());
  const uint8_t* mbase = static_cast<const uint8_t*>(mask_src.data_ptr());
  const size_t wsz = size_of(wdt);
  const std::function<double(double)>& norm_fn = options_.norm_fn_;
  const kernels::Norm norm = options_.norm_;

  // Per-thread chunk scratch: bytes [chunk_elems] x 3 | masked weights [chunk_elems * wsz] |
  // tile flags of one row [cols] | packed bits [slot]; element scores [chunk_elems] (f32 or f64).
  const size_t local_bytes = 3 * chunk_elems + chunk_elems * wsz + static_cast<size_t>(cols) + slot;
  struct Local {
    uint8_t* ob;      // old mask bytes
    uint8_t* pr;      // pruned-in-tile bytes
    uint8_t* fresh;   // new mask bytes
    uint8_t* masked;  // masked weights
    uint8_t* expand;  // tile flags of one row
    uint8_t* bits;    // new mask bits
    double* elem;     // element scores
  };
  auto local_scratch = [&]() {
    Buffers& local = thread_buffers(0);
    uint8_t* p = local.bytes.get(local_bytes);
    Local l{};
    l.ob = p;
    l.pr = p + chunk_elems;
    l.fresh = p + 2 * chunk_elems;
    l.masked = p + 3 * chunk_elems;
    l.expand = l.masked + chunk_elems * wsz;
    l.bits = l.expand + cols;
    l.elem = local.scores.get(chunk_elems);
    return l;
  };

  auto pass1 = [&](int64_t chunk) {
    const int64_t r0 = chunk * chunk_rows;
    const int64_t nr = std::min(chunk_rows, rows - r0);
    const size_t off = static_cast<size_t>(r0) * static_cast<size_t>(cols);
    const size_t cn = static_cast<size_t>(nr) * static_cast<size_t>(cols);
    const Local l = local_scratch();
    kernels::mask_to_bytes(mdt, mbase + off * msz, cn, l.ob);
    kernels::bytes_to_bits(l.ob, cn, old_bits + static_cast<size_t>(chunk) * slot);
    const void* w = wbase + off * wsz;
    // A chunk whose mask keeps everything (e.g. the first step) is scored straight from the original.
    if (apply_own_mask && std::memchr(l.ob, 0, cn) != nullptr) {
      kernels::apply_mask_bytes(wdt, w, l.ob, l.masked, cn);
      w = l.masked;
    }
    const size_t tile0 = static_cast<size_t>(r0 / br) * static_cast<size_t>(tiles_c);
    if (custom) {
      if (f64) {
        custom_element_scores<double>(wdt, w, cn, norm_fn, l.elem);
        if (!all_tiles) tile_means<double>(wdt, l.elem, nr, cols, br, bc, scores64 + tile0);
      } else {
        float* e32 = reinterpret_cast<float*>(l.elem);
        custom_element_scores<float>(wdt, w, cn, norm_fn, e32);
        if (!all_tiles) tile_means<float>(wdt, e32, nr, cols, br, bc, scores32 + tile0);
      }
    } else {
      if (!all_tiles) {
        void* dst = f64 ? static_cast<void*>(scores64 + tile0) : static_cast<void*>(scores32 + tile0);
        kernels::block_scores(wdt, w, nr, cols, cols, br, bc, norm, dst);
      }
      if (nm) kernels::block_scores(wdt, w, nr, cols, cols, 1, 1, norm, l.elem);
    }
    if (nm) {
      kernels::tile_smallest(l.elem, f64, nr, cols, cols, br, bc, zeros, l.pr);
      kernels::bytes_to_bits(l.pr, cn, pruned_bits + static_cast<size_t>(chunk) * slot);
    }
  };

  auto pass2 = [&](int64_t chunk) {
    const int64_t r0 = chunk * chunk_rows;
    const int64_t nr = std::min(chunk_rows, rows - r0);
    const size_t off = static_cast<size_t>(r0) * static_cast<size_t>(cols);
    const size_t cn = static_cast<size_t>(nr) * static_cast<size_t>(cols);
    const Local l = local_scratch();
    if (nm) kernels::bits_to_bytes(pruned_bits + static_cast<size_t>(chunk) * slot, cn, l.pr);
    for (int64_t r = 0; r < nr; r += br) {
      const int64_t tr = (r0 + r) / br;
      const uint8_t* sel = selected + static_cast<size_t>(tr) * static_cast<size_t>(tiles_c);
      expand_tiles(sel, tiles_c, bc, cols, l.expand);
      const int64_t rend = std::min(nr, r + br);
      for (int64_t rr = r; rr < rend; ++rr) {
        const size_t ro = static_cast<size_t>(rr) * static_cast<size_t>(cols);
        uint8_t* dst = l.fresh + ro;
        const uint8_t* e = l.expand;
        if (nm) {
          const uint8_t* p = l.pr + ro;
          for (int64_t c = 0; c < cols; ++c) dst[c] = static_cast<uint8_t>((e[c] & p[c]) ^ 1u);
        } else {
          for (int64_t c = 0; c < cols; ++c) dst[c] = static_cast<uint8_t>(e[c] ^ 1u);
        }
      }
    }
    // Steps that keep the mask (the sticky steady state) write nothing.
    if (out_mask.is_same(mask)) {
      kernels::bytes_to_bits(l.fresh, cn, l.bits);
      if (std::memcmp(l.bits, old_bits + static_cast<size_t>(chunk) * slot, (cn + 7) / 8) == 0) return;
    }
    kernels::bytes_to_mask(l.fresh, cn, mdt, out_base + off * msz);
  };

  for_each_chunk(n_chunks, pass1);

  if (all_tiles) {
    std::memset(selected, 1, L);
  } else if (f64) {
    kernels::select_k_smallest_f64(scores64, L, k_of(L), selected);
  } else {
    kernels::select_k_smallest_f32(scores32, L, k_of(L), selected);
  }

  for_each_chunk(n_chunks, pass2);

  if (!out_mask.is_same(mask)) mask.copy_(out_mask);
  trim_scratch();
}

}  // namespace sparsity

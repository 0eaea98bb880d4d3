// norm_mask(): WeightNorm's mask computation. Argument checks, the choice of path, and the two drivers
// (flat tiles, general) over fixed chunks, with their scratch memory; compiled with the baseline flags.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "base/parallel.hpp"
#include "base/scratch.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/flat_tiles/flat_tiles.hpp"
#include "kernels/fused.hpp"
#include "kernels/mask_bits.hpp"
#include "kernels/reference.hpp"
#include "sparsity/kernels/global_threshold.hpp"
#include "sparsity/base/error.hpp"

namespace sparsity::kernels {

namespace {

using ::sparsity::detail::Scratch;

// ---- scratch memory --------------------------------------------------------------------------------

// Arrays over the whole tensor, kept between steps (by the calling thread) unless unusually large.
struct TensorScratch {
  Scratch<uint8_t> old_bits;     // per chunk: the mask before the step, packed
  Scratch<uint8_t> pruned_bits;  // per chunk: the in-tile choice, packed
  Scratch<uint8_t> selected;     // per tile: 1 = selected (general path)
  Scratch<uint32_t> keys;        // per tile: order key of the mean (flat path)
  Scratch<float> scores32;       // per tile: mean score (general path, f32 scores)
  Scratch<double> scores64;      // per tile: mean score (general path, f64 scores)
  Scratch<uint8_t> canonical;    // per chunk: 1 when every mask element was exactly 0 or 1
  Scratch<uint32_t> sample;      // flat_threshold's sample of the keys (flat path)

  void trim() {
    constexpr size_t kKeepBytes = size_t{64} << 20;
    auto trim_one = [](auto& s, size_t element) {
      if (s.capacity() * element > kKeepBytes) s.release();
    };
    trim_one(old_bits, 1);
    trim_one(pruned_bits, 1);
    trim_one(selected, 1);
    trim_one(keys, 4);
    trim_one(scores32, 4);
    trim_one(scores64, 8);
  }
};

// Working memory of one piece of chunks (one thread), sized before the parallel region.
struct ChunkScratch {
  Scratch<uint8_t> mask_bytes;  // the mask as 0/1 bytes (masks the prologue does not read directly)
  Scratch<uint8_t> masked;      // the masked weights, in the weight's dtype
  Scratch<float> elements32;    // element scores (N:M), f32
  Scratch<double> elements64;   // element scores (N:M), f64
  Scratch<uint8_t> pruned;      // the in-tile choice as bytes
  Scratch<uint8_t> fresh;       // the new mask bits
  Scratch<uint32_t> keys;       // a chunk's tile keys (global ranking)
  Scratch<uint32_t> window_keys, window_index;  // a global ranking's window entries of the piece

  void reserve(size_t elements, size_t weight_bytes, bool f64, size_t slot) {
    mask_bytes.get(elements);
    masked.get(elements * weight_bytes);
    if (f64) {
      elements64.get(elements);
    } else {
      elements32.get(elements);
    }
    pruned.get(elements);
    fresh.get(slot);
  }
};

struct Workspace {
  TensorScratch tensor;
  std::vector<std::unique_ptr<ChunkScratch>> pieces;

  // Piece t of a parallel pass uses pieces[t], allocated here, before any parallel region.
  void reserve_pieces(int threads, size_t elements, size_t weight_bytes, bool f64, size_t slot) {
    while (pieces.size() < static_cast<size_t>(threads)) pieces.push_back(std::make_unique<ChunkScratch>());
    for (int t = 0; t < threads; ++t) pieces[static_cast<size_t>(t)]->reserve(elements, weight_bytes, f64, slot);
  }
  ChunkScratch& piece(int t) { return *pieces[static_cast<size_t>(t)]; }
};

Workspace& workspace() {
  thread_local Workspace w;
  return w;
}

// ---- small helpers -----------------------------------------------------------------------------------

// Whether every element of a mask is exactly 0 or 1 in its dtype (then unchanged mask bits mean an
// unchanged mask, and a step that keeps them may skip writing).
bool canonical_mask(DType dtype, const void* mask, size_t n) {
  const size_t sz = size_of(dtype);
  const uint64_t one = one_bits(dtype);
  const char* p = static_cast<const char*>(mask);
  bool ok = true;
  for (size_t i = 0; i < n; ++i) {
    uint64_t v = 0;
    std::memcpy(&v, p + i * sz, sz);  // little-endian: the low sz bytes
    ok &= v == 0 || v == one;
  }
  return ok;
}

void fill_mask(DType dtype, void* mask, size_t n, bool keep) {
  const size_t sz = size_of(dtype);
  const uint64_t v = keep ? one_bits(dtype) : 0;
  char* p = static_cast<char*>(mask);
  if (sz == 1) {
    std::memset(p, static_cast<int>(v), n);
    return;
  }
  for (size_t i = 0; i < n; ++i) std::memcpy(p + i * sz, &v, sz);  // little-endian: the low sz bytes
}

// Tables whose SIMD kernels gather with typed loads need naturally aligned elements; others take the
// scalar table (memcpy loads). Results are identical either way.
const KernelTable& table_for_alignment(const void* p, size_t element_size) {
  return reinterpret_cast<uintptr_t>(p) % element_size == 0 ? active_table() : table_for(Isa::scalar);
}

inline float round_to(DType dtype, float v) {
  if (dtype == DType::f16) return static_cast<float>(Half(v));
  if (dtype == DType::bf16) return static_cast<float>(BFloat16(v));
  return v;
}

// Element scores of a custom score function on n values of `dtype`, in S (f32 rounded to f16/bf16).
template <class S>
void custom_element_scores(DType dtype, const void* w, size_t n, const ElementScore& fn, S* out) {
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Half> ||
                  std::is_same_v<T, BFloat16>) {
      for (size_t i = 0; i < n; ++i) {
        T x;
        std::memcpy(&x, static_cast<const char*>(w) + i * sizeof(T), sizeof(T));
        const double v = fn(to_double(x));
        if constexpr (std::is_same_v<S, double>) {
          out[i] = v;
        } else {
          out[i] = round_to(dtype, static_cast<float>(v));
        }
      }
    }
  });
}

// Tile means of element scores (rows x cols, row-major), edge tiles over their in-range elements; summed in
// S row-major inside the tile, as block_scores sums norms.
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

// ---- the problem after clamping ----------------------------------------------------------------------

struct Plan {
  const NormMaskArgs& a;
  int64_t batch, rows, cols;  // matrices (batch folded into rows when the block rows divide them)
  int64_t br, bc, zeros;      // the block clamped to the matrix
  int64_t tiles_r, tiles_c;   // per matrix
  size_t n, tiles;
  size_t k;                   // tiles to select
  bool nm;                    // zeros < block size: the in-tile choice
  bool all_tiles;             // every tile selected: no tile scores needed
  int threads;
  bool flat;                  // the flat-tile path
  // Scoring only (pass 1 of a global ranking): the tile scores go to `global` as tensor `tensor`; the
  // mask is only read.
  GlobalThreshold* global = nullptr;
  size_t tensor = 0;
};

size_t k_of(const NormMaskArgs& a, size_t tiles) {
  if (a.tiles_to_prune >= 0) return std::min(static_cast<size_t>(a.tiles_to_prune), tiles);
  if (a.sparsity_level >= 1) return tiles;
  const double raw = std::nearbyint(a.sparsity_level * static_cast<double>(tiles));  // half to even
  return static_cast<size_t>(std::max(0.0, std::min(static_cast<double>(tiles) - 1.0, raw)));
}

// ---- flat tiles --------------------------------------------------------------------------------------

void run_flat(const Plan& p) {
  const NormMaskArgs& a = p.a;
  constexpr size_t kChunk = size_t{1} << 14;  // elements: a multiple of 64 and of every bc
  const size_t n = p.n, ub = static_cast<size_t>(p.bc);
  const int64_t n_chunks = static_cast<int64_t>((n + kChunk - 1) / kChunk);
  const bool nm = p.nm;
  Workspace& ws = workspace();
  const size_t nbits = (n + 7) / 8 + 8;
  uint8_t* old_bits = ws.tensor.old_bits.get(nbits);
  uint8_t* pruned_bits = nm ? ws.tensor.pruned_bits.get(nbits) : nullptr;
  uint32_t* keys = ws.tensor.keys.get(p.tiles);
  uint8_t* canonical = ws.tensor.canonical.get(static_cast<size_t>(n_chunks));
  ws.reserve_pieces(p.threads, 0, 0, false, kChunk / 8);
  const uint8_t* w = static_cast<const uint8_t*>(a.weight);
  uint8_t* mask = static_cast<uint8_t*>(a.mask);
  const bool byte_mask = a.mask_dtype != DType::f32;
  const size_t msz = size_of(a.mask_dtype);
  // The SIMD variants load 32-bit lanes: element-misaligned buffers take the reference.
  const bool aligned =
      reinterpret_cast<uintptr_t>(w) % 4 == 0 && (byte_mask || reinterpret_cast<uintptr_t>(mask) % 4 == 0);
  const KernelTable& scores_table = aligned ? active_table() : table_for(Isa::scalar);
  const KernelTable& table = active_table();
  const FlatScoresFn scores = scores_table.flat_scores[byte_mask ? 1 : 0];
  const BitsToMaskFn to_mask = table_for_alignment(mask, msz).bits_to_mask[size_index(msz)];
  const uint64_t one = one_bits(a.mask_dtype);

  // flat_threshold's sample, taken from each chunk's keys while they are in cache.
  const bool sampling = p.global == nullptr && p.tiles >= 16 * kFlatSample;
  uint32_t* sample = sampling ? ws.tensor.sample.get(kFlatSample) : nullptr;
  const size_t stride = p.tiles / kFlatSample;
  detail::parallel_pieces(p.threads, n_chunks, static_cast<int64_t>(kChunk), 1, [&](int, int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const size_t off = static_cast<size_t>(c) * kChunk, cn = std::min(kChunk, n - off);
      canonical[c] = scores(w + off * 4, mask + off * msz, cn, p.bc, a.norm, p.zeros, keys + off / ub,
                            old_bits + off / 8, nm ? pruned_bits + off / 8 : nullptr);
      if (!sampling) continue;
      // Sample i sits at tile i * stride + stride / 2.
      const size_t t0 = off / ub, t1 = (off + cn) / ub;
      for (size_t i = t0 > stride / 2 ? (t0 - stride / 2 + stride - 1) / stride : 0; i < kFlatSample; ++i) {
        const size_t at = i * stride + stride / 2;
        if (at >= t1) break;
        sample[i] = keys[at];
      }
    }
  });
  if (p.global != nullptr) {
    p.global->add_keys(p.tensor, keys, p.tiles);
    ws.tensor.trim();
    return;
  }
  const KeyThreshold<uint32_t> threshold = flat_threshold(keys, p.tiles, p.k, sample);
  detail::parallel_pieces(p.threads, n_chunks, static_cast<int64_t>(kChunk), 1, [&](int piece, int64_t b, int64_t e) {
    uint8_t* fresh = ws.piece(piece).fresh.get(kChunk / 8);
    for (int64_t c = b; c < e; ++c) {
      const size_t off = static_cast<size_t>(c) * kChunk, cn = std::min(kChunk, n - off);
      const size_t tile0 = off / ub, tiles = cn / ub;
      const size_t cut = threshold.cut > tile0 ? std::min(threshold.cut - tile0, tiles) : 0;
      table.flat_mask(keys + tile0, cn, p.bc, threshold.key, cut, nm ? pruned_bits + off / 8 : nullptr, fresh);
      // Steps that keep the mask (the sticky steady state) write nothing.
      if (canonical[c] && std::memcmp(fresh, old_bits + off / 8, (cn + 7) / 8) == 0) continue;
      to_mask(fresh, cn, one, mask + off * msz);
    }
  });
  ws.tensor.trim();
}

// ---- general path ------------------------------------------------------------------------------------

// Chunks of whole tile rows of one matrix, ~16K elements each, so a chunk's temporaries stay in L1/L2.
struct Chunk {
  int64_t matrix, tr0, tr1;
};

void run_general(const Plan& p) {
  const NormMaskArgs& a = p.a;
  const DType wdt = a.weight_dtype, mdt = a.mask_dtype;
  const bool f64 = wdt == DType::f64;
  const size_t wsz = size_of(wdt), msz = size_of(mdt);
  const int64_t rows = p.rows, cols = p.cols, br = p.br, bc = p.bc;
  const int64_t tile_rows_per_chunk = std::max<int64_t>(1, (int64_t{16384} / std::max<int64_t>(cols, 1)) / br);
  std::vector<Chunk> chunks;
  for (int64_t m = 0; m < p.batch; ++m) {
    for (int64_t t = 0; t < p.tiles_r; t += tile_rows_per_chunk) {
      chunks.push_back({m, t, std::min(p.tiles_r, t + tile_rows_per_chunk)});
    }
  }
  const size_t chunk_elems =
      static_cast<size_t>(std::min(rows, tile_rows_per_chunk * br)) * static_cast<size_t>(cols);
  // Each chunk keeps its old mask (and, for N:M, its in-tile choice) as packed bits in its own slot
  // between the passes: n/8 bytes of memory traffic instead of n (+8: the mask pass reads 8 bytes ahead).
  const size_t slot = (chunk_elems + 7) / 8 + 8;
  Workspace& ws = workspace();
  uint8_t* old_bits = ws.tensor.old_bits.get(slot * chunks.size());
  uint8_t* pruned_bits = p.nm ? ws.tensor.pruned_bits.get(slot * chunks.size()) : nullptr;
  uint8_t* canonical = ws.tensor.canonical.get(chunks.size());
  // +64: the mask pass reads tile flags a batch ahead.
  uint8_t* selected = ws.tensor.selected.get(p.tiles + 64);
  float* scores32 = p.all_tiles || f64 ? nullptr : ws.tensor.scores32.get(p.tiles);
  double* scores64 = p.all_tiles || !f64 ? nullptr : ws.tensor.scores64.get(p.tiles);
  ws.reserve_pieces(p.threads, chunk_elems, wsz, f64, slot);

  const uint8_t* wbase = static_cast<const uint8_t*>(a.weight);
  uint8_t* mbase = static_cast<uint8_t*>(a.mask);
  const KernelTable& table = active_table();
  const bool byte_mask = msz == 1;
  const bool fused_prologue = wdt == DType::f32;
  const int fi = float_index(wdt);
  const BitsToMaskFn to_mask = table_for_alignment(mbase, msz).bits_to_mask[size_index(msz)];
  const uint64_t one = one_bits(mdt);
  const ElementScore* custom = a.score;

  auto geometry = [&](const Chunk& ch, int64_t* nr, size_t* off, size_t* cn, size_t* tile0) {
    const int64_t r0 = ch.tr0 * br;
    *nr = std::min(rows, ch.tr1 * br) - r0;
    *off = static_cast<size_t>(ch.matrix * rows + r0) * static_cast<size_t>(cols);
    *cn = static_cast<size_t>(*nr) * static_cast<size_t>(cols);
    *tile0 = static_cast<size_t>((ch.matrix * p.tiles_r + ch.tr0) * p.tiles_c);
  };

  auto pass1 = [&](ChunkScratch& local, size_t ci) {
    int64_t nr;
    size_t off, cn, tile0;
    geometry(chunks[ci], &nr, &off, &cn, &tile0);
    const uint8_t* w = wbase + off * wsz;
    const uint8_t* m = mbase + off * msz;
    uint8_t* ob = old_bits + ci * slot;
    void* masked = a.mask_weights ? local.masked.get(cn * wsz) : nullptr;
    // Prologue: old bits, and the masked weights the scores come from.
    // Masks the prologue reads as they are: bytes, and f32 masks of f32 weights.
    const bool direct = byte_mask || (fused_prologue && mdt == DType::f32);
    if (!direct) {
      canonical[ci] = canonical_mask(mdt, m, cn);
      table.mask_to_bytes[size_index(msz)](m, cn, value_bits(mdt), local.mask_bytes.get(cn));
      m = local.mask_bytes.get(cn);
    }
    if (fused_prologue) {
      const bool c = table.norm_prologue[mdt == DType::f32 ? 0 : 1](w, m, cn, masked, ob);
      if (direct) canonical[ci] = c;
    } else {
      if (direct) canonical[ci] = canonical_mask(mdt, m, cn);
      table.bytes_to_bits(m, cn, ob);
      if (masked != nullptr) table.apply_bytes[width_of(wdt)](w, m, masked, cn, /*stream=*/false);
    }
    const void* src = masked != nullptr ? masked : w;
    const KernelTable& gather = table_for_alignment(src, wsz);
    const int64_t trows = (nr + br - 1) / br;
    void* elements = f64 ? static_cast<void*>(local.elements64.get(cn)) : static_cast<void*>(local.elements32.get(cn));
    if (custom != nullptr) {
      if (f64) {
        custom_element_scores<double>(wdt, src, cn, *custom, local.elements64.get(cn));
        if (!p.all_tiles) tile_means<double>(wdt, local.elements64.get(cn), nr, cols, br, bc, scores64 + tile0);
      } else {
        custom_element_scores<float>(wdt, src, cn, *custom, local.elements32.get(cn));
        if (!p.all_tiles) tile_means<float>(wdt, local.elements32.get(cn), nr, cols, br, bc, scores32 + tile0);
      }
    } else {
      if (!p.all_tiles) {
        void* dst = f64 ? static_cast<void*>(scores64 + tile0) : static_cast<void*>(scores32 + tile0);
        gather.block_scores[fi](src, nr, cols, cols, br, bc, a.norm, dst, 0, trows);
      }
      if (p.nm) gather.block_scores[fi](src, nr, cols, cols, 1, 1, a.norm, elements, 0, nr);
    }
    if (p.nm) {
      uint8_t* pruned = local.pruned.get(cn);
      table.tile_smallest[f64 ? 1 : 0](elements, nr, cols, cols, br, bc, p.zeros, pruned, 0, trows);
      table.bytes_to_bits(pruned, cn, pruned_bits + ci * slot);
    }
  };

  auto pass2 = [&](ChunkScratch& local, size_t ci) {
    int64_t nr;
    size_t off, cn, tile0;
    geometry(chunks[ci], &nr, &off, &cn, &tile0);
    uint8_t* fresh = local.fresh.get(slot);
    table.norm_bits(selected + tile0, p.tiles_c, p.nm ? pruned_bits + ci * slot : nullptr, nr, cols, br, bc, fresh);
    // Steps that keep the mask (the sticky steady state) write nothing.
    if (canonical[ci] && std::memcmp(fresh, old_bits + ci * slot, (cn + 7) / 8) == 0) return;
    to_mask(fresh, cn, one, mbase + off * msz);
  };

  // A custom score is user code: it runs on this thread only, outside any parallel region (it may throw).
  const int64_t n_chunks = static_cast<int64_t>(chunks.size());
  const int64_t work = static_cast<int64_t>(chunk_elems);
  detail::parallel_pieces(p.threads, n_chunks, work, 1, [&](int piece, int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) pass1(ws.piece(piece), static_cast<size_t>(c));
  });
  if (p.global != nullptr) {
    if (f64) {
      p.global->add(p.tensor, scores64, p.tiles);
    } else {
      p.global->add(p.tensor, scores32, p.tiles);
    }
    ws.tensor.trim();
    return;
  }
  if (p.all_tiles) {
    std::memset(selected, 1, p.tiles);
  } else if (f64) {
    table.select_f64(scores64, p.tiles, p.k, selected);
  } else {
    table.select_f32(scores32, p.tiles, p.k, selected);
  }
  detail::parallel_pieces(p.threads, n_chunks, work, 1, [&](int piece, int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) pass2(ws.piece(piece), static_cast<size_t>(c));
  });
  ws.tensor.trim();
}

void check_args(const NormMaskArgs& a) {
  SPARSITY_CHECK(is_floating(a.weight_dtype), InvalidArgument, "norm_mask: weight dtype must be f32, f64, f16 or bf16, got ",
                 to_string(a.weight_dtype));
  SPARSITY_CHECK(a.batch >= 0 && a.rows >= 0 && a.cols >= 0, InvalidArgument, "norm_mask: negative shape [", a.batch,
                 ", ", a.rows, ", ", a.cols, "]");
  SPARSITY_CHECK(a.block_rows >= 1 && a.block_cols >= 1, InvalidArgument, "norm_mask: block shape (", a.block_rows,
                 ", ", a.block_cols, ") must be positive");
  SPARSITY_CHECK(a.block_rows <= (int64_t{1} << 31) && a.block_cols <= (int64_t{1} << 31), InvalidArgument,
                 "norm_mask: block shape (", a.block_rows, ", ", a.block_cols, ") is too large");
  SPARSITY_CHECK(a.zeros_per_block >= 0 && a.zeros_per_block <= a.block_rows * a.block_cols, InvalidArgument,
                 "norm_mask: zeros_per_block ", a.zeros_per_block, " outside [0, ", a.block_rows * a.block_cols, "]");
  SPARSITY_CHECK(!std::isnan(a.sparsity_level), InvalidArgument, "norm_mask: sparsity level is NaN");
  const bool empty = a.batch == 0 || a.rows == 0 || a.cols == 0;
  SPARSITY_CHECK(empty || (a.weight != nullptr && a.mask != nullptr), InvalidArgument,
                 "norm_mask: null weight or mask for a [", a.batch, ", ", a.rows, ", ", a.cols, "] tensor");
}

}  // namespace

int norm_mask_constant(double sparsity_level, int64_t tiles_to_prune, int64_t zeros_per_block, int64_t block_size) {
  if (zeros_per_block == 0) return 1;
  if (tiles_to_prune >= 0) return tiles_to_prune == 0 ? 1 : -1;
  if (sparsity_level <= 0) return 1;
  if (sparsity_level >= 1 && zeros_per_block == block_size) return 0;
  return -1;
}

namespace {

// The clamped, normalised geometry of a problem and the path it takes.
Plan plan_of(const NormMaskArgs& a) {
  const size_t n = static_cast<size_t>(a.batch) * static_cast<size_t>(a.rows) * static_cast<size_t>(a.cols);
  Plan p{a, a.batch, a.rows, a.cols, 0, 0, 0, 0, 0, n, 0, 0, false, false, 1, false};
  if (n == 0) return p;
  // A block side beyond the matrix gives the same tiles as one clamped to it (edge tiles count their
  // in-range elements only), so work with the clamped geometry.
  p.br = std::min(a.block_rows, p.rows);
  p.bc = std::min(a.block_cols, p.cols);
  p.zeros = std::min(a.zeros_per_block, p.br * p.bc);
  // A column of tiles down single-column matrices is a row of tiles along a one-row matrix.
  if (p.cols == 1 && p.rows > 1) {
    std::swap(p.rows, p.cols);
    std::swap(p.br, p.bc);
  }
  // Matrices whose rows the block divides stack into one: the tile numbering is the same.
  if (p.rows % p.br == 0 && p.batch > 1) {
    p.rows *= p.batch;
    p.batch = 1;
  }
  p.tiles_r = (p.rows + p.br - 1) / p.br;
  p.tiles_c = (p.cols + p.bc - 1) / p.bc;
  p.tiles = static_cast<size_t>(p.batch * p.tiles_r * p.tiles_c);
  p.k = k_of(a, p.tiles);
  p.nm = p.zeros < p.br * p.bc;
  p.all_tiles = p.k >= p.tiles;
  // A custom score is user code: one thread.
  p.threads = a.score != nullptr ? 1 : std::max(1, num_threads());
  p.flat = a.weight_dtype == DType::f32 && a.mask_weights && a.score == nullptr && p.br == 1 &&
           flat_tiles_supported(p.bc) && p.cols % p.bc == 0 &&
           (a.mask_dtype == DType::f32 || a.mask_dtype == DType::u8 || a.mask_dtype == DType::bool_);
  return p;
}

}  // namespace

void norm_mask(const NormMaskArgs& a) {
  check_args(a);
  const size_t n = static_cast<size_t>(a.batch) * static_cast<size_t>(a.rows) * static_cast<size_t>(a.cols);
  // Masks that do not depend on the weights.
  const int constant =
      norm_mask_constant(a.sparsity_level, a.tiles_to_prune, a.zeros_per_block, a.block_rows * a.block_cols);
  if (constant >= 0) {
    fill_mask(a.mask_dtype, a.mask, n, /*keep=*/constant == 1);
    return;
  }
  if (n == 0) return;
  const Plan p = plan_of(a);
  if (p.flat) {
    run_flat(p);
  } else {
    run_general(p);
  }
}

uint64_t norm_mask_tiles(const NormMaskArgs& a) {
  check_args(a);
  return plan_of(a).tiles;
}

void norm_mask_scores(const NormMaskArgs& a, GlobalThreshold& global, size_t tensor) {
  check_args(a);
  Plan p = plan_of(a);
  if (p.n == 0) {
    global.add(tensor, static_cast<const float*>(nullptr), 0);
    return;
  }
  // Every tile scored, no in-tile choice: only the tile scores are wanted.
  p.k = 0;
  p.all_tiles = false;
  p.nm = false;
  p.zeros = p.br * p.bc;
  p.global = &global;
  p.tensor = tensor;
  if (p.flat) {
    run_flat(p);
  } else {
    run_general(p);
  }
}

void norm_sample_scores(const NormMaskArgs& a, size_t count, std::vector<double>* out) {
  check_args(a);
  out->clear();
  const Plan p = plan_of(a);
  if (p.tiles == 0 || count == 0) return;
  count = std::min(count, p.tiles);
  const size_t wsz = size_of(a.weight_dtype), msz = size_of(a.mask_dtype);
  const uint64_t vb = value_bits(a.mask_dtype);
  const bool f32 = a.weight_dtype == DType::f32;
  auto weight = [&](size_t i) {
    double x = 0;
    if (f32) {
      float v;
      std::memcpy(&v, static_cast<const char*>(a.weight) + i * 4, 4);
      x = v;
    } else {
      visit_dtype(a.weight_dtype, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Half> ||
                    std::is_same_v<T, BFloat16>) {
        T v;
        std::memcpy(&v, static_cast<const char*>(a.weight) + i * wsz, sizeof(T));
        x = to_double(v);
      }
      });
    }
    if (a.mask_weights) {
      uint64_t m = 0;
      std::memcpy(&m, static_cast<const char*>(a.mask) + i * msz, msz);
      if ((m & vb) == 0) x = 0;
    }
    return x;
  };
  // Runs of kRun consecutive tiles spread evenly over the numbering (a few cache lines each, instead of
  // a miss per tile); each mean in f64 (a sample only steers a global ranking's first window, so it
  // need not equal the kernels' rounding).
  constexpr size_t kRun = 32;
  const size_t runs = (count + kRun - 1) / kRun;
  const size_t per_matrix = static_cast<size_t>(p.tiles_r * p.tiles_c);
  for (size_t j = 0; j < count; ++j) {
    const size_t run = j / kRun;
    const size_t start = static_cast<size_t>((static_cast<double>(run) + 0.5) * static_cast<double>(p.tiles) /
                                             static_cast<double>(runs));
    const size_t tile = std::min(p.tiles - 1, start + j % kRun);
    const int64_t m = static_cast<int64_t>(tile / per_matrix), t = static_cast<int64_t>(tile % per_matrix);
    const int64_t r0 = (t / p.tiles_c) * p.br, c0 = (t % p.tiles_c) * p.bc;
    const int64_t r1 = std::min(p.rows, r0 + p.br), c1 = std::min(p.cols, c0 + p.bc);
    double sum = 0;
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const double x = weight(static_cast<size_t>((m * p.rows + r) * p.cols + c));
        sum += a.score != nullptr ? (*a.score)(x) : a.norm == Norm::L1 ? std::fabs(x) : x * x;
      }
    }
    out->push_back(sum / static_cast<double>((r1 - r0) * (c1 - c0)));
  }
}

// ---- global ranking over flat tiles ------------------------------------------------------------------

namespace {

// Set bits of a word (the baseline flags have no popcnt instruction: no library call per word).
inline uint64_t popcount64(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (x * 0x0101010101010101ull) >> 56;
}

constexpr size_t kFlatChunk = size_t{1} << 14;  // elements: a multiple of 64 and of every bc

// What a round's scoring keeps of a flat-path tensor so that its mask can be written without scoring it
// again: per tile, below the window (a bit) or equal to the heavy key (a bit); the window's keys with their
// tile indices; the old mask and in-tile choice as bits; per chunk, whether the mask was exactly 0/1.
struct Record {
  bool valid = false;
  bool has_heavy = false;
  uint32_t heavy = 0;
  std::vector<uint64_t> below, heavy_bits;
  std::vector<uint32_t> window_keys, window_index;
  std::vector<uint8_t> old_bits, pruned_bits, canonical;
};

// One round's scores of a flat-path tensor for `g`, through the window: keys per chunk (never the whole
// tensor's), split by the window as they are made. False (nothing given to g) when an unexpected window
// size leaves the record incomplete.
bool score_flat_record(const Plan& p, GlobalThreshold& g, size_t tensor, uint32_t lo, uint64_t end, bool has_heavy,
                       uint32_t heavy, Record* rec) {
  const NormMaskArgs& a = p.a;
  const size_t n = p.n, ub = static_cast<size_t>(p.bc);
  const int64_t n_chunks = static_cast<int64_t>((n + kFlatChunk - 1) / kFlatChunk);
  // Every word and byte is written by the passes below (records are reused from step to step, so a
  // resize touches no new page in the steady state).
  const size_t tile_words = (p.tiles + 63) / 64 + 1;
  rec->below.resize(tile_words);
  rec->heavy_bits.resize(has_heavy ? tile_words : 0);
  rec->old_bits.resize((n + 7) / 8 + 8);
  rec->pruned_bits.resize(p.nm ? (n + 7) / 8 + 8 : 0);
  rec->canonical.resize(static_cast<size_t>(n_chunks));
  rec->window_keys.clear();
  rec->window_index.clear();
  rec->has_heavy = has_heavy;
  rec->heavy = heavy;
  Workspace& ws = workspace();
  ws.reserve_pieces(p.threads, 0, 0, false, kFlatChunk / 8);
  // Every piece may hold the whole tensor's window: address space reserved, pages touched as used.
  for (int t = 0; t < p.threads; ++t) {
    ws.piece(t).keys.get(kFlatChunk);
    ws.piece(t).window_keys.get(p.tiles + 1);
    ws.piece(t).window_index.get(p.tiles + 1);
  }
  std::vector<size_t> piece_count(static_cast<size_t>(p.threads), 0);
  std::vector<uint8_t> piece_overflow(static_cast<size_t>(p.threads), 0);
  const uint8_t* w = static_cast<const uint8_t*>(a.weight);
  const uint8_t* mask = static_cast<const uint8_t*>(a.mask);
  const bool byte_mask = a.mask_dtype != DType::f32;
  const size_t msz = size_of(a.mask_dtype);
  const bool aligned =
      reinterpret_cast<uintptr_t>(w) % 4 == 0 && (byte_mask || reinterpret_cast<uintptr_t>(mask) % 4 == 0);
  const FlatScoresFn scores = (aligned ? active_table() : table_for(Isa::scalar)).flat_scores[byte_mask ? 1 : 0];
  const FlatSplitFn split = active_table().flat_split;
  const uint32_t hi = static_cast<uint32_t>(end - 1);
  detail::parallel_pieces(p.threads, n_chunks, static_cast<int64_t>(kFlatChunk), 1, [&](int piece, int64_t b, int64_t e) {
    ChunkScratch& local = ws.piece(piece);
    uint32_t* keys = local.keys.get(kFlatChunk);
    size_t& count = piece_count[static_cast<size_t>(piece)];
    for (int64_t c = b; c < e; ++c) {
      const size_t off = static_cast<size_t>(c) * kFlatChunk, cn = std::min(kFlatChunk, n - off);
      const size_t tile0 = off / ub, tiles = cn / ub;  // tile0 is a multiple of 1024
      rec->canonical[static_cast<size_t>(c)] = scores(w + off * 4, mask + off * msz, cn, p.bc, a.norm, p.zeros, keys,
                                                      rec->old_bits.data() + off / 8,
                                                      p.nm ? rec->pruned_bits.data() + off / 8 : nullptr);
      if (piece_overflow[static_cast<size_t>(piece)]) continue;
      const size_t room = p.tiles - count;
      const size_t m = split(keys, tiles, lo, hi, has_heavy ? &heavy : nullptr, rec->below.data() + tile0 / 64,
                             has_heavy ? rec->heavy_bits.data() + tile0 / 64 : nullptr, local.window_keys.get(0) + count,
                             local.window_index.get(0) + count, static_cast<uint32_t>(tile0), room);
      if (m > room) {
        piece_overflow[static_cast<size_t>(piece)] = 1;
      } else {
        count += m;
      }
    }
  });
  for (uint8_t o : piece_overflow) {
    if (o) return false;
  }
  // The pieces cover consecutive chunks in order: their windows concatenate in index order.
  for (int t = 0; t < p.threads; ++t) {
    const size_t m = piece_count[static_cast<size_t>(t)];
    rec->window_keys.insert(rec->window_keys.end(), ws.piece(t).window_keys.get(0), ws.piece(t).window_keys.get(0) + m);
    rec->window_index.insert(rec->window_index.end(), ws.piece(t).window_index.get(0),
                             ws.piece(t).window_index.get(0) + m);
  }
  const uint64_t below = static_cast<uint64_t>(count_kept_bits(reinterpret_cast<const uint8_t*>(rec->below.data()), p.tiles));
  const uint64_t heavy_count =
      has_heavy ? static_cast<uint64_t>(count_kept_bits(reinterpret_cast<const uint8_t*>(rec->heavy_bits.data()), p.tiles)) : 0;
  g.add_split(tensor, p.tiles, below, heavy_count, rec->window_keys.data(), rec->window_keys.size());
  rec->valid = true;
  return true;
}

// The mask of a recorded tensor whose share is its keys below `key32` and its first `ties` equal to it
// (equal_exists: key32 is the threshold itself, not only the first key above it).
void apply_flat_record(const Plan& p, Record& rec, uint32_t key32, bool equal_exists, uint64_t heavy_key64,
                       uint64_t threshold64, uint64_t ties) {
  const NormMaskArgs& a = p.a;
  const size_t n = p.n, ub = static_cast<size_t>(p.bc);
  std::vector<uint64_t>& selected = rec.below;  // the tiles below the window, and then the rest selected
  if (rec.has_heavy) {
    if (heavy_key64 < threshold64) {
      for (size_t i = 0; i < selected.size(); ++i) selected[i] |= rec.heavy_bits[i];
    } else if (heavy_key64 == threshold64) {
      // The first `ties` heavy tiles in index order: whole words, then the lowest bits of one.
      uint64_t left = ties;
      for (size_t i = 0; i < selected.size() && left > 0; ++i) {
        uint64_t word = rec.heavy_bits[i];
        const uint64_t count = popcount64(word);
        if (count <= left) {
          selected[i] |= word;
          left -= count;
          continue;
        }
        for (; left > 0; --left) {
          const uint64_t low = word & (~word + 1);
          selected[i] |= low;
          word ^= low;
        }
      }
      ties = 0;
    }
  }
  for (size_t j = 0; j < rec.window_keys.size(); ++j) {
    const uint32_t k = rec.window_keys[j];
    bool take = k < key32;
    if (!take && equal_exists && k == key32 && ties > 0) {
      take = true;
      --ties;
    }
    if (take) selected[rec.window_index[j] / 64] |= uint64_t{1} << (rec.window_index[j] % 64);
  }
  Workspace& ws = workspace();
  ws.reserve_pieces(p.threads, 0, 0, false, kFlatChunk / 8);
  uint8_t* mask = static_cast<uint8_t*>(a.mask);
  const size_t msz = size_of(a.mask_dtype);
  const BitsToMaskFn to_mask = table_for_alignment(mask, msz).bits_to_mask[size_index(msz)];
  const uint64_t one = one_bits(a.mask_dtype);
  const int64_t n_chunks = static_cast<int64_t>((n + kFlatChunk - 1) / kFlatChunk);
  detail::parallel_pieces(p.threads, n_chunks, static_cast<int64_t>(kFlatChunk), 1, [&](int piece, int64_t b, int64_t e) {
    uint8_t* fresh = ws.piece(piece).fresh.get(kFlatChunk / 8);
    for (int64_t c = b; c < e; ++c) {
      const size_t off = static_cast<size_t>(c) * kFlatChunk, cn = std::min(kFlatChunk, n - off);
      flat_expand_bits(selected.data() + off / ub / 64, 0, cn, ub, p.nm ? rec.pruned_bits.data() + off / 8 : nullptr,
                       fresh);
      if (rec.canonical[static_cast<size_t>(c)] && std::memcmp(fresh, rec.old_bits.data() + off / 8, (cn + 7) / 8) == 0) {
        continue;
      }
      to_mask(fresh, cn, one, mask + off * msz);
    }
  });
}

}  // namespace

// Records outlive a ranking in this thread's pool: the next step's records reuse their memory.
std::vector<Record>& record_pool() {
  thread_local std::vector<Record> pool;
  return pool;
}

struct GlobalNormMask::Impl {
  GlobalThreshold threshold;
  std::vector<Record> records;
  Impl(std::vector<GlobalTensor> tensors, uint64_t total) : threshold(std::move(tensors), total) {
    records.swap(record_pool());
    records.resize(threshold.size());
    for (Record& r : records) r.valid = false;
  }
  ~Impl() {
    for (Record& r : records) r.valid = false;
    if (record_pool().empty()) records.swap(record_pool());
  }
};

GlobalNormMask::GlobalNormMask(std::vector<GlobalTensor> tensors, uint64_t total)
    : impl_(std::make_unique<Impl>(std::move(tensors), total)) {}
GlobalNormMask::~GlobalNormMask() = default;

const GlobalThreshold& GlobalNormMask::threshold() const { return impl_->threshold; }

bool GlobalNormMask::done() const { return impl_->threshold.done(); }

void GlobalNormMask::sample(size_t tensor, const NormMaskArgs& a, size_t count) {
  std::vector<double> scores;
  norm_sample_scores(a, count, &scores);
  impl_->threshold.sample(tensor, scores.data(), scores.size());
}

void GlobalNormMask::score(size_t tensor, const NormMaskArgs& a) {
  check_args(a);
  Record& rec = impl_->records.at(tensor);
  rec.valid = false;
  Plan p = plan_of(a);
  uint32_t lo = 0, heavy = 0;
  uint64_t end = 0;
  bool has_heavy = false;
  if (p.n > 0 && p.flat && p.tiles < (uint64_t{1} << 32) && impl_->threshold.window32(&lo, &end, &has_heavy, &heavy)) {
    p.nm = p.zeros < p.br * p.bc;  // the in-tile choice is kept for the mask
    if (score_flat_record(p, impl_->threshold, tensor, lo, end, has_heavy, heavy, &rec)) return;
    rec.valid = false;
  }
  norm_mask_scores(a, impl_->threshold, tensor);
}

bool GlobalNormMask::finish() {
  const bool done = impl_->threshold.finish();
  if (!done) {
    for (Record& r : impl_->records) r.valid = false;
  }
  return done;
}

uint64_t GlobalNormMask::tiles_to_prune(size_t tensor) const { return impl_->threshold.tiles_to_prune(tensor); }

void GlobalNormMask::apply(size_t tensor, const NormMaskArgs& a) {
  check_args(a);
  Record& rec = impl_->records.at(tensor);
  uint64_t key = 0, ties = 0;
  const bool shared = impl_->threshold.share(tensor, &key, &ties);
  const Plan p = plan_of(a);
  if (rec.valid && shared && p.flat && p.zeros > 0) {
    // The threshold in this tensor's 32-bit keys: the first one at or above it (equal when it is one).
    const uint64_t first = first_key_f32_at_least(key);
    const bool exact = first < (uint64_t{1} << 32) && widen_key_f32(static_cast<uint32_t>(first)) == key;
    apply_flat_record(p, rec, static_cast<uint32_t>(std::min<uint64_t>(first, 0xffffffffu)), exact,
                      rec.has_heavy ? widen_key_f32(rec.heavy) : 0, key, ties);
    rec.valid = false;
    return;
  }
  rec.valid = false;
  NormMaskArgs b = a;
  b.tiles_to_prune = static_cast<int64_t>(impl_->threshold.tiles_to_prune(tensor));
  norm_mask(b);
}

}  // namespace sparsity::kernels

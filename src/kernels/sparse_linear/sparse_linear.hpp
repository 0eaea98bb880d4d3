// sparse-linear family: y = W x + b for packed sparse weights (nm, bsr, bitmask, csr), written once for every ISA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kernels/dispatch.hpp"
#include "kernels/simd_util.hpp"
#include "kernels/sparse_linear/sparse_lanes.hpp"

namespace sparsity::kernels {

/// Sparse-linear kernels of one ISA (the order they reproduce is documented at kernels::sparse_linear).
/// Batch 1: 32 / L accumulators hold the 32 partial sums of a row. nm rows go 16 slots at a time with
/// their inputs picked in registers (2:4: a nibble table and one two-source permute; other widths:
/// compressed chunks), bitmask rows L columns at a time with the chunk's values expanded into the lanes
/// of their columns, csr rows gather their inputs, bsr rows load runs of the blocks' columns (blocks of
/// r > 1 rows: a cycle of blocks per NV vectors, inputs gathered or broadcast). Batch >= 2: lanes are
/// batch columns of the transposed input; each stored value is broadcast and multiplied with one input
/// row (up to 4 vectors of lanes per pass; blocks of r > 1 rows reuse the input row r times).
template <class Arch>
struct SparseLinear {
  using S = SparseLanes<Arch>;
  using BF = typename S::BF;
  using BU = typename S::BU;
  static constexpr int64_t L = S::L;
  static constexpr int64_t kParts = 32;
  static constexpr int64_t kAccs = kParts / L;
  static constexpr int64_t kTileRows = 16;

  /// Sets the sparse_matvec / sparse_matmul entries of `table`.
  static void fill(KernelTable& table);

  /// f(std::integral_constant<int64_t, k>{}) for k = 0 .. N - 1, unrolled (so accumulator indices are
  /// constants and the accumulators stay in registers).
  template <int64_t N, class F>
  static void unroll(F&& f) {
    unroll_impl(f, std::make_integer_sequence<int64_t, N>{});
  }
  template <class F, int64_t... K>
  static void unroll_impl(F& f, std::integer_sequence<int64_t, K...>) {
    (f(std::integral_constant<int64_t, K>{}), ...);
  }

  // ---- shared pieces --------------------------------------------------------------------------------

  /// Calls f(I{}) with the C++ type of an index part (u8, i16 or i32).
  template <class F>
  static void with_index(DType dtype, F&& f) {
    if (dtype == DType::u8) {
      f(uint8_t{});
    } else if (dtype == DType::i16) {
      f(int16_t{});
    } else {
      f(int32_t{});
    }
  }

  /// The pairwise sum of the 32 partial sums held by acc[kAccs] (partial a L + l in lane l of acc[a]):
  /// p[j] += p[j + h] for h = 16, ..., 1, as the reference halves them.
  static float reduce(BF* acc) {
    for (int64_t h = kAccs / 2; h >= 1; h /= 2) {
      for (int64_t a = 0; a < h; ++a) acc[a] = acc[a] + acc[a + h];
    }
    return S::halve_lanes(acc[0]);
  }

  /// The 32-partial dot product of values[0, count) with inputs xv(t, valid) (the L inputs of terms
  /// t .. t + L, of which the first `valid` are used: xv must not read beyond them). Term t goes to
  /// partial t % 32; the last, partial cycle is done with masked lanes.
  template <class V, class XV>
  static float dot(const V* values, int64_t count, XV&& xv) {
    BF acc[kAccs];
    for (int64_t a = 0; a < kAccs; ++a) acc[a] = BF(0.0f);
    int64_t t = 0;
    for (; t + kParts <= count; t += kParts) {
      S::prefetch_ahead(values + t, kParts * static_cast<int64_t>(sizeof(V)));
      unroll<kAccs>([&](auto a) { acc[a] = acc[a] + S::mul(S::load(values + t + a * L), xv(t + a * L, L)); });
    }
    const int64_t rem = count - t;
    if (rem > 0) {
      unroll<kAccs>([&](auto a) {
        const int64_t base = a * L;
        if (base >= rem) return;
        const int64_t valid = S::imin(L, rem - base);
        const BF v = valid == L ? S::load(values + t + base) : S::load_partial(values + t + base, valid);
        acc[a] = xsimd::select(S::lanes_below(valid), acc[a] + S::mul(v, xv(t + base, valid)), acc[a]);
      });
    }
    return reduce(acc);
  }

  /// The pairwise sum of p[0, parts), plus the bias.
  static float finish(float* p, int64_t parts, const float* bias, int64_t i) {
    for (int64_t h = parts / 2; h >= 1; h /= 2) {
      for (int64_t j = 0; j < h; ++j) p[j] = p[j] + p[j + h];
    }
    return bias != nullptr ? p[0] + bias[i] : p[0];
  }

  /// Left-packs x[c] for the set bits c < cols of a bitmask row into xs; returns how many (xs holds
  /// cols + L floats).
  static int64_t pack_row(const float* x, const uint8_t* row, int64_t cols, float* xs) {
    int64_t k = 0, c = 0;
    for (; c + L <= cols; c += L) {
      const uint32_t b = S::chunk_bits(row, c, cols);
      S::left_pack(x + c, b, xs + k);
      k += S::popcount(b);
    }
    if (c < cols) {
      alignas(64) float tail[L] = {};
      for (int64_t j = 0; c + j < cols; ++j) tail[j] = x[c + j];
      const uint32_t b = S::chunk_bits(row, c, cols);
      S::left_pack(tail, b, xs + k);
      k += S::popcount(b);
    }
    return k;
  }

  /// The 64 bits of a bitmask row for columns [c, c + 64), zero past `cols` (reads no byte past the row).
  static uint64_t word_at(const uint8_t* row, int64_t c, int64_t cols) {
    uint64_t w = 0;
    if (c + 64 <= cols) {
      std::memcpy(&w, row + c / 8, 8);
      return w;
    }
    std::memcpy(&w, row + c / 8, static_cast<size_t>((cols - c + 7) / 8));
    return w & ((uint64_t{1} << (cols - c)) - 1);
  }

  // ---- batch 1 --------------------------------------------------------------------------------------

  /// nm: slots in order (partial t % 32). When every L columns hold exactly L/2 (AVX2, AVX-512) or
  /// L/4 (AVX-512) slots, the inputs are compressed in registers, two or four chunks making one vector
  /// of slots; otherwise they are left-packed into `scratch` first.
  template <class V>
  static void matvec_nm(const SparseWeight& w, const float* x, const float* bias, float* y, int64_t row0,
                        int64_t row1, float* scratch) {
    const V* values = static_cast<const V*>(w.values);
    const int64_t cols = w.cols, row_bytes = (cols + 7) / 8, slots = cols / w.m * w.n;
    // Slots per L columns, when whole groups fill a chunk (m <= L).
    const int64_t per_chunk = w.m <= L ? w.n * L / w.m : 0;
    for (int64_t i = row0; i < row1; ++i) {
      const uint8_t* row = w.bitmask + i * row_bytes;
      const V* vals = values + i * slots;
      float sum;
      if constexpr (L == 16) {
        if (w.n == 2 && w.m == 4) {
          sum = nm_compressed<V, 2, true>(vals, row, cols, slots, x);
          y[i] = bias != nullptr ? sum + bias[i] : sum;
          continue;
        }
      }
      if constexpr (L >= 8) {
        if (per_chunk == L / 2) {
          sum = nm_compressed<V, 2>(vals, row, cols, slots, x);
          y[i] = bias != nullptr ? sum + bias[i] : sum;
          continue;
        }
      }
      if constexpr (L == 16) {
        if (per_chunk == L / 4) {
          sum = nm_compressed<V, 4>(vals, row, cols, slots, x);
          y[i] = bias != nullptr ? sum + bias[i] : sum;
          continue;
        }
      }
      const int64_t kept = pack_row(x, row, cols, scratch);
      sum = dot(vals, S::imin(kept, slots), [&](int64_t t, int64_t) { return BF::load_unaligned(scratch + t); });
      y[i] = bias != nullptr ? sum + bias[i] : sum;
    }
  }

  /// One nm row whose every L columns hold L / K slots: K compressed chunks make a vector of L slots.
  /// The slots after the last whole group of K chunks are added in scalar code.
  template <class V, int K, bool TwoOfFour = false>
  static float nm_compressed(const V* vals, const uint8_t* row, int64_t cols, int64_t slots, const float* x) {
    constexpr int64_t kSpan = K * L;  // columns per vector of slots
    BF acc[kAccs];
    for (int64_t a = 0; a < kAccs; ++a) acc[a] = BF(0.0f);
    auto vector_at = [&](int64_t c) {
      if constexpr (TwoOfFour) {
        uint32_t bits;
        std::memcpy(&bits, row + c / 8, 4);
        return S::select_24(x + c, bits);
      }
      const uint64_t bits = word_at(row, c, cols);  // kSpan <= 64 columns
      BF part[K];
      for (int k = 0; k < K; ++k) {
        const uint32_t m = static_cast<uint32_t>(bits >> (k * L)) & ((1u << L) - 1u);
        part[k] = S::compress(BF::load_unaligned(x + c + k * L), m);
      }
      if constexpr (K == 2) {
        return S::join_halves(part[0], part[1]);
      } else {
        return S::join_quarters(part[0], part[1], part[2], part[3]);
      }
    };
    int64_t c = 0, t = 0;
    for (; c + kAccs * kSpan <= cols; c += kAccs * kSpan, t += kParts) {
      S::prefetch_ahead(vals + t, kParts * static_cast<int64_t>(sizeof(V)));
      if (c % 512 == 0) S::prefetch_ahead(row + c / 8, 64);
      for (int64_t a = 0; a < kAccs; ++a) acc[a] = acc[a] + S::mul(S::load(vals + t + a * L), vector_at(c + a * kSpan));
    }
    alignas(64) float p[kParts];
    for (int64_t a = 0; a < kAccs; ++a) acc[a].store_aligned(p + a * L);
    // The rest: slot t at the t-th set bit from column c on.
    for (; c < cols && t < slots; c += 64) {
      for (uint64_t b = word_at(row, c, cols); b != 0 && t < slots; b &= b - 1, ++t) {
        p[t % kParts] = p[t % kParts] + S::mul(S::value(vals + t), x[c + __builtin_ctzll(b)]);
      }
    }
    return finish(p, kParts, nullptr, 0);
  }

  /// bitmask: L columns at a time, the chunk's stored values expanded into the lanes of their columns
  /// and multiplied with the inputs there; only those lanes are added (partial = column % 32). A row
  /// with more set bits than values left takes its first ones only.
  template <class V>
  static void matvec_bitmask(const SparseWeight& w, const float* x, const float* bias, float* y, int64_t row0,
                             int64_t row1, float*) {
    const V* values = static_cast<const V*>(w.values);
    const V* end = values + w.nnz;
    const int64_t cols = w.cols, row_bytes = (cols + 7) / 8;
    for (int64_t i = row0; i < row1; ++i) {
      const uint8_t* row = w.bitmask + i * row_bytes;
      const V* vals = values + S::clamp(S::index_at(w.offsets, DType::i64, i), 0, w.nnz);
      float sum;
      if constexpr (L == 4) {
        sum = bits_scalar(vals, end, row, cols, x);
      } else {
        sum = bits_simd(vals, end, row, cols, x);
      }
      y[i] = bias != nullptr ? sum + bias[i] : sum;
    }
  }

  /// The lowest n set bits of m (only for rows with more set bits than values: out of the hot loop).
  __attribute__((noinline, cold)) static uint32_t first_bits(uint32_t m, int64_t n) {
    uint32_t keep = 0;
    for (int64_t k = 0; k < n && m != 0; ++k, m &= m - 1) keep |= m & (0u - m);
    return keep;
  }

  template <class V>
  static float bits_simd(const V* vals, const V* end, const uint8_t* row, int64_t cols, const float* x) {
    BF acc[kAccs];
    for (int64_t a = 0; a < kAccs; ++a) acc[a] = BF(0.0f);
    // A chunk's values; `guarded` when fewer than 64 values are left (a row may claim more than exist).
    auto chunk = [&](BF& a, uint32_t m, const BF& xv, bool guarded) {
      if (guarded && S::popcount(m) > end - vals) m = first_bits(m, end - vals);
      const BF v = S::expand(vals, m, end);
      a = xsimd::select(S::lanes_of(m), a + S::mul(v, xv), a);
      vals += S::popcount(m);
    };
    constexpr int64_t kWordChunks = 64 / L;
    int64_t c = 0;
    for (; c + 64 <= cols; c += 64) {
      S::prefetch_ahead(vals, 64 * static_cast<int64_t>(sizeof(V)));
      if (c % 512 == 0) S::prefetch_ahead(row + c / 8, 64);
      uint64_t bits;
      std::memcpy(&bits, row + c / 8, 8);
      const bool guarded = end - vals < 64;
      unroll<kWordChunks>([&](auto k) {
        chunk(acc[k % kAccs], static_cast<uint32_t>(bits >> (k * L)) & ((1u << L) - 1u), BF::load_unaligned(x + c + k * L),
              guarded);
      });
    }
    if (c < cols) {
      const uint64_t bits = word_at(row, c, cols);
      unroll<kWordChunks>([&](auto k) {
        const int64_t cc = c + k * L;
        if (cc >= cols) return;
        alignas(64) float xt[L] = {};
        std::memcpy(xt, x + cc, static_cast<size_t>(S::imin(L, cols - cc)) * sizeof(float));
        chunk(acc[k % kAccs], static_cast<uint32_t>(bits >> (k * L)) & ((1u << L) - 1u), BF::load_aligned(xt), true);
      });
    }
    return reduce(acc);
  }

  /// One bitmask row in scalar code (partial = column % 32).
  template <class V>
  static float bits_scalar(const V* vals, const V* end, const uint8_t* row, int64_t cols, const float* x) {
    float p[kParts] = {};
    for (int64_t c = 0; c < cols && vals < end; ++c) {
      if ((row[c / 8] >> (c % 8)) & 1u) p[c % kParts] = p[c % kParts] + S::mul(S::value(vals++), x[c]);
    }
    return finish(p, kParts, nullptr, 0);
  }

  template <class V>
  static void matvec_csr(const SparseWeight& w, const float* x, const float* bias, float* y, int64_t row0,
                         int64_t row1, float*) {
    const V* values = static_cast<const V*>(w.values);
    const uint32_t last = static_cast<uint32_t>(w.cols - 1);
    with_index(w.indices_dtype, [&](auto tag) {
      using I = decltype(tag);
      const I* idx = static_cast<const I*>(w.indices);
      for (int64_t i = row0; i < row1; ++i) {
        const int64_t start = S::clamp(S::index_at(w.offsets, w.offsets_dtype, i), 0, w.nnz);
        const int64_t end = S::clamp(S::index_at(w.offsets, w.offsets_dtype, i + 1), start, w.nnz);
        const float sum = dot(values + start, end - start, [&](int64_t t, int64_t valid) {
          if (valid == L) {
            if ((t * static_cast<int64_t>(sizeof(I))) % 64 == 0) S::prefetch_ahead(idx + start + t, 64);
            return S::gather(x, S::load_columns(idx + start + t, last));
          }
          I tmp[L] = {};
          std::memcpy(tmp, idx + start + t, static_cast<size_t>(valid) * sizeof(I));
          return S::gather(x, S::load_columns(tmp, last));
        });
        y[i] = bias != nullptr ? sum + bias[i] : sum;
      }
    });
  }

  /// bsr with one-row blocks of C columns: a row's values are its blocks one after the other.
  template <class V, class I, int64_t C>
  static void matvec_bsr_rows(const SparseWeight& w, const float* x, const float* bias, float* y, int64_t row0,
                              int64_t row1) {
    const V* values = static_cast<const V*>(w.values);
    const I* idx = static_cast<const I*>(w.indices);
    const int64_t blocks = w.nnz / C, last = w.cols / C - 1;
    for (int64_t i = row0; i < row1; ++i) {
      const int64_t start = S::clamp(S::index_at(w.offsets, w.offsets_dtype, i), 0, blocks);
      const int64_t end = S::clamp(S::index_at(w.offsets, w.offsets_dtype, i + 1), start, blocks);
      // Inputs of terms t .. t + L: runs of C columns of the blocks there (valid lanes cover whole blocks;
      // the runs of missing blocks repeat the first one).
      auto xv = [&](int64_t t, int64_t valid) -> BF {
        if constexpr (C >= L) {
          return BF::load_unaligned(x + S::column(idx, start + t / C, last) * C + t % C);
        } else {
          constexpr int64_t kRuns = L / C;
          const int64_t nb = (valid + C - 1) / C;
          int64_t starts[kRuns];
          for (int64_t j = 0; j < kRuns; ++j) starts[j] = S::column(idx, start + t / C + (j < nb ? j : 0), last) * C;
          if constexpr (C == 4 || (C == 8 && L == 16)) {
            return S::template concat<C>(x, starts);
          } else {
            alignas(64) uint32_t lane_idx[L];
            for (int64_t l = 0; l < L; ++l) lane_idx[l] = static_cast<uint32_t>(starts[l / C] + l % C);
            return S::gather(x, BU::load_aligned(lane_idx));
          }
        }
      };
      const float sum = dot(values + start * C, (end - start) * C, xv);
      y[i] = bias != nullptr ? sum + bias[i] : sum;
    }
  }

  /// bsr with r > 1 rows per block. A cycle of G = max(1, 32 / (r c)) blocks (NV vectors: G r c values,
  /// stored contiguously) holds, in lane f = g r c + i c + e, partial g c + e of row i of the block row;
  /// the inputs are gathered through a per-call lane pattern (block g of the vector's first block, column
  /// e). A last, partial cycle uses masked lanes.
  template <class V, class I, int64_t NV>
  static void matvec_bsr_blocks(const SparseWeight& w, const float* x, const float* bias, float* y, int64_t row0,
                                int64_t row1) {
    constexpr int64_t kCycle = NV * L;
    const V* values = static_cast<const V*>(w.values);
    const I* idx = static_cast<const I*>(w.indices);
    const int64_t r = w.block_rows, c = w.block_cols, rc = r * c, blocks = w.nnz / rc;
    const int64_t last = w.cols / c - 1, g_per = kCycle / rc, parts = g_per * c;
    const uint32_t last32 = static_cast<uint32_t>(last);
    // Per vector v: its first block (in the cycle), and per lane the block offset from it and the column.
    int64_t first_block[NV];
    alignas(64) uint32_t gpat[NV][L], epat[NV][L];
    for (int64_t v = 0; v < NV; ++v) {
      first_block[v] = v * L / rc;
      for (int64_t l = 0; l < L; ++l) {
        const int64_t f = v * L + l;
        gpat[v][l] = static_cast<uint32_t>(f / rc - first_block[v]);
        epat[v][l] = static_cast<uint32_t>(f % c);
      }
    }
    const BU cvec(static_cast<uint32_t>(c));
    // The inputs of vector v of the cycle starting at block k, whose blocks k .. k + nblocks - 1 exist.
    auto inputs = [&](int64_t v, int64_t k, int64_t nblocks) -> BF {
      const int64_t kb = k + first_block[v];
      if (c >= L) {  // the vector lies inside one block row segment: contiguous inputs
        return BF::load_unaligned(x + S::column(idx, kb, last) * c + (v * L) % c);
      }
      if (c == 1 && r >= L) return BF(x[S::column(idx, kb, last)]);  // one block column: a broadcast
      if (c == 1 && 2 * r == L) {                                        // two: two half broadcasts
        const float a = x[S::column(idx, kb, last)];
        return S::two_runs(a, nblocks - first_block[v] >= 2 ? x[S::column(idx, kb + 1, last)] : a);
      }
      BU cols;
      if (kb + L <= blocks) {  // L indices from the vector's first block on (lanes past its blocks unused)
        cols = S::load_columns(idx + kb, last32);
      } else {                 // near the end of the part: only the blocks that exist
        I tmp[L] = {};
        const int64_t have = nblocks - first_block[v];
        for (int64_t j = 0; j < have && j < L; ++j) tmp[j] = idx[kb + j];
        cols = S::load_columns(tmp, last32);
      }
      const BU lane_cols = S::permute(cols, BU::load_aligned(gpat[v]));
      return S::gather(x, lane_cols * cvec + BU::load_aligned(epat[v]));
    };
    for (int64_t br = row0 / r; br < row1 / r; ++br) {
      const int64_t start = S::clamp(S::index_at(w.offsets, w.offsets_dtype, br), 0, blocks);
      const int64_t end = S::clamp(S::index_at(w.offsets, w.offsets_dtype, br + 1), start, blocks);
      BF acc[NV];
      for (int64_t v = 0; v < NV; ++v) acc[v] = BF(0.0f);
      int64_t k = start;
      for (; k + g_per <= end; k += g_per) {
        const V* vals = values + k * rc;
        S::prefetch_ahead(vals, kCycle * static_cast<int64_t>(sizeof(V)));
        unroll<NV>([&](auto v) { acc[v] = acc[v] + S::mul(S::load(vals + v * L), inputs(v, k, g_per)); });
      }
      if (k < end) {
        const V* vals = values + k * rc;
        const int64_t lanes = (end - k) * rc;  // values of the blocks left
        unroll<NV>([&](auto v) {
          const int64_t valid = lanes - v * L;
          if (valid <= 0) return;
          const BF vv = valid >= L ? S::load(vals + v * L) : S::load_partial(vals + v * L, valid);
          acc[v] = xsimd::select(S::lanes_below(valid >= L ? L : valid), acc[v] + S::mul(vv, inputs(v, k, end - k)), acc[v]);
        });
      }
      alignas(64) float mem[kCycle];
      for (int64_t v = 0; v < NV; ++v) acc[v].store_aligned(mem + v * L);
      for (int64_t ii = 0; ii < r; ++ii) {
        float p[kParts];
        for (int64_t j = 0; j < parts; ++j) p[j] = mem[(j / c) * rc + ii * c + j % c];
        y[br * r + ii] = finish(p, parts, bias, br * r + ii);
      }
    }
  }

  template <class V>
  static void matvec_bsr(const SparseWeight& w, const float* x, const float* bias, float* y, int64_t row0,
                         int64_t row1, float*) {
    with_index(w.indices_dtype, [&](auto tag) {
      using I = decltype(tag);
      if (w.block_rows == 1) {
        switch (w.block_cols) {
          case 1: matvec_bsr_rows<V, I, 1>(w, x, bias, y, row0, row1); break;
          case 2: matvec_bsr_rows<V, I, 2>(w, x, bias, y, row0, row1); break;
          case 4: matvec_bsr_rows<V, I, 4>(w, x, bias, y, row0, row1); break;
          case 8: matvec_bsr_rows<V, I, 8>(w, x, bias, y, row0, row1); break;
          default: matvec_bsr_rows<V, I, 16>(w, x, bias, y, row0, row1); break;
        }
      } else {
        switch (w.block_rows * w.block_cols <= 32 ? 32 : w.block_rows * w.block_cols) {
          case 32: matvec_bsr_blocks<V, I, 32 / L>(w, x, bias, y, row0, row1); break;
          case 64: matvec_bsr_blocks<V, I, 64 / L>(w, x, bias, y, row0, row1); break;
          case 128: matvec_bsr_blocks<V, I, 128 / L>(w, x, bias, y, row0, row1); break;
          default: matvec_bsr_blocks<V, I, 256 / L>(w, x, bias, y, row0, row1); break;
        }
      }
    });
  }

  // ---- batch >= 2 -----------------------------------------------------------------------------------

  /// One output row over NV vectors of lanes: acc = sum of value * xt[col] in term order, then + bias.
  template <int NV, class V, class Terms>
  static void row_pass(Terms&& terms, const float* xt, int64_t ldxt, const float* bias_i, float* out) {
    BF acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = BF(0.0f);
    terms([&](const V* vp, int64_t col) {
      const BF wv(S::value(vp));
      const float* xr = xt + col * ldxt;
      for (int v = 0; v < NV; ++v) acc[v] = acc[v] + S::mul(wv, BF::load_aligned(xr + v * L));
    });
    for (int v = 0; v < NV; ++v) {
      const BF r = bias_i != nullptr ? acc[v] + BF(*bias_i) : acc[v];
      r.store_aligned(out + v * L);
    }
  }

  /// Rows [row0, row1) in tiles of 16: rows(i0, n, tile) writes lanes [0, lanes) of tile rows 0..n-1,
  /// which are then transposed into y.
  template <class Rows>
  static void tiles(int64_t batch, int64_t ldxt, float* y, int64_t ldy, int64_t row0, int64_t row1, float* tile,
                    Rows&& rows) {
    for (int64_t i0 = row0; i0 < row1; i0 += kTileRows) {
      const int64_t n = S::imin(kTileRows, row1 - i0);
      rows(i0, n, tile);
      for (int64_t b = 0; b < batch; ++b) {
        float* yb = y + b * ldy + i0;
        for (int64_t ii = 0; ii < n; ++ii) yb[ii] = tile[ii * ldxt + b];
      }
    }
  }

  /// Every output row of a one-row layout: `row_terms(i)` gives the term visitor of row i.
  template <class V, class RowTerms>
  static void matmul_rows(const float* xt, int64_t ldxt, int64_t batch, const float* bias, float* y, int64_t ldy,
                          int64_t row0, int64_t row1, float* tile, RowTerms&& row_terms) {
    const int64_t lanes = (batch + L - 1) / L * L;
    tiles(batch, ldxt, y, ldy, row0, row1, tile, [&](int64_t i0, int64_t n, float* t) {
      for (int64_t ii = 0; ii < n; ++ii) {
        const int64_t i = i0 + ii;
        auto terms = row_terms(i);
        const float* bias_i = bias != nullptr ? bias + i : nullptr;
        for (int64_t b0 = 0; b0 < lanes; b0 += 4 * L) {
          float* out = t + ii * ldxt + b0;
          switch (S::imin(4, (lanes - b0) / L)) {
            case 4: row_pass<4, V>(terms, xt + b0, ldxt, bias_i, out); break;
            case 3: row_pass<3, V>(terms, xt + b0, ldxt, bias_i, out); break;
            case 2: row_pass<2, V>(terms, xt + b0, ldxt, bias_i, out); break;
            default: row_pass<1, V>(terms, xt + b0, ldxt, bias_i, out); break;
          }
        }
      }
    });
  }

  template <class V>
  static void matmul_bits(const SparseWeight& w, const float* xt, int64_t ldxt, int64_t batch, const float* bias,
                          float* y, int64_t ldy, int64_t row0, int64_t row1, float* scratch) {
    const V* values = static_cast<const V*>(w.values);
    const int64_t row_bytes = (w.cols + 7) / 8;
    const bool nm = w.layout == SparseLayout::nm;
    const int64_t slots = nm ? w.cols / w.m * w.n : 0;
    matmul_rows<V>(xt, ldxt, batch, bias, y, ldy, row0, row1, scratch, [&](int64_t i) {
      const uint8_t* row = w.bitmask + i * row_bytes;
      int64_t start, avail;
      if (nm) {
        start = i * slots;
        avail = slots;
      } else {
        start = S::clamp(S::index_at(w.offsets, DType::i64, i), 0, w.nnz);
        avail = w.nnz - start;
      }
      const int64_t cols = w.cols;
      return [=](auto&& f) {
        int64_t t = 0;
        for (int64_t c0 = 0; c0 < cols && t < avail; c0 += 64) {
          uint64_t word = 0;
          const int64_t nbytes = S::imin(8, (cols - c0 + 7) / 8);
          std::memcpy(&word, row + c0 / 8, static_cast<size_t>(nbytes));
          if (cols - c0 < 64) word &= (uint64_t{1} << (cols - c0)) - 1;
          for (; word != 0 && t < avail; word &= word - 1, ++t) {
            f(values + start + t, c0 + __builtin_ctzll(word));
          }
        }
      };
    });
  }

  template <class V>
  static void matmul_csr(const SparseWeight& w, const float* xt, int64_t ldxt, int64_t batch, const float* bias,
                         float* y, int64_t ldy, int64_t row0, int64_t row1, float* scratch) {
    const V* values = static_cast<const V*>(w.values);
    const int64_t last = w.cols - 1;
    with_index(w.indices_dtype, [&](auto tag) {
      using I = decltype(tag);
      const I* idx = static_cast<const I*>(w.indices);
      matmul_rows<V>(xt, ldxt, batch, bias, y, ldy, row0, row1, scratch, [&](int64_t i) {
        const int64_t start = S::clamp(S::index_at(w.offsets, w.offsets_dtype, i), 0, w.nnz);
        const int64_t end = S::clamp(S::index_at(w.offsets, w.offsets_dtype, i + 1), start, w.nnz);
        return [=](auto&& f) {
          for (int64_t k = start; k < end; ++k) f(values + k, S::column(idx, k, last));
        };
      });
    });
  }

  /// bsr block row of R rows over NV vectors of lanes: each input row is loaded once for the R rows.
  template <int R, int NV, class V, class I>
  static void block_pass(const V* values, const I* idx, int64_t c, int64_t last, int64_t start, int64_t end,
                         const float* xt, int64_t ldxt, const float* bias, float* out) {
    BF acc[R][NV];
    for (int ii = 0; ii < R; ++ii) {
      for (int v = 0; v < NV; ++v) acc[ii][v] = BF(0.0f);
    }
    for (int64_t k = start; k < end; ++k) {
      const int64_t col0 = S::column(idx, k, last) * c;
      const V* vals = values + k * R * c;
      for (int64_t e = 0; e < c; ++e) {
        const float* xr = xt + (col0 + e) * ldxt;
        BF xv[NV];
        for (int v = 0; v < NV; ++v) xv[v] = BF::load_aligned(xr + v * L);
        for (int ii = 0; ii < R; ++ii) {
          const BF wv(S::value(vals + ii * c + e));
          for (int v = 0; v < NV; ++v) acc[ii][v] = acc[ii][v] + S::mul(wv, xv[v]);
        }
      }
    }
    for (int ii = 0; ii < R; ++ii) {
      for (int v = 0; v < NV; ++v) {
        const BF r = bias != nullptr ? acc[ii][v] + BF(bias[ii]) : acc[ii][v];
        r.store_aligned(out + ii * ldxt + v * L);
      }
    }
  }

  template <int R, class V, class I>
  static void block_rows(const SparseWeight& w, const float* xt, int64_t ldxt, int64_t batch, const float* bias,
                         float* y, int64_t ldy, int64_t row0, int64_t row1, float* tile) {
    constexpr int kMaxNV = 16 / R < 1 ? 1 : 16 / R > 4 ? 4 : 16 / R;
    const V* values = static_cast<const V*>(w.values);
    const I* idx = static_cast<const I*>(w.indices);
    const int64_t c = w.block_cols, blocks = w.nnz / (R * c), last = w.cols / c - 1;
    const int64_t lanes = (batch + L - 1) / L * L;
    tiles(batch, ldxt, y, ldy, row0, row1, tile, [&](int64_t i0, int64_t n, float* t) {
      for (int64_t ii = 0; ii < n; ii += R) {
        const int64_t br = (i0 + ii) / R;
        const int64_t start = S::clamp(S::index_at(w.offsets, w.offsets_dtype, br), 0, blocks);
        const int64_t end = S::clamp(S::index_at(w.offsets, w.offsets_dtype, br + 1), start, blocks);
        const float* b = bias != nullptr ? bias + br * R : nullptr;
        for (int64_t b0 = 0; b0 < lanes; b0 += kMaxNV * L) {
          float* out = t + ii * ldxt + b0;
          const int64_t nv = S::imin(kMaxNV, (lanes - b0) / L);
          if (nv == kMaxNV) {
            block_pass<R, kMaxNV, V, I>(values, idx, c, last, start, end, xt + b0, ldxt, b, out);
          } else {
            for (int64_t v = 0; v < nv; ++v) {
              block_pass<R, 1, V, I>(values, idx, c, last, start, end, xt + b0 + v * L, ldxt, b, out + v * L);
            }
          }
        }
      }
    });
  }

  template <class V>
  static void matmul_bsr(const SparseWeight& w, const float* xt, int64_t ldxt, int64_t batch, const float* bias,
                         float* y, int64_t ldy, int64_t row0, int64_t row1, float* scratch) {
    const V* values = static_cast<const V*>(w.values);
    with_index(w.indices_dtype, [&](auto tag) {
      using I = decltype(tag);
      const I* idx = static_cast<const I*>(w.indices);
      const int64_t c = w.block_cols, last = w.cols / c - 1;
      switch (w.block_rows) {
        case 1: {
          const int64_t blocks = w.nnz / c;
          matmul_rows<V>(xt, ldxt, batch, bias, y, ldy, row0, row1, scratch, [&](int64_t i) {
            const int64_t start = S::clamp(S::index_at(w.offsets, w.offsets_dtype, i), 0, blocks);
            const int64_t end = S::clamp(S::index_at(w.offsets, w.offsets_dtype, i + 1), start, blocks);
            return [=](auto&& f) {
              for (int64_t k = start; k < end; ++k) {
                const int64_t col0 = S::column(idx, k, last) * c;
                for (int64_t e = 0; e < c; ++e) f(values + k * c + e, col0 + e);
              }
            };
          });
          break;
        }
        case 2: block_rows<2, V, I>(w, xt, ldxt, batch, bias, y, ldy, row0, row1, scratch); break;
        case 4: block_rows<4, V, I>(w, xt, ldxt, batch, bias, y, ldy, row0, row1, scratch); break;
        case 8: block_rows<8, V, I>(w, xt, ldxt, batch, bias, y, ldy, row0, row1, scratch); break;
        default: block_rows<16, V, I>(w, xt, ldxt, batch, bias, y, ldy, row0, row1, scratch); break;
      }
    });
  }

 private:
  template <class V>
  static void set(KernelTable& t, int vi) {
    t.sparse_matvec[static_cast<int>(SparseLayout::nm)][vi] = &matvec_nm<V>;
    t.sparse_matvec[static_cast<int>(SparseLayout::bitmask)][vi] = &matvec_bitmask<V>;
    t.sparse_matvec[static_cast<int>(SparseLayout::csr)][vi] = &matvec_csr<V>;
    t.sparse_matvec[static_cast<int>(SparseLayout::bsr)][vi] = &matvec_bsr<V>;
    t.sparse_matmul[static_cast<int>(SparseLayout::nm)][vi] = &matmul_bits<V>;
    t.sparse_matmul[static_cast<int>(SparseLayout::bitmask)][vi] = &matmul_bits<V>;
    t.sparse_matmul[static_cast<int>(SparseLayout::csr)][vi] = &matmul_csr<V>;
    t.sparse_matmul[static_cast<int>(SparseLayout::bsr)][vi] = &matmul_bsr<V>;
  }
};

template <class Arch>
void SparseLinear<Arch>::fill(KernelTable& t) {
  set<float>(t, 0);
  set<Half>(t, 1);
  set<BFloat16>(t, 2);
}

SPARSITY_EXTERN_KERNEL_FAMILY(SparseLinear)

}  // namespace sparsity::kernels

// Flat-tile kernels, scalar half (baseline flags): tile flags and in-tile choice to mask bits by table, and
// the sampled-bracket threshold over the tile keys.
#include "kernels/flat_tiles/flat_tiles.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "base/scratch.hpp"

namespace sparsity::kernels {

namespace {

// kSpread<bc>[x]: the 8 tile flags of byte x, each repeated bc times (bc = 16: the low 4 flags only).
struct SpreadTable {
  uint64_t v[256];
};

constexpr SpreadTable make_spread(unsigned bc) {
  SpreadTable s{};
  const uint64_t ones = (uint64_t{1} << bc) - 1;  // bc <= 16
  for (unsigned x = 0; x < 256; ++x) {
    uint64_t o = 0;
    for (unsigned b = 0; b < 8 && b * bc < 64; ++b) {
      if ((x >> b) & 1u) o |= ones << (b * bc);
    }
    s.v[x] = o;
  }
  return s;
}

constexpr SpreadTable kSpread2 = make_spread(2);
constexpr SpreadTable kSpread4 = make_spread(4);
constexpr SpreadTable kSpread8 = make_spread(8);
constexpr SpreadTable kSpread16 = make_spread(16);

}  // namespace

void flat_expand_bits(const uint64_t* selected, size_t e0, size_t ne, size_t bc, const uint8_t* pruned_bits,
                      uint8_t* bits) {
  const SpreadTable* spread = bc == 2 ? &kSpread2 : bc == 4 ? &kSpread4 : bc == 8 ? &kSpread8 : &kSpread16;
  const size_t per_word = 64 / bc;  // tiles per 64 elements
  const uint64_t flags_mask = per_word >= 64 ? ~uint64_t{0} : (uint64_t{1} << per_word) - 1;
  for (size_t w = 0; w * 64 < ne; ++w) {
    const size_t first = w * per_word;
    const uint64_t flags = (selected[first / 64] >> (first % 64)) & flags_mask;
    uint64_t expanded = flags;
    if (bc > 1) {
      expanded = 0;
      for (size_t k = 0; k * 8 < per_word; ++k)
        expanded |= spread->v[(flags >> (8 * k)) & 0xffu] << (8 * bc * k);
    }
    const size_t count = std::min<size_t>(64, ne - w * 64);
    const size_t nbytes = (count + 7) / 8;
    const size_t byte0 = e0 / 8 + w * 8;
    uint64_t pruned = ~uint64_t{0};
    if (pruned_bits != nullptr) {
      pruned = 0;
      std::memcpy(&pruned, pruned_bits + byte0, nbytes);
    }
    uint64_t out = ~(expanded & pruned);
    if (count < 64) out &= (uint64_t{1} << count) - 1;
    std::memcpy(bits + byte0, &out, nbytes);  // little-endian: bit i of the word is bit i % 8 of byte i / 8
  }
}

namespace {

// The index after the rank-th (1-based) key equal to `key`.
size_t cut_at_tie(const uint32_t* keys, size_t n, uint32_t key, size_t rank) {
  for (size_t i = 0; i < n; ++i) {
    rank -= static_cast<size_t>(keys[i] == key);
    if (rank == 0) return i + 1;
  }
  return n;
}

// Sorts n keys (LSD radix, three 11-bit digits) using `tmp` (n keys).
void sort_keys(uint32_t* a, uint32_t* tmp, size_t n) {
  uint32_t* from = a;
  uint32_t* to = tmp;
  for (int shift = 0; shift < 32; shift += 11) {
    size_t count[2048] = {};
    for (size_t i = 0; i < n; ++i) ++count[(from[i] >> shift) & 2047u];
    size_t sum = 0;
    for (size_t& c : count) {
      const size_t here = c;
      c = sum;
      sum += here;
    }
    for (size_t i = 0; i < n; ++i) to[count[(from[i] >> shift) & 2047u]++] = from[i];
    std::swap(from, to);
  }
  if (from != a) std::copy(from, from + n, a);
}

}  // namespace

KeyThreshold<uint32_t> flat_threshold(const uint32_t* keys, size_t n, size_t k, uint32_t* taken) {
  constexpr size_t kSample = kFlatSample;
  if (k == 0 || k >= n || n < 16 * kSample) return select_threshold_u32(keys, n, k);
  using ::sparsity::detail::Scratch;
  thread_local Scratch<uint32_t> sample_buffer, candidate_buffer;
  // A sorted strided sample: the k-th key lies between its order statistics r - d and r + d but for a
  // vanishing chance (d is 5 standard deviations of the k-th key's place in the sample).
  uint32_t* sample = sample_buffer.get(2 * kSample);
  const size_t stride = n / kSample;
  if (taken != nullptr) {
    std::copy(taken, taken + kSample, sample);
  } else {
    for (size_t i = 0; i < kSample; ++i) sample[i] = keys[i * stride + stride / 2];
  }
  sort_keys(sample, sample + kSample, kSample);
  const double q = static_cast<double>(k) / static_cast<double>(n);
  const size_t spread = 16 + static_cast<size_t>(5.0 * std::sqrt(static_cast<double>(kSample) * q * (1.0 - q)));
  const size_t r = std::min(kSample - 1, static_cast<size_t>(q * static_cast<double>(kSample)));
  const size_t lo_at = r > spread ? r - spread : 0, hi_at = std::min(kSample - 1, r + spread);
  // A key held by many tiles near the k-th place (e.g. the zero score of the tiles a sticky mask already
  // prunes) would fill the bracket: one counting pass confirms it.
  for (const size_t at : {lo_at, r, hi_at}) {
    const uint32_t v = sample[at];
    const auto run = std::equal_range(sample, sample + kSample, v);
    if (static_cast<size_t>(run.second - run.first) < kSample / 64) continue;
    size_t below = 0, ties = 0;
    for (size_t b = 0; b < n; b += size_t{1} << 16) {
      uint32_t below32 = 0, ties32 = 0;  // 32-bit counters over blocks: the loop vectorises
      for (size_t i = b, e = std::min(n, b + (size_t{1} << 16)); i < e; ++i) {
        below32 += keys[i] < v;
        ties32 += keys[i] == v;
      }
      below += below32;
      ties += ties32;
    }
    if (below >= k || k > below + ties) return select_threshold_u32(keys, n, k);
    const size_t rank = k - below;  // ties taken, the lowest indices first
    return {v, rank >= ties ? n : cut_at_tie(keys, n, v, rank)};
  }
  const uint32_t lo = lo_at == 0 ? 0u : sample[lo_at];
  const uint32_t hi = hi_at == kSample - 1 ? ~0u : sample[hi_at];
  const size_t cap = n / 16;
  uint32_t* candidates = candidate_buffer.get(cap + 1);
  size_t below = 0;
  const size_t m = active_table().flat_bracket(keys, n, lo, hi, nullptr, candidates, cap, &below, nullptr);
  if (m > cap || below >= k || k > below + m) return select_threshold_u32(keys, n, k);
  // The (k - below)-th smallest candidate is the threshold; every key equal to it is a candidate.
  const KeyThreshold<uint32_t> inner = select_threshold_u32(candidates, m, k - below);
  size_t less = 0, ties = 0;
  for (size_t i = 0; i < m; ++i) {
    less += candidates[i] < inner.key;
    ties += candidates[i] == inner.key;
  }
  const size_t rank = k - below - less;  // ties taken, the lowest indices first
  return {inner.key, rank >= ties ? n : cut_at_tie(keys, n, inner.key, rank)};
}

}  // namespace sparsity::kernels

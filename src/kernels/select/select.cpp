// Radix select over order keys made by an ISA's key kernel: threshold, keys below it, ties by index.
#include <algorithm>
#include <memory>

#include "kernels/select/select.hpp"
#include "util/scratch.hpp"

namespace sparsity::kernels {

namespace {

using ::sparsity::detail::grow_scratch;

template <class K>
struct SelectBuffers {
  std::unique_ptr<K[]> keys, candidates;
  size_t keys_cap = 0, candidates_cap = 0;
};

template <class K>
void select_with_keys(const K* bits, size_t n, size_t k, uint8_t* selected,
                      void (*make_keys)(const K*, size_t, K*)) {
  if (k >= n) {
    std::fill(selected, selected + n, uint8_t{1});
    return;
  }
  if (k == 0) {
    std::fill(selected, selected + n, uint8_t{0});
    return;
  }
  thread_local SelectBuffers<K> buffers;
  K* keys = grow_scratch(buffers.keys, buffers.keys_cap, n);
  make_keys(bits, n, keys);
  // Most significant 11-bit digit first: `rank` is the 1-based rank of the threshold among the
  // candidates, the keys that share the digits found so far; only they are kept for the next pass
  // (and not even copied when every candidate shares the digit, e.g. many equal scores).
  constexpr int kDigitBits = 11;
  constexpr int kBits = 8 * sizeof(K);
  constexpr size_t kBuckets = size_t{1} << kDigitBits;
  // Four interleaved histograms: runs of equal keys (e.g. the zero scores of masked blocks) would
  // otherwise serialise on one counter's load-add-store chain.
  size_t hist4[4][kBuckets];
  size_t hist[kBuckets];
  const K* cand = keys;
  size_t count = n;
  K prefix = 0;
  size_t rank = k;
  for (int shift = kBits - kDigitBits; shift > -kDigitBits; shift -= kDigitBits) {
    const int s = std::max(shift, 0);
    const int width = shift >= 0 ? kDigitBits : kDigitBits + shift;
    const K digit_mask = static_cast<K>((K{1} << width) - 1);
    const size_t buckets = size_t{1} << width;
    for (auto& h : hist4) std::fill(h, h + buckets, size_t{0});
    size_t i = 0;
    for (; i + 4 <= count; i += 4) {
      ++hist4[0][static_cast<size_t>((cand[i] >> s) & digit_mask)];
      ++hist4[1][static_cast<size_t>((cand[i + 1] >> s) & digit_mask)];
      ++hist4[2][static_cast<size_t>((cand[i + 2] >> s) & digit_mask)];
      ++hist4[3][static_cast<size_t>((cand[i + 3] >> s) & digit_mask)];
    }
    for (; i < count; ++i) ++hist4[0][static_cast<size_t>((cand[i] >> s) & digit_mask)];
    for (size_t b = 0; b < buckets; ++b) hist[b] = hist4[0][b] + hist4[1][b] + hist4[2][b] + hist4[3][b];
    size_t d = 0;
    for (; hist[d] < rank; ++d) rank -= hist[d];
    prefix = static_cast<K>(prefix | (static_cast<K>(d) << s));
    if (s == 0) break;
    if (hist[d] == count) continue;  // every candidate survives: keep the array as it is
    // Compact the survivors without branches (one slot of slack for the last speculative write; in
    // place once `cand` is the candidate buffer: the write position never passes the read position).
    K* next = cand == keys ? grow_scratch(buffers.candidates, buffers.candidates_cap, hist[d] + 1)
                           : const_cast<K*>(cand);
    size_t m = 0;
    for (size_t i = 0; i < count; ++i) {
      const K v = cand[i];
      next[m] = v;
      m += static_cast<size_t>((v >> s) & digit_mask) == d;
    }
    cand = next;
    count = m;
  }
  const K threshold = prefix;
  // `rank` keys equal to the threshold complete the k: the lowest indices first (without branches on
  // the keys, whose ties come in no predictable pattern); after the last tie, only keys below it.
  // Whole blocks whose ties all fit are taken with a plain `<=` (a loop the compiler vectorises).
  constexpr size_t kBlock = 4096;
  size_t i = 0;
  while (i < n && rank > 0) {
    const size_t end = std::min(n, i + kBlock);
    size_t ties = 0;
    for (size_t j = i; j < end; ++j) ties += static_cast<size_t>(keys[j] == threshold);
    if (ties > rank) break;
    for (size_t j = i; j < end; ++j) selected[j] = static_cast<uint8_t>(keys[j] <= threshold);
    rank -= ties;
    i = end;
  }
  for (; i < n && rank > 0; ++i) {
    const K v = keys[i];
    const bool tie = v == threshold;
    selected[i] = static_cast<uint8_t>((v < threshold) | tie);
    rank -= static_cast<size_t>(tie);
  }
  for (; i < n; ++i) selected[i] = static_cast<uint8_t>(keys[i] < threshold);
}

}  // namespace

void select_with_keys_u32(const uint32_t* bits, size_t n, size_t k, uint8_t* selected,
                          void (*make_keys)(const uint32_t*, size_t, uint32_t*)) {
  select_with_keys(bits, n, k, selected, make_keys);
}

void select_with_keys_u64(const uint64_t* bits, size_t n, size_t k, uint8_t* selected,
                          void (*make_keys)(const uint64_t*, size_t, uint64_t*)) {
  select_with_keys(bits, n, k, selected, make_keys);
}

}  // namespace sparsity::kernels

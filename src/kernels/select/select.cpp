// Radix select over order keys (made by an ISA's key kernel, or given): threshold, keys below it, ties by
// index.
#include "kernels/select/select.hpp"

#include <algorithm>
#include <memory>

#include "base/scratch.hpp"

namespace sparsity::kernels {

namespace {

using ::sparsity::detail::Scratch;

// The cut of a threshold: past the index of the rank-th key equal to it (n when every tie is taken).
template <class K>
size_t cut_after_ties(const K* keys, size_t n, K threshold, size_t rank, size_t ties) {
  if (rank >= ties) return n;
  constexpr size_t kBlock = 4096;
  size_t i = 0;
  for (;;) {
    const size_t end = std::min(n, i + kBlock);
    size_t t = 0;
    for (size_t j = i; j < end; ++j) t += static_cast<size_t>(keys[j] == threshold);  // vectorised
    if (t >= rank) break;
    rank -= t;
    i = end;
  }
  for (;; ++i) {
    rank -= static_cast<size_t>(keys[i] == threshold);
    if (rank == 0) return i + 1;
  }
}

// A threshold shared by many keys (e.g. the zero scores of the tiles a sticky mask already prunes) is
// found with one counting pass: a strided sample that shows a repeated key at the k-th place proposes
// it, and the counts of keys below and at it confirm it. Returns false when there is no such key.
template <class K>
bool tied_threshold(const K* keys, size_t n, size_t k, KeyThreshold<K>* out) {
  constexpr size_t kSample = 4096;
  constexpr size_t kWindow = 128;  // ~4 standard deviations of the k-th key's place in the sample
  if (n < 16 * kSample) return false;
  K sample[kSample];
  const size_t stride = n / kSample;
  for (size_t i = 0; i < kSample; ++i) sample[i] = keys[i * stride];
  std::sort(sample, sample + kSample);
  const size_t r =
      std::min(kSample - 1, static_cast<size_t>(static_cast<double>(k) / static_cast<double>(n) * kSample));
  // The longest run of one key that reaches into the window around the k-th place.
  const size_t lo = r > kWindow ? r - kWindow : 0, hi = std::min(kSample, r + kWindow + 1);
  K candidate = sample[lo];
  size_t best = 0;
  for (size_t i = lo; i < hi;) {
    size_t a = i, b = i;
    while (a > 0 && sample[a - 1] == sample[i]) --a;
    while (b < kSample && sample[b] == sample[i]) ++b;
    if (b - a > best) {
      best = b - a;
      candidate = sample[i];
    }
    i = b;
  }
  if (best < kSample / 64) return false;  // no key holds ~1.5% of the sample: a radix select is cheaper
  size_t below = 0, at = 0;
  for (size_t i = 0; i < n; ++i) {  // vectorised
    below += static_cast<size_t>(keys[i] < candidate);
    at += static_cast<size_t>(keys[i] == candidate);
  }
  if (below >= k || below + at < k) return false;
  out->key = candidate;
  out->cut = cut_after_ties(keys, n, candidate, k - below, at);
  return true;
}

// The threshold of the k smallest of n order keys (0 < k < n): `keys` itself is only read. Counters are
// `C` (32 bits when n fits, so the four histograms stay in L1).
template <class K, class C>
KeyThreshold<K> radix_threshold(const K* keys, size_t n, size_t k) {
  KeyThreshold<K> tied{};
  if (tied_threshold(keys, n, k, &tied)) return tied;
  thread_local Scratch<K> candidates;
  // Most significant 11-bit digit first: `rank` is the 1-based rank of the threshold among the
  // candidates, the keys that share the digits found so far; only they are kept for the next pass
  // (and not even copied when every candidate shares the digit, e.g. many equal scores).
  constexpr int kDigitBits = 11;
  constexpr int kBits = 8 * sizeof(K);
  constexpr size_t kBuckets = size_t{1} << kDigitBits;
  // Four interleaved histograms: runs of equal keys would otherwise serialise on one counter's
  // load-add-store chain.
  C hist4[4][kBuckets];
  size_t hist[kBuckets];
  const K* cand = keys;
  size_t count = n;
  K prefix = 0;
  size_t rank = k;
  size_t ties = 0;  // keys equal to the threshold
  for (int shift = kBits - kDigitBits; shift > -kDigitBits; shift -= kDigitBits) {
    const int s = std::max(shift, 0);
    const int width = shift >= 0 ? kDigitBits : kDigitBits + shift;
    const K digit_mask = static_cast<K>((K{1} << width) - 1);
    const size_t buckets = size_t{1} << width;
    for (auto& h : hist4) std::fill(h, h + buckets, C{0});
    size_t i = 0;
    for (; i + 4 <= count; i += 4) {
      ++hist4[0][static_cast<size_t>((cand[i] >> s) & digit_mask)];
      ++hist4[1][static_cast<size_t>((cand[i + 1] >> s) & digit_mask)];
      ++hist4[2][static_cast<size_t>((cand[i + 2] >> s) & digit_mask)];
      ++hist4[3][static_cast<size_t>((cand[i + 3] >> s) & digit_mask)];
    }
    for (; i < count; ++i) ++hist4[0][static_cast<size_t>((cand[i] >> s) & digit_mask)];
    for (size_t b = 0; b < buckets; ++b) {
      hist[b] = size_t{hist4[0][b]} + size_t{hist4[1][b]} + size_t{hist4[2][b]} + size_t{hist4[3][b]};
    }
    size_t d = 0;
    for (; hist[d] < rank; ++d) rank -= hist[d];
    prefix = static_cast<K>(prefix | (static_cast<K>(d) << s));
    ties = hist[d];
    if (s == 0) break;
    if (hist[d] == count) continue;  // every candidate survives: keep the array as it is
    // Compact the survivors (one slot of slack for the branch-free loop's last speculative write; in
    // place once `cand` is the candidate buffer: the write position never passes the read position).
    K* next = cand == keys ? candidates.get(hist[d] + 1)
                           : const_cast<K*>(cand);
    size_t m = 0;
    if (hist[d] <= count / 16) {
      // Few survivors: a branch that is almost never taken beats a store per key.
      for (size_t j = 0; j < count; ++j) {
        const K v = cand[j];
        if (static_cast<size_t>((v >> s) & digit_mask) == d) next[m++] = v;
      }
    } else {
      for (size_t j = 0; j < count; ++j) {
        const K v = cand[j];
        next[m] = v;
        m += static_cast<size_t>((v >> s) & digit_mask) == d;
      }
    }
    cand = next;
    count = m;
  }
  // `rank` keys equal to the threshold complete the k, the lowest indices first.
  return {prefix, cut_after_ties(keys, n, prefix, rank, ties)};
}

template <class K>
KeyThreshold<K> radix_threshold(const K* keys, size_t n, size_t k) {
  return n <= 0xffffffffu ? radix_threshold<K, uint32_t>(keys, n, k) : radix_threshold<K, size_t>(keys, n, k);
}

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
  thread_local Scratch<K> key_buffer;
  K* keys = key_buffer.get(n);
  make_keys(bits, n, keys);
  const KeyThreshold<K> t = radix_threshold(keys, n, k);
  // Keys below the threshold, and the ties before the cut (loops the compiler vectorises).
  for (size_t i = 0; i < t.cut; ++i) selected[i] = static_cast<uint8_t>(keys[i] <= t.key);
  for (size_t i = t.cut; i < n; ++i) selected[i] = static_cast<uint8_t>(keys[i] < t.key);
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

KeyThreshold<uint32_t> select_threshold_u32(const uint32_t* keys, size_t n, size_t k) {
  if (k >= n) return {~uint32_t{0}, n};
  if (k == 0) return {0, 0};
  return radix_threshold(keys, n, k);
}

}  // namespace sparsity::kernels

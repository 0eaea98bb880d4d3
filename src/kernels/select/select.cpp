// Radix select over order keys made by an ISA's key kernel: threshold, keys below it, ties by index.
#include <algorithm>
#include <vector>

#include "kernels/select/select.hpp"

namespace sparsity::kernels {

namespace {

template <class K>
void select_with_keys(const K* bits, size_t n, size_t k, uint8_t* selected,
                      void (*make_keys)(const K*, size_t, K*)) {
  if (k >= n) {
    std::fill(selected, selected + n, uint8_t{1});
    return;
  }
  std::fill(selected, selected + n, uint8_t{0});
  if (k == 0) return;
  std::vector<K> keys(n);
  make_keys(bits, n, keys.data());
  // Most significant 11-bit digit first: `rank` is the 1-based rank of the threshold among the
  // candidates, the keys that share the digits found so far; only they are kept for the next pass.
  constexpr int kDigitBits = 11;
  constexpr int kBits = 8 * sizeof(K);
  std::vector<size_t> hist(size_t{1} << kDigitBits);
  std::vector<K> candidates;
  const K* cand = keys.data();
  size_t count = n;
  K prefix = 0;
  size_t rank = k;
  for (int shift = kBits - kDigitBits; shift > -kDigitBits; shift -= kDigitBits) {
    const int s = std::max(shift, 0);
    const int width = shift >= 0 ? kDigitBits : kDigitBits + shift;
    const K digit_mask = static_cast<K>((K{1} << width) - 1);
    std::fill(hist.begin(), hist.end(), size_t{0});
    for (size_t i = 0; i < count; ++i) ++hist[static_cast<size_t>((cand[i] >> s) & digit_mask)];
    size_t d = 0;
    for (; hist[d] < rank; ++d) rank -= hist[d];
    prefix = static_cast<K>(prefix | (static_cast<K>(d) << s));
    if (s == 0) break;
    std::vector<K> next;
    next.reserve(hist[d]);
    for (size_t i = 0; i < count; ++i) {
      if (static_cast<size_t>((cand[i] >> s) & digit_mask) == d) next.push_back(cand[i]);
    }
    candidates.swap(next);
    cand = candidates.data();
    count = candidates.size();
  }
  const K threshold = prefix;
  for (size_t i = 0; i < n; ++i) selected[i] = keys[i] < threshold;
  // `rank` keys equal to the threshold complete the k: the lowest indices first.
  for (size_t i = 0; i < n && rank > 0; ++i) {
    if (keys[i] == threshold) {
      selected[i] = 1;
      --rank;
    }
  }
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

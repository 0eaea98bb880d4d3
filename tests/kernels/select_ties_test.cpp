// k-smallest selection on large inputs full of ties, against a stable-sort oracle, for every ISA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "sparsity/kernels/kernels.hpp"

namespace sparsity::kernels {
namespace {

// Rank class of a score in the selection order: finite by value, then +inf, then NaN of any payload;
// -0.0 == +0.0 (the comparison of doubles already treats them as equal).
template <class T>
bool less_in_order(T a, T b) {
  const bool na = std::isnan(a), nb = std::isnan(b);
  if (na || nb) return !na && nb;
  return a < b;
}

// The oracle: a stable sort of the indices (ties keep index order); the first k of it are selected.
template <class T>
std::vector<size_t> stable_order(const std::vector<T>& s) {
  std::vector<size_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return less_in_order(s[a], s[b]); });
  return idx;
}

std::vector<uint8_t> first_k(const std::vector<size_t>& order, size_t k) {
  std::vector<uint8_t> sel(order.size(), 0);
  for (size_t i = 0; i < std::min(k, order.size()); ++i) sel[order[i]] = 1;
  return sel;
}

// Half the scores exactly zero (both signs, as masked blocks give), the rest drawn from few distinct
// values, with NaNs of different payloads and infinities.
template <class T>
std::vector<T> tied_scores(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<T> s(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t r = rng();
    if (r % 2 == 0) {
      s[i] = (r & 4) ? T(-0.0) : T(0.0);
    } else if (r % 97 == 1) {
      s[i] = std::numeric_limits<T>::infinity();
    } else if (r % 89 == 1) {
      s[i] = -std::numeric_limits<T>::infinity();
    } else if (r % 83 == 1) {
      T nan = std::numeric_limits<T>::quiet_NaN();
      if constexpr (sizeof(T) == 4) {
        uint32_t bits;
        std::memcpy(&bits, &nan, 4);
        bits |= (r >> 8) & 0x3fffffu;  // payload
        if (r & 0x40000000u) bits |= 0x80000000u;
        std::memcpy(&nan, &bits, 4);
      } else {
        uint64_t bits;
        std::memcpy(&bits, &nan, 8);
        bits |= static_cast<uint64_t>((r >> 8) & 0x3fffffu) << 20;
        if (r & 0x40000000u) bits |= uint64_t{1} << 63;
        std::memcpy(&nan, &bits, 8);
      }
      s[i] = nan;
    } else {
      s[i] = static_cast<T>(static_cast<int>((r >> 3) % 64) - 16) * T(0.25);  // 64 distinct values
    }
  }
  return s;
}

template <class T>
void check_many_ties(void (*select)(const T*, size_t, size_t, uint8_t*)) {
  const size_t n = size_t{1} << 20;
  const std::vector<T> s = tied_scores<T>(n, 20261123u);
  size_t zeros = 0, below = 0;
  for (T v : s) {
    zeros += v == T(0);
    below += v < T(0);
  }
  ASSERT_GT(zeros, n / 3);
  // k: inside the zero run, at its edges, everything but one, and the usual half.
  const std::vector<size_t> ks = {1, below, below + 1, below + zeros / 2, below + zeros, n / 2, n - 1, n};
  const std::vector<size_t> order = stable_order(s);
  for (const size_t k : ks) {
    const std::vector<uint8_t> want = first_k(order, k);
    for (const Isa isa : available_isas()) {
      ScopedIsaOverride force(isa);
      std::vector<uint8_t> got(n, 7);
      select(s.data(), n, k, got.data());
      EXPECT_TRUE(got == want) << "k=" << k << " isa=" << to_string(isa);
    }
  }
}

TEST(SelectTies, HalfZerosF32MatchesStableSort) { check_many_ties<float>(&select_k_smallest_f32); }

TEST(SelectTies, HalfZerosF64MatchesStableSort) { check_many_ties<double>(&select_k_smallest_f64); }

// Every score equal: the k lowest indices, at every ISA.
TEST(SelectTies, AllEqualTakesLowestIndices) {
  const size_t n = (size_t{1} << 20) + 3, k = 333333;
  const std::vector<float> s(n, 0.5f);
  for (const Isa isa : available_isas()) {
    ScopedIsaOverride force(isa);
    std::vector<uint8_t> got(n, 7);
    select_k_smallest_f32(s.data(), n, k, got.data());
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += got[i] != (i < k ? 1 : 0);
    EXPECT_EQ(bad, 0u) << to_string(isa);
  }
}

}  // namespace
}  // namespace sparsity::kernels

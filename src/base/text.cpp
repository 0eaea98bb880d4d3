// closest_names: bounded edit distance for "did you mean" hints.
#include "base/text.hpp"

#include <algorithm>

namespace sparsity::detail {
namespace {

// Levenshtein distance of a and b, or bound + 1 when it exceeds `bound` (banded, O(|a| * bound)).
size_t bounded_distance(std::string_view a, std::string_view b, size_t bound) {
  const size_t n = a.size(), m = b.size();
  if ((n > m ? n - m : m - n) > bound) return bound + 1;
  const size_t inf = bound + 1;
  std::vector<size_t> prev(m + 1, inf), cur(m + 1, inf);
  for (size_t j = 0; j <= std::min(m, bound); ++j) prev[j] = j;
  for (size_t i = 1; i <= n; ++i) {
    const size_t lo = i > bound ? i - bound : 0, hi = std::min(m, i + bound);
    std::fill(cur.begin(), cur.end(), inf);
    if (lo == 0) cur[0] = i;
    size_t row_min = cur[0];
    for (size_t j = std::max<size_t>(lo, 1); j <= hi; ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({sub, prev[j] + 1, cur[j - 1] + 1, inf});
      row_min = std::min(row_min, cur[j]);
    }
    if (row_min > bound) return inf;
    std::swap(prev, cur);
  }
  return std::min(prev[m], inf);
}

}  // namespace

std::vector<std::string> closest_names(std::string_view query, const std::vector<std::string>& candidates,
                                       size_t max) {
  const size_t bound = std::max<size_t>(1, query.size() / 3);
  std::vector<std::pair<size_t, size_t>> scored;  // (distance, index)
  for (size_t i = 0; i < candidates.size(); ++i) {
    const size_t d = bounded_distance(query, candidates[i], bound);
    if (d <= bound) scored.emplace_back(d, i);
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (size_t k = 0; k < scored.size() && out.size() < max; ++k) out.push_back(candidates[scored[k].second]);
  return out;
}

}  // namespace sparsity::detail

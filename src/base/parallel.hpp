// The one parallel loop: fixed pieces on OpenMP threads, so results never depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>

namespace sparsity::detail {

/// Below this much work (items x work_per_item) a loop runs on the calling thread.
constexpr int64_t kParallelMinWork = int64_t{1} << 16;

/// Calls f(piece, begin, end) over [0, count) split into at most `threads` pieces (piece = 0, 1, ... in
/// order) whose boundaries are multiples of `align` (the last piece ends at count). A caller whose result
/// depends only on each piece's own range gets the same result for every thread count; `piece` lets it
/// give each piece memory prepared beforehand (piece < threads). `f` must not throw when more than one
/// thread runs (an exception cannot leave an OpenMP region); with one piece it runs inline.
template <class F>
void parallel_pieces(int threads, int64_t count, int64_t work_per_item, int64_t align, F&& f) {
  if (threads > 1 && count * work_per_item >= kParallelMinWork && count >= 2 * align) {
    threads = static_cast<int>(std::min<int64_t>(threads, count / align));
  } else {
    threads = 1;
  }
  if (threads <= 1) {
    if (count > 0) f(0, int64_t{0}, count);
    return;
  }
  int64_t piece = (count + threads - 1) / threads;
  piece = (piece + align - 1) / align * align;
#ifdef SPARSITY_HAVE_OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
  for (int t = 0; t < threads; ++t) {
    const int64_t b = std::min<int64_t>(count, t * piece), e = std::min<int64_t>(count, b + piece);
    if (b < e) f(t, b, e);
  }
}

/// parallel_pieces without the piece index: f(begin, end).
///   parallel_for(threads, n, /*work_per_item=*/1, /*align=*/64, [&](int64_t b, int64_t e) { ... });
template <class F>
void parallel_for(int threads, int64_t count, int64_t work_per_item, int64_t align, F&& f) {
  parallel_pieces(threads, count, work_per_item, align, [&](int, int64_t b, int64_t e) { f(b, e); });
}

/// The sum of f(begin, end) over the pieces of parallel_for, for an integer T (exact for any split).
template <class T, class F>
T parallel_sum(int threads, int64_t count, int64_t work_per_item, int64_t align, F&& f) {
  T total{};
  parallel_for(threads, count, work_per_item, align, [&](int64_t b, int64_t e) {
    const T part = f(b, e);
#ifdef SPARSITY_HAVE_OPENMP
#pragma omp atomic
#endif
    total += part;
  });
  return total;
}

}  // namespace sparsity::detail

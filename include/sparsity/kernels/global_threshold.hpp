// GlobalThreshold: one pruning threshold over the tile scores of several tensors, found in streaming
// rounds with memory bounded by a candidate budget and a histogram, never all the scores at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

namespace sparsity::kernels {

/// One tensor of a global ranking: its tile (block) count and how many of its tiles may be pruned.
struct GlobalTensor {
  uint64_t tiles = 0;
  uint64_t min_pruned = 0;                                        ///< at least this many (min_sparsity)
  uint64_t max_pruned = std::numeric_limits<uint64_t>::max();  ///< at most this many (max_sparsity)
};

/// Splits `total` pruned tiles among tensors with one threshold: tensor t prunes
///   p_t = clamp(c_t(theta), min_pruned_t, max_pruned_t)
/// of its own smallest tiles, where c_t(theta) counts the tensor's scores before theta in the order of all
/// scores together (score, then tensor, then index; NaN above +inf, -0 == +0) and theta is the first
/// place where the p_t add up to `total`. Without bounds this is sorting every score together and
/// pruning the `total` smallest (torch's global_unstructured); a bounded tensor's share goes to the others
/// under the same threshold. Exact, and the same whatever order or chunking the scores come in.
///
/// Rounds: every tile score of every tensor is given to add() (tensors in any order, each in one or more
/// calls), then finish() ends the round; it returns true once the split is known, else the caller runs
/// another round over the same scores. Memory: the candidates of the current window (at most `budget`
/// scores, 8 bytes each) and, in a refinement round, one 65536-bucket histogram per tensor.
/// With sample() called first, the window sits around the estimated threshold and one round suffices
/// unless the sample misleads (then a histogram round narrows the window and a third round collects it).
///
///   GlobalThreshold g({{n0}, {n1, 0, n1 / 2}}, std::llround(0.5 * (n0 + n1)));
///   g.sample(0, s0, 4096); g.sample(1, s1, 4096);                 // optional, before the first round
///   do { g.add(0, scores0, n0); g.add(1, scores1, n1); } while (!g.finish());
///   prune(0, g.tiles_to_prune(0)); prune(1, g.tiles_to_prune(1));  // each tensor's own smallest
class GlobalThreshold {
 public:
  /// `total` in [sum of min_pruned, sum of max_pruned] (both capped at the tiles), else InvalidArgument
  /// naming the bound sums. `budget`: candidate scores kept in a round; 0 = the largest tensor's tiles.
  GlobalThreshold(std::vector<GlobalTensor> tensors, uint64_t total, uint64_t budget = 0);
  ~GlobalThreshold();
  GlobalThreshold(GlobalThreshold&&) noexcept;
  GlobalThreshold& operator=(GlobalThreshold&&) noexcept;

  /// Before the first round: scores of tiles sampled evenly from a tensor (any count; repeated calls add).
  void sample(size_t tensor, const double* scores, size_t count);
  /// Scores of a round: n more tiles of `tensor`.
  void add(size_t tensor, const float* scores, size_t n);
  void add(size_t tensor, const double* scores, size_t n);
  /// The same for f32 scores given as the kernels' 32-bit order keys (NaN -> 0xffffffff, -0 -> key of +0).
  void add_keys(size_t tensor, const uint32_t* keys, size_t n);
  /// The current round's window in the 32-bit key space, when the round collects: keys below `lo` count as
  /// below, keys in [lo, end) are kept, except those equal to *heavy (when has_heavy), which are only
  /// counted. False in a round that counts per bucket (then feed scores through add / add_keys).
  bool window32(uint32_t* lo, uint64_t* end, bool* has_heavy, uint32_t* heavy) const;
  /// A round's n scores of `tensor` already split by window32(): `below` under it, `heavy` equal to the
  /// heavy key, and the kept keys `window` (m of them).
  void add_split(size_t tensor, uint64_t n, uint64_t below, uint64_t heavy, const uint32_t* window, size_t m);

  /// Ends a round: true when the split is known. InvalidArgument when a tensor did not get exactly its
  /// tiles' scores in the round.
  bool finish();

  /// The split is known (after finish() returned true, or from the start when the bounds alone decide it:
  /// every tensor at its minimum or every one at its maximum; then no round is needed).
  bool done() const noexcept;
  /// Tiles of `tensor` to prune (after finish() returned true).
  uint64_t tiles_to_prune(size_t tensor) const;
  /// When `tensor`'s share is its scores below one threshold plus its first `ties` scores equal to it (in
  /// index order), as for every tensor whose bounds do not bind: true, with the threshold's 64-bit order
  /// key (that of the score as a double). False when the tensor's share was set by its bounds.
  bool share(size_t tensor, uint64_t* key, uint64_t* ties) const;
  /// Rounds run so far.
  int rounds() const noexcept;
  size_t size() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace sparsity::kernels

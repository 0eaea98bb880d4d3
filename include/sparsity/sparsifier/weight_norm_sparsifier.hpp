// WeightNormSparsifier: block-mean-norm magnitude pruning with optional N-of-M inside selected blocks.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "sparsity/kernels/global_threshold.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/sparsifier/base_sparsifier.hpp"

namespace sparsity {

namespace kernels {
class GlobalNormMask;
}

/// How far a WeightNorm step ranks blocks: within each tensor (torch's WeightNormSparsifier), or over
/// every tensor of the sparsifier together (one threshold, as torch.nn.utils.prune.global_unstructured).
enum class WeightNormScope : uint8_t { local, global };

/// Options of WeightNormSparsifier, with fluent setters:
///   WeightNormSparsifier sp(WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 4).zeros_per_block(2));
struct WeightNormOptions {
  double sparsity_level_ = 0.5;
  std::pair<int64_t, int64_t> sparse_block_shape_{1, 4};
  std::optional<int64_t> zeros_per_block_;  ///< unset: product of the group's effective block shape
  kernels::Norm norm_ = kernels::Norm::L2;
  /// Custom element-wise score; when set it replaces `norm` (torch's callable norm).
  std::function<double(double)> norm_fn_;
  /// global: k = round-half-even(sparsity_level * all blocks of all groups) blocks, the smallest of all
  /// the groups' block scores together (ties: group order, then block index), pruned each in its own
  /// tensor; every group must have the same sparsity_level. Group keys min_sparsity / max_sparsity
  /// (fractions of the group's blocks, default 0 and 1) bound each group's share, the rest of the
  /// total going to the others under the same threshold. N:M inside blocks stays per block.
  WeightNormScope scope_ = WeightNormScope::local;

  WeightNormOptions& sparsity_level(double v) { sparsity_level_ = v; return *this; }
  WeightNormOptions& sparse_block_shape(int64_t r, int64_t c) { sparse_block_shape_ = {r, c}; return *this; }
  WeightNormOptions& zeros_per_block(std::optional<int64_t> z) { zeros_per_block_ = z; return *this; }
  WeightNormOptions& norm(kernels::Norm n) { norm_ = n; return *this; }
  WeightNormOptions& norm_fn(std::function<double(double)> f) { norm_fn_ = std::move(f); return *this; }
  WeightNormOptions& scope(WeightNormScope s) { scope_ = s; return *this; }
};

/// Zeroes the k = round-half-even(sparsity_level * L) (clamped to [0, L-1]) blocks of lowest mean
/// norm among the L blocks of shape sparse_block_shape, scored on the current (masked) weights; with
/// zeros_per_block < block size only that many smallest elements inside each selected block
/// (sparsity_level 1.0, (1,4), 2 = 2:4). Works for every shape and float dtype of rank >= 2. A weight
/// of rank >= 3, (out, in, k...) such as a Conv2d weight, is pruned as the matrix (out, in * prod(k)) in
/// memory order; for N:M (a 1 x M block with zeros_per_block < M) the groups run along the input
/// channels at a fixed (out, k...) position, as NVIDIA ASP lays conv weights out. To prune Conv2d
/// weights found by make_config_from_model: `sp.supported_modules().insert("Conv2d")`.
/// Group keys read by update_mask: sparsity_level, sparse_block_shape, zeros_per_block, norm ("L1" / "L2",
/// over the option; a custom norm_fn replaces both); in global scope also min_sparsity, max_sparsity.
class WeightNormSparsifier : public SparsifierCloneable<WeightNormSparsifier> {
 public:
  explicit WeightNormSparsifier(WeightNormOptions options = {});
  WeightNormSparsifier(double sparsity_level, std::pair<int64_t, int64_t> sparse_block_shape,
                       std::optional<int64_t> zeros_per_block = std::nullopt,
                       kernels::Norm norm = kernels::Norm::L2);
  std::string class_name() const override { return "WeightNormSparsifier"; }
  const WeightNormOptions& options() const noexcept { return options_; }

  /// The one check of a WeightNorm key's JSON value (group keys sparsity_level, sparse_block_shape,
  /// zeros_per_block, min_sparsity, max_sparsity; the options norm and scope): "" when valid, else what
  /// is wrong, e.g. "must be [rows, cols] of integers in [1, 2147483647], got [0,4]". Other keys: "".
  static std::string option_error(const std::string& key, const Json& value);

  // ---- a global ranking driven from outside -------------------------------------------------------
  // For an engine that streams a model tensor by tensor with one local-scope sparsifier per tensor: it
  // ranks the blocks of every tensor with one kernels::GlobalThreshold, then gives each sparsifier its
  // share. The scores are exactly those the group's next step ranks (the masked weights, the group's
  // block, norm and score), so the shares equal a global-scope sparsifier's over the same groups.
  //   GlobalThreshold g({sp0.ranked_blocks(), sp1.ranked_blocks()}, total);
  //   auto s0 = sp0.sample_block_scores(1024), s1 = sp1.sample_block_scores(1024);
  //   g.sample(0, s0.data(), s0.size()); g.sample(1, s1.data(), s1.size());
  //   do { sp0.add_block_scores(g, 0); sp1.add_block_scores(g, 1); } while (!g.finish());
  //   sp0.set_blocks_to_prune(0, g.tiles_to_prune(0)); sp0.step(); ...

  /// The blocks (tiles) the next step of group `group` ranks, and the group's min_sparsity / max_sparsity
  /// as counts of them (round-half-even of the fraction), as a global ranking's tensor.
  kernels::GlobalTensor ranked_blocks(size_t group = 0);
  /// `count` of those block scores, spread evenly (in runs of 32 blocks), for GlobalThreshold::sample.
  std::vector<double> sample_block_scores(size_t count, size_t group = 0);
  /// Every block score of group `group` added to the current round of `ranking`'s tensor `index`.
  void add_block_scores(kernels::GlobalThreshold& ranking, size_t index, size_t group = 0);
  /// The next steps of group `group` prune exactly min(blocks, ranked_blocks) blocks, the smallest, instead
  /// of round(sparsity_level x blocks) (N:M inside them as usual); blocks < 0 returns to the level.
  /// Local scope only.
  void set_blocks_to_prune(size_t group, int64_t blocks);

 protected:
  void update_mask(Module& module, const std::string& tensor_name, Group& group) override;

 private:
  struct Target;
  Target target_of(Module& module, const std::string& tensor_name, const Group& group, bool check_constant) const;
  void plan_global_step();

  WeightNormOptions options_;
  // Global scope: the ranking of the step numbered planned_step_, until its last group is written.
  std::shared_ptr<kernels::GlobalNormMask> global_;
  int planned_step_ = -1;
  std::vector<int64_t> blocks_to_prune_;  // per group; -1 (or missing): by level
};

}  // namespace sparsity

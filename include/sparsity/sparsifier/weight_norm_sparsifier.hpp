// WeightNormSparsifier: block-mean-norm magnitude pruning with optional N-of-M inside selected blocks.
#pragma once

#include <functional>
#include <optional>
#include <utility>

#include "sparsity/kernels/kernels.hpp"
#include "sparsity/sparsifier/base_sparsifier.hpp"

namespace sparsity {

/// Options of WeightNormSparsifier, with fluent setters:
///   WeightNormSparsifier sp(WeightNormOptions().sparsity_level(0.5).sparse_block_shape(1, 4).zeros_per_block(2));
struct WeightNormOptions {
  double sparsity_level_ = 0.5;
  std::pair<int64_t, int64_t> sparse_block_shape_{1, 4};
  std::optional<int64_t> zeros_per_block_;  ///< unset: product of the group's effective block shape
  kernels::Norm norm_ = kernels::Norm::L2;
  /// Custom element-wise score; when set it replaces `norm` (torch's callable norm).
  std::function<double(double)> norm_fn_;

  WeightNormOptions& sparsity_level(double v) { sparsity_level_ = v; return *this; }
  WeightNormOptions& sparse_block_shape(int64_t r, int64_t c) { sparse_block_shape_ = {r, c}; return *this; }
  WeightNormOptions& zeros_per_block(std::optional<int64_t> z) { zeros_per_block_ = z; return *this; }
  WeightNormOptions& norm(kernels::Norm n) { norm_ = n; return *this; }
  WeightNormOptions& norm_fn(std::function<double(double)> f) { norm_fn_ = std::move(f); return *this; }
};

/// Zeroes the k = round-half-even(sparsity_level * L) (clamped to [0, L-1]) blocks of lowest mean
/// norm among the L blocks of shape sparse_block_shape, scored on the current (masked) weights; with
/// zeros_per_block < block size only that many smallest elements inside each selected block
/// (sparsity_level 1.0, (1,4), 2 = 2:4). Works for every 2-D shape and dtype.
/// Group keys read by update_mask: sparsity_level, sparse_block_shape, zeros_per_block.
class WeightNormSparsifier : public SparsifierCloneable<WeightNormSparsifier> {
 public:
  explicit WeightNormSparsifier(WeightNormOptions options = {});
  WeightNormSparsifier(double sparsity_level, std::pair<int64_t, int64_t> sparse_block_shape,
                       std::optional<int64_t> zeros_per_block = std::nullopt,
                       kernels::Norm norm = kernels::Norm::L2);
  std::string class_name() const override { return "WeightNormSparsifier"; }
  const WeightNormOptions& options() const noexcept { return options_; }

  /// The one check of a WeightNorm key's JSON value (group keys sparsity_level, sparse_block_shape,
  /// zeros_per_block; the option norm): "" when valid, else what is wrong, e.g.
  /// "must be [rows, cols] of integers in [1, 2147483647], got [0,4]". Other keys: "".
  static std::string option_error(const std::string& key, const Json& value);

 protected:
  void update_mask(Module& module, const std::string& tensor_name, Group& group) override;

 private:
  WeightNormOptions options_;
};

}  // namespace sparsity

// WandaSparsifier: activation-aware pruning, score |W(i, j)| * ||X_j||_2, per output row, per tensor or N:M.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sparsity/sparsifier/base_sparsifier.hpp"

namespace sparsity {

/// Which scores compete for the k pruned places of an unstructured (1 x 1) step.
enum class WandaComparison : uint8_t {
  row,     ///< each output row on its own: k = floor(level * in) per row (the published algorithm)
  tensor,  ///< the whole tensor: k = round-half-even(level * numel), clamped to [0, numel - 1] below level 1
};

/// "row" | "tensor".
const char* to_string(WandaComparison c) noexcept;

/// Options of WandaSparsifier, with fluent setters:
///   WandaSparsifier sp(WandaOptions().sparsity_level(1.0).sparse_block_shape(1, 4).zeros_per_block(2));  // 2:4
struct WandaOptions {
  double sparsity_level_ = 0.5;
  std::pair<int64_t, int64_t> sparse_block_shape_{1, 1};
  std::optional<int64_t> zeros_per_block_;  ///< unset: the block's size
  WandaComparison comparison_ = WandaComparison::row;

  WandaOptions& sparsity_level(double v) { sparsity_level_ = v; return *this; }
  WandaOptions& sparse_block_shape(int64_t r, int64_t c) { sparse_block_shape_ = {r, c}; return *this; }
  WandaOptions& zeros_per_block(std::optional<int64_t> z) { zeros_per_block_ = z; return *this; }
  WandaOptions& comparison(WandaComparison c) { comparison_ = c; return *this; }
};

/// Wanda (Sun et al., "A Simple and Effective Pruning Approach for Large Language Models"): the score of
/// weight W(i, j) of an [out, in] weight is |W(i, j)| * ||X_j||_2, where ||X_j||_2 is the L2 norm of input
/// feature j over the calibration activations (ActivationNormCollector). Scores are computed on the
/// current masked weight, so pruned weights score 0 and stay pruned (sticky masks, as WeightNorm).
///
/// Group keys read by update_mask (WeightNorm's, plus `comparison`):
///   sparsity_level      <= 0 keeps everything;
///   sparse_block_shape  [1, 1] (default): unstructured, compared per `comparison`;
///                       [1, M] with sparsity_level >= 1: inside every group of M consecutive inputs of a
///                       row, the zeros_per_block smallest scores are pruned (2:4 = [1, 4], 2); an edge
///                       group prunes its real elements first. Other blocks are InvalidArgument;
///   zeros_per_block     0..M (null: M, which with level >= 1 prunes everything);
///   comparison          "row" (default) or "tensor".
/// Ties: the lower column (row comparison, N:M) or flat index (tensor) is pruned first; NaN scores rank
/// above +inf above every finite score (a NaN weight is never pruned by rank). Scores of f32, f16 and
/// bf16 weights are f32 products |w| * float(norm), of f64 weights f64 products. Results are the same
/// for every ISA and thread count. Masks keep their dtype and identity. Only 2-D weights: N-D
/// (convolution) weights are InvalidArgument naming the tensor.
///
/// Norms: one 1-D floating tensor per pruned weight, length `in`, finite and non-negative, keyed by the
/// weight's tensor fqn; norms of other tensors are ignored. A missing or wrong-length one is
/// InvalidArgument naming the tensor (and both lengths), raised by prepare() before anything is
/// registered and again at every step before any mask changes.
///
///   sparsity::ActivationNormCollector collector;
///   collector.attach(model);
///   for (const auto& batch : calibration) (*model)(batch);
///   collector.detach();
///   sparsity::WandaSparsifier sp(sparsity::WandaOptions().sparsity_level(0.5));
///   sp.set_activation_norms(collector.norms());   // or io::load_safetensors("norms.safetensors")
///   sp.prepare(model, std::nullopt);
///   sp.step();
///   sp.squash_mask();
class WandaSparsifier : public SparsifierCloneable<WandaSparsifier> {
 public:
  explicit WandaSparsifier(WandaOptions options = {});
  WandaSparsifier(WandaOptions options, const NamedList<Tensor>& activation_norms);
  std::string class_name() const override { return "WandaSparsifier"; }
  const WandaOptions& options() const noexcept { return options_; }

  /// Sets (or replaces) the norms of the weight `tensor_fqn` (an owned copy is kept). When the
  /// sparsifier is prepared and `tensor_fqn` is one of its tensors, they are checked at once.
  void set_activation_norms(const std::string& tensor_fqn, const Tensor& norms);
  /// The same for every (tensor fqn, norms) pair, e.g. ActivationNormCollector::norms() or a
  /// safetensors file of norms: `sp.set_activation_norms(io::load_safetensors(path))`.
  void set_activation_norms(const NamedList<Tensor>& norms);
  /// A copy of the norms set for `tensor_fqn` (undefined when none).
  Tensor activation_norms(const std::string& tensor_fqn) const;

  /// BaseSparsifier::prepare, after checking every group's options, shape, dtype and norms (so a
  /// failure leaves the model untouched). prepare() called through a BaseSparsifier reference skips
  /// this early check; the first step() then makes it, before any mask changes.
  void prepare(const ModulePtr& model, const std::optional<std::vector<ConfigEntry>>& config);

  /// Builds one from configuration defaults (keys as the group keys above), for the registry.
  static std::unique_ptr<BaseSparsifier> from_json(const Json& defaults);
  /// Checks one configuration value; InvalidArgument ending in "(<where>)" otherwise.
  static void check_option(const std::string& key, const Json& value, const std::string& where);

 protected:
  void update_mask(Module& module, const std::string& tensor_name, Group& group) override;

 private:
  /// The checked norms of a tensor of `shape` (2-D) and `dtype` configured by `config`.
  const Tensor& checked_norms(const Json& config, const Shape& shape, DType dtype) const;
  /// Checks every group (called before the first group's mask changes in a step).
  void check_groups() const;

  WandaOptions options_;
  std::map<std::string, Tensor> norms_;
};

}  // namespace sparsity

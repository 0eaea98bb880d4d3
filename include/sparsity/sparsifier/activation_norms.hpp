// ActivationNormCollector: per-input-feature L2 norms of calibration activations, fed batch by batch or by
// forward pre-hooks on a model's Linear modules (the norms WandaSparsifier scores with).
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "sparsity/core/module.hpp"

namespace sparsity {

/// Accumulates sum_i X(i, j)^2 over every row i of the activations X seen for a name, per input feature
/// j, in double, in the order the rows arrive (so the result does not depend on how the rows are split
/// into batches), and gives ||X_j||_2 = sqrt(sum) rounded to f32. Names are the tensor fqns of the
/// weights the activations multiply ("layers.0.fc1.weight"), so norms() can go straight into
/// WandaSparsifier::set_activation_norms.
///
///   sparsity::ActivationNormCollector norms;
///   norms.attach(model);                          // a pre-hook on every Linear
///   for (const auto& batch : calibration) (*model)(batch);
///   norms.detach();
///   sparsity::WandaSparsifier sp(sparsity::WandaOptions().sparsity_level(0.5));
///   sp.set_activation_norms(norms.norms());
///
/// Not thread-safe for concurrent add() on one collector (the hooks of one forward pass run in turn).
/// Non-finite activations make non-finite norms, which WandaSparsifier refuses (naming the tensor).
class ActivationNormCollector {
 public:
  ActivationNormCollector();
  /// Removes the hooks it installed (detach()).
  ~ActivationNormCollector();
  ActivationNormCollector(const ActivationNormCollector&) = delete;
  ActivationNormCollector& operator=(const ActivationNormCollector&) = delete;

  /// Adds the rows of `batch` to `name`: [in] is one row, [rows, in] rows, [..., in] (rank > 2) every
  /// row of the flattened leading dimensions. f32, f64, f16 or bf16; any strides. InvalidArgument naming
  /// `name` for an empty name, a rank-0 or non-floating batch, or a width that differs from the one
  /// `name` had before (or from its module's weight when attached), naming both widths.
  void add(const std::string& name, const Tensor& batch);

  /// Installs a forward pre-hook on every module of `model` (the root included, depth first) whose
  /// type before parametrizations is in `module_types`; each feeds its input to add(fqn + ".weight")
  /// ("weight" for the root). Every matched module must hold a 2-D `weight` [out, in] (the input's last
  /// dimension is `in`); the widths are checked on every batch. A hook copied onto another module
  /// (Module::clone, convert) does nothing. InvalidArgument for a null model, no matching module or a
  /// module without a 2-D weight (naming it; nothing is installed then); FailedPrecondition when
  /// already attached.
  void attach(const ModulePtr& model, const std::set<std::string>& module_types = {"Linear"});
  /// Removes the hooks (modules destroyed since are skipped). The sums are kept.
  void detach() noexcept;
  bool attached() const noexcept { return !hooks_.empty(); }

  /// sqrt of the sums as 1-D f32 tensors named like the weights, in the order the names were first
  /// seen; names that have seen no row are left out.
  NamedList<Tensor> norms() const;
  /// The sums of squares themselves (1-D f64), same names and order as norms().
  NamedList<Tensor> sums_of_squares() const;
  /// Rows accumulated for `name` (0 when unknown).
  int64_t rows(const std::string& name) const;
  /// Forgets every sum (the hooks stay).
  void clear();

 private:
  struct State;
  struct Hook {
    std::weak_ptr<Module> module;
    int handle;
  };
  static void add_to(State& state, const std::string& name, const Tensor& batch);
  std::shared_ptr<State> state_;
  std::vector<Hook> hooks_;
};

}  // namespace sparsity

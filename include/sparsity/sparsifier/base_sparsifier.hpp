// BaseSparsifier: the prepare -> step/update_mask -> squash_mask / convert lifecycle of torch.ao.pruning.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sparsity/core/module.hpp"
#include "sparsity/core/parametrize.hpp"
#include "sparsity/sparsifier/utils.hpp"

namespace sparsity {

/// Makes the parametrization a config entry asks for, given its mask (default: FakeSparsity).
using ParametrizationFactory = std::function<std::shared_ptr<Parametrization>(const Tensor& mask)>;

/// One element of prepare()'s config: the options (must hold "tensor_fqn" once merged over the
/// defaults; may hold "module_fqn" / "tensor_name", which must then agree with it; any other key is
/// passed to update_mask), plus the non-JSON keys of torch's dict.
struct ConfigEntry {
  Json options = Json::object();
  ParametrizationFactory parametrization;  ///< empty: FakeSparsity
  Tensor mask;                             ///< undefined: ones_like(current tensor value); used by reference
  ModulePtr module;                        ///< optional cross-check (identity) with tensor_fqn's module

  ConfigEntry() = default;
  ConfigEntry(Json opts) : options(std::move(opts)) {}  // NOLINT: implicit, so {{"tensor_fqn", "a.weight"}} works
};

/// A prepared tensor: the merged config (defaults overlaid by the entry, plus "tensor_fqn",
/// "module_fqn", "tensor_name") and the module it lives in.
struct Group {
  Json config = Json::object();
  ModulePtr module;
  ParametrizationFactory parametrization;
  Tensor mask;  ///< the user's mask when the entry gave one (torch keeps it in the group)

  const std::string& tensor_fqn() const;
  const std::string& module_fqn() const;
  const std::string& tensor_name() const;
};

/// Per-tensor state: the mask (the same Tensor as the FakeSparsity buffer) and free-form values.
struct TensorState {
  Tensor mask;
  Json values = Json::object();
};

/// A snapshot of a sparsifier: masks are copies; groups omit module, module_fqn, tensor_name.
struct SparsifierStateDict {
  NamedList<TensorState> state;
  std::vector<Json> groups;
};

/// Base of every sparsifier. Subclasses implement update_mask(); everything else is the lifecycle.
///
///   auto model = make_model();                               // a ModulePtr
///   sparsity::WeightNormSparsifier sp(0.5, {1, 4});
///   sp.prepare(model, std::nullopt);                         // FakeSparsity on every Linear weight
///   sp.step();                                               // update_mask on each group
///   sp.squash_mask();                                        // bake the masks into the weights
class BaseSparsifier {
 public:
  explicit BaseSparsifier(Json defaults = Json::object());
  virtual ~BaseSparsifier();

  /// Deep copy: model, masks and settings copied; the copy can step on its own model.
  std::unique_ptr<BaseSparsifier> clone() const;

  // ---- lifecycle ----------------------------------------------------------------------------
  /// config nullopt -> make_config_from_model(model). FailedPrecondition when already prepared;
  /// NotFound naming the fqn for a tensor the model lacks; InvalidArgument for an entry without
  /// tensor_fqn or with keys that disagree with it.
  void prepare(const ModulePtr& model, const std::optional<std::vector<ConfigEntry>>& config);
  /// update_mask on every group in order, unless enable_mask_update is false.
  void step();
  /// Remove the parametrizations, leaving the masked weights; sets module.sparse_params from the
  /// group keys named in params_to_keep and params_to_keep_per_layer[module_fqn].
  void squash_mask(const std::vector<std::string>& params_to_keep = {},
                   const std::map<std::string, std::vector<std::string>>& params_to_keep_per_layer = {});
  /// Swap every child that carries `parametrization_type` and whose type is in `mapping` through its
  /// from_dense, recursively (root never swapped); on a deep copy unless inplace.
  ModulePtr convert(const ModulePtr& module, const ModuleMapping& mapping, bool inplace = false,
                    const std::string& parametrization_type = "FakeSparsity");

  /// Snapshot of state and groups.
  SparsifierStateDict state_dict() const;
  /// Restore masks and groups into the prepared model. strict: an entry whose tensor the model lacks
  /// throws NotFound naming it; non-strict skips it and returns the skipped fqns. Never mutates `sd`.
  std::vector<std::string> load_state_dict(const SparsifierStateDict& sd, bool strict = true);

  /// Config entries for every module whose exact type is in supported_modules(), in torch's LIFO order.
  std::vector<ConfigEntry> make_config_from_model(const ModulePtr& model) const;

  /// torch's __repr__: "<ClassName> (\n\tGroup 0\n\t    module: ...\n\t    key: value\n...)".
  std::string repr() const;
  /// "BaseSparsifier", "WeightNormSparsifier", ...
  virtual std::string class_name() const = 0;

  // ---- data ---------------------------------------------------------------------------------
  Json& defaults() noexcept { return defaults_; }
  const Json& defaults() const noexcept { return defaults_; }
  std::vector<Group>& groups() noexcept { return groups_; }
  const std::vector<Group>& groups() const noexcept { return groups_; }
  NamedList<TensorState>& state() noexcept { return state_; }
  const NamedList<TensorState>& state() const noexcept { return state_; }
  /// state entry of a tensor fqn (created empty when absent).
  TensorState& state_of(const std::string& tensor_fqn);
  const ModulePtr& model() const noexcept { return model_; }
  std::set<std::string>& supported_modules() noexcept { return supported_modules_; }
  /// How many times step() ran (schedulers use it to warn about call order).
  int step_count() const noexcept { return step_count_; }
  /// Masks of the FakeSparsity parametrizations this sparsifier registers are included in the
  /// model's state_dict. Default false (torch's behaviour). Applies to the masks already
  /// registered too.
  void set_masks_in_model_state_dict(bool on);
  bool masks_in_model_state_dict() const noexcept { return masks_in_state_dict_; }

  bool enable_mask_update = true;

 protected:
  /// Recompute the mask of one group in place (keep the Tensor's identity: write its contents or
  /// set_() it).
  virtual void update_mask(Module& module, const std::string& tensor_name, Group& group) = 0;
  /// Copy of the most-derived sparsifier with shared pointers still pointing at the source model;
  /// clone() then deep-copies the model and rebinds. Implement with SparsifierCloneable.
  virtual std::unique_ptr<BaseSparsifier> clone_self() const = 0;
  BaseSparsifier(const BaseSparsifier&) = default;

  /// The first FakeSparsity mask of `module.tensor_name` (torch's parametrizations[name][0].mask).
  static Tensor mask_of(const Module& module, const std::string& tensor_name);

 private:
  Json defaults_;
  std::vector<Group> groups_;
  NamedList<TensorState> state_;
  ModulePtr model_;
  std::set<std::string> supported_modules_{"Linear"};
  int step_count_ = 0;
  bool masks_in_state_dict_ = false;
};

/// CRTP helper implementing clone_self(): `class MySparsifier : public SparsifierCloneable<MySparsifier>`.
template <class Derived, class Base = BaseSparsifier>
class SparsifierCloneable : public Base {
 public:
  using Base::Base;

 protected:
  std::unique_ptr<BaseSparsifier> clone_self() const override {
    return std::make_unique<Derived>(static_cast<const Derived&>(*this));
  }
};

}  // namespace sparsity

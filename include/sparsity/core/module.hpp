// Module: a tree of named parameters, buffers and child modules with fqn-addressed access, state
// dicts, forward hooks, parametrization-aware tensor access and deep clone.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sparsity/base/json.hpp"
#include "sparsity/base/ordered_map.hpp"
#include "sparsity/core/tensor.hpp"

namespace sparsity {

class Module;
using ModulePtr = std::shared_ptr<Module>;

/// A module's tensors by dotted fqn, in registration order.
using StateDict = NamedList<Tensor>;

/// Result of a non-strict Module::load_state_dict.
struct LoadStateDictResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

/// Base class of every layer. Registered names must be non-empty and contain no '.'. Tensors are
/// read with `tensor(name)`, which returns the parametrized value when `name` is parametrized (see
/// parametrize.hpp), like torch's `module.<name>`.
///
///   auto m = std::make_shared<sparsity::Module>("Block");
///   m->register_parameter("weight", sparsity::Tensor::ones({4, 4}));
///   m->register_module("proj", std::make_shared<sparsity::nn::Linear>(4, 8));
///   for (auto& [fqn, t] : m->named_parameters()) std::cout << fqn << "\n";  // weight, proj.weight, ...
class Module : public std::enable_shared_from_this<Module> {
 public:
  using ForwardPreHook = std::function<std::optional<Tensor>(Module&, const Tensor& input)>;
  using ForwardHook = std::function<std::optional<Tensor>(Module&, const Tensor& input, const Tensor& output)>;

  /// `type_name` is the exact type used for matching (torch's `type(m)`), e.g. "Linear".
  explicit Module(std::string type_name = "Module");
  virtual ~Module() = default;

  /// Exact type name; "Parametrized" + the type (e.g. "ParametrizedLinear") while any tensor is
  /// parametrized, as torch's class swap.
  std::string type_name() const;
  /// The type name without the parametrization prefix (torch's type_before_parametrizations).
  const std::string& base_type_name() const noexcept { return type_name_; }

  // ---- registration -------------------------------------------------------------------------
  /// Registers (or replaces) a parameter. Throws InvalidArgument quoting `name` when it is empty or
  /// dotted, or when it already names a buffer or child.
  Tensor register_parameter(const std::string& name, Tensor value);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    register_module_impl(name, module);
    return module;
  }
  /// Replaces an existing child (or adds one); used by convert/swap_module.
  void replace_module(const std::string& name, ModulePtr module);
  /// Removes a parameter, buffer or child by name (NotFound when absent).
  void unregister(const std::string& name);

  // ---- direct access --------------------------------------------------------------------------
  /// Parametrized value of `name` if parametrized, else the parameter or buffer; NotFound naming it.
  Tensor tensor(const std::string& name) const;
  bool has_tensor(const std::string& name) const;
  /// Assigns a parameter or buffer; for a parametrized name runs right_inverse (FailedPrecondition
  /// when a parametrization has none, as torch).
  void set_tensor(const std::string& name, Tensor value);
  bool has_parameter(const std::string& name) const;
  bool has_buffer(const std::string& name) const;
  bool has_child(const std::string& name) const;
  /// The registered parameter / buffer / child itself; NotFound naming it.
  Tensor parameter(const std::string& name) const;
  Tensor buffer(const std::string& name) const;
  ModulePtr child(const std::string& name) const;

  // ---- enumeration (registration order, dotted fqns) ----------------------------------------
  NamedList<Tensor> named_parameters(bool recurse = true) const;
  NamedList<Tensor> named_buffers(bool recurse = true) const;
  NamedList<ModulePtr> named_children() const;
  /// Self first (as `prefix`), then every descendant depth-first; each module once.
  NamedList<ModulePtr> named_modules(const std::string& prefix = "") const;
  /// Descendant at a dotted path ("" = this); NotFound naming the missing part.
  ModulePtr get_submodule(const std::string& fqn) const;

  // ---- state dict -------------------------------------------------------------------------------
  /// Parameters and persistent buffers by fqn (the registered tensors themselves, no copies); a
  /// parametrized tensor appears as `parametrizations.<name>.original`, plus the parametrizations'
  /// own state (FakeSparsity contributes nothing unless masks are included, see fake_sparsity.hpp).
  StateDict state_dict() const;
  /// Copies values into the existing tensors (shapes must match, dtypes convert). strict: a missing
  /// or unexpected key throws InvalidArgument listing the keys; else they are returned.
  LoadStateDictResult load_state_dict(const StateDict& state, bool strict = true);

  // ---- forward ------------------------------------------------------------------------------
  /// Runs the pre-hooks, forward() and the hooks; a hook's non-empty result replaces the value.
  Tensor operator()(const Tensor& input);
  /// The module's computation; the default throws FailedPrecondition naming the type.
  virtual Tensor forward(const Tensor& input);
  int register_forward_pre_hook(ForwardPreHook hook);
  int register_forward_hook(ForwardHook hook);
  void remove_hook(int handle);
  NamedList<ForwardPreHook> forward_pre_hooks() const;  ///< names are the handle ids
  NamedList<ForwardHook> forward_hooks() const;

  // ---- misc ---------------------------------------------------------------------------------
  bool is_training() const noexcept { return training_; }
  void train(bool on = true);
  void eval() { train(false); }
  /// Deep copy of the whole subtree (tensors cloned, shared submodules stay shared, hooks and
  /// parametrizations kept). Subclasses override clone_self() (see Cloneable).
  ModulePtr clone() const;
  /// Multi-line repr in torch's style: `Linear(in_features=4, out_features=8, bias=true)`.
  std::string repr() const;
  virtual std::string extra_repr() const { return ""; }

  /// Values left by BaseSparsifier::squash_mask (torch's `module.sparse_params`); null when unset.
  Json sparse_params;

 protected:
  /// Shallow copy of the most-derived object (same tensors); clone() then deep-copies the state.
  /// The default copies a plain Module and throws FailedPrecondition naming the type for a subclass
  /// that does not derive Cloneable.
  virtual ModulePtr clone_self() const;
  /// Whether this module's own tensors (and its subtree) appear in state_dict() / are expected by
  /// load_state_dict(); FakeSparsity answers false unless its mask is included (torch's empty
  /// FakeSparsity.state_dict()).
  virtual bool contributes_state() const { return true; }
  Module(const Module&) = default;

 private:
  void register_module_impl(const std::string& name, ModulePtr module);
  Tensor register_tensor(const std::string& name, Tensor value, bool is_parameter);
  NamedList<Tensor> named_tensors(bool recurse, bool parameters) const;
  ModulePtr clone_impl(std::map<const Module*, ModulePtr>& seen) const;

  struct TensorSlot {
    Tensor value;
    bool is_parameter;
    bool persistent;
  };
  std::string type_name_;
  OrderedMap<std::string, TensorSlot> tensors_;
  OrderedMap<std::string, ModulePtr> children_;
  NamedList<ForwardPreHook> pre_hooks_;
  NamedList<ForwardHook> hooks_;
  int next_hook_id_ = 0;
  bool training_ = true;

  friend class ModuleAccess;
};

/// CRTP helper giving a subclass its clone_self(): `class MyLayer : public Cloneable<MyLayer>`.
template <class Derived, class Base = Module>
class Cloneable : public Base {
 public:
  using Base::Base;

 protected:
  ModulePtr clone_self() const override {
    return std::make_shared<Derived>(static_cast<const Derived&>(*this));
  }
};

}  // namespace sparsity

// fqn helpers of torch.ao.pruning.sparsifier.utils.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "sparsity/core/module.hpp"

namespace sparsity {

/// Dotted path of `module` inside `model` ("" for the model itself); nullopt when absent. First path
/// wins for a module reachable twice.
std::optional<std::string> module_to_fqn(const Module& model, const Module& module);

/// What an fqn denotes: a module, a tensor (parametrized value for parametrized tensors), or nothing.
using FqnTarget = std::variant<std::monostate, ModulePtr, Tensor>;

/// Resolves a dotted path ("" = model) to a module or tensor; std::monostate when a part is missing.
FqnTarget fqn_to_module(const ModulePtr& model, const std::string& fqn);

/// get_arg_info_from_tensor_fqn: tensor_name is the text after the last '.'; module_fqn the rest
/// ("" for a bare name, "" for ".weight" too); module is null when absent.
struct TensorFqnInfo {
  std::string module_fqn;
  ModulePtr module;
  std::string tensor_name;
  std::string tensor_fqn;
};
TensorFqnInfo get_arg_info_from_tensor_fqn(const ModulePtr& model, const std::string& tensor_fqn);

/// True iff `module` has a parametrization of type `parametrization_type` (Module::type_name) on any tensor.
bool module_contains_param(const Module& module, const std::string& parametrization_type);

/// Builds a module from a (possibly parametrized) dense one: torch's `Target.from_dense(mod)`.
using FromDense = std::function<ModulePtr(const Module& dense)>;
/// Type name (before parametrizations) -> from_dense of the replacement type.
using ModuleMapping = std::map<std::string, FromDense>;

/// mapping[type_before_parametrizations(mod)](mod), with mod's forward pre-hooks and hooks copied over
/// in order; `mod` itself when its type is not in the mapping.
ModulePtr swap_module(const ModulePtr& mod, const ModuleMapping& mapping);

}  // namespace sparsity

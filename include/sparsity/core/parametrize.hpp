// Parametrizations: a tensor of a module computed from its `original` through a chain of modules,
// as torch.nn.utils.parametrize.
#pragma once

#include <memory>
#include <string>

#include "sparsity/core/module.hpp"

namespace sparsity {

/// A module that maps a tensor's `original` to the value the module sees: forward(original) -> value.
/// Registered into `module.parametrizations.<name>` (a ParametrizationList whose `original` holds the
/// tensor and whose children "0", "1", ... are the chain, applied in order).
class Parametrization : public Module {
 public:
  using Module::Module;
  /// Whether assigning the parametrized tensor is allowed (torch's right_inverse).
  virtual bool has_right_inverse() const { return false; }
  /// Maps an assigned value back to what the previous stage should hold.
  virtual Tensor right_inverse(const Tensor& value) const;
};

/// Adds `p` to the chain of `module.<tensor_name>` (stacking when already parametrized). The first
/// registration moves the tensor (same Tensor object) to `parametrizations.<name>.original`. Unless
/// `unsafe`, runs the chain once and requires the same shape and dtype (InvalidArgument otherwise).
/// NotFound when the module has no parameter, buffer or parametrized tensor of that name.
///
///   sparsity::register_parametrization(*linear, "weight",
///                                      std::make_shared<sparsity::FakeSparsity>(mask));
///   sparsity::Tensor w = linear->tensor("weight");   // original * mask
void register_parametrization(Module& module, const std::string& tensor_name,
                              std::shared_ptr<Parametrization> p, bool unsafe = false);

/// Removes every parametrization of `tensor_name`. leave_parametrized = true writes the current value
/// into the original tensor's storage (same Tensor object); false restores the original untouched.
/// InvalidArgument when the tensor is not parametrized.
void remove_parametrizations(Module& module, const std::string& tensor_name, bool leave_parametrized = true);

/// Whether `module` has any parametrized tensor (tensor_name empty) or that one.
bool is_parametrized(const Module& module, const std::string& tensor_name = "");

/// The chain of `tensor_name` in order; empty when not parametrized.
std::vector<std::shared_ptr<Parametrization>> parametrizations_of(const Module& module,
                                                                  const std::string& tensor_name);

/// The `original` tensor of a parametrized `tensor_name`; InvalidArgument when not parametrized.
Tensor parametrization_original(const Module& module, const std::string& tensor_name);

/// Type name as if unparametrized (torch's type_before_parametrizations).
std::string type_before_parametrizations(const Module& module);

}  // namespace sparsity

// Parametrizations: the ParametrizationList child modules, registration, removal and queries.
#include "sparsity/core/parametrize.hpp"

#include "base/text.hpp"
#include "sparsity/core/module_dict.hpp"

namespace sparsity {
namespace {

constexpr const char* kDict = "parametrizations";
constexpr const char* kList = "ParametrizationList";

/// parametrizations.<name>: holds `original` (the very tensor that was registered under <name>) and
/// the chain as children "0", "1", ...; forward() evaluates the chain on `original`.
class ParametrizationList : public Cloneable<ParametrizationList> {
 public:
  ParametrizationList() : Cloneable(kList) {}
  Tensor forward(const Tensor&) override {
    Tensor v = original();
    for (const auto& [name, p] : named_children()) v = (*p)(v);
    return v;
  }
  Tensor original() const { return has_parameter("original") ? parameter("original") : buffer("original"); }
};

ModulePtr list_of(const Module& module, const std::string& name) {
  if (!module.has_child(kDict)) return nullptr;
  ModulePtr dict = module.child(kDict);
  if (!dict->has_child(name)) return nullptr;
  ModulePtr list = dict->child(name);
  return list->base_type_name() == kList ? list : nullptr;
}

void check_consistent(const Module& module, const std::string& name, const Tensor& before,
                      const Tensor& after, const Module& p) {
  SPARSITY_CHECK(after.defined(), InvalidArgument, "parametrization ", p.type_name(), " of ",
                 ::sparsity::detail::quote(name), " in ", module.type_name(),
                 " returned an undefined tensor");
  SPARSITY_CHECK(after.shape() == before.shape(), InvalidArgument, "parametrization ", p.type_name(), " of ",
                 ::sparsity::detail::quote(name), " in ", module.type_name(), " changes the shape from ",
                 shape_to_string(before.shape()), " to ", shape_to_string(after.shape()));
  SPARSITY_CHECK(after.dtype() == before.dtype(), InvalidArgument, "parametrization ", p.type_name(), " of ",
                 ::sparsity::detail::quote(name), " in ", module.type_name(), " changes the dtype from ",
                 to_string(before.dtype()), " to ", to_string(after.dtype()));
}

}  // namespace

Tensor Parametrization::right_inverse(const Tensor&) const {
  SPARSITY_FAIL(FailedPrecondition, "parametrization ", type_name(), " has no right_inverse");
}

void register_parametrization(Module& module, const std::string& tensor_name,
                              std::shared_ptr<Parametrization> p, bool unsafe) {
  SPARSITY_CHECK(p != nullptr, InvalidArgument, "null parametrization for ",
                 ::sparsity::detail::quote(tensor_name), " of ", module.type_name());
  if (ModulePtr list = list_of(module, tensor_name)) {
    if (!unsafe) {
      const Tensor value = module.tensor(tensor_name);
      check_consistent(module, tensor_name, value, p->forward(value), *p);
    }
    p->train(module.is_training());
    list->register_module(std::to_string(list->named_children().size()), p);
    return;
  }
  const bool is_param = module.has_parameter(tensor_name);
  SPARSITY_CHECK(is_param || module.has_buffer(tensor_name), NotFound, "Module ",
                 ::sparsity::detail::quote(module.type_name()),
                 " does not have a parameter, a buffer, or a parametrized element with name ",
                 ::sparsity::detail::quote(tensor_name), "");
  const Tensor original = is_param ? module.parameter(tensor_name) : module.buffer(tensor_name);
  if (!unsafe) check_consistent(module, tensor_name, original, p->forward(original), *p);
  // Every check passed: from here on nothing throws for a valid tree.
  p->train(module.is_training());
  auto list = std::make_shared<ParametrizationList>();
  if (is_param) {
    list->register_parameter("original", original);
  } else {
    list->register_buffer("original", original);
  }
  list->register_module("0", std::static_pointer_cast<Module>(p));
  list->train(module.is_training());
  std::shared_ptr<ModuleDict> dict;
  if (module.has_child(kDict)) {
    dict = std::dynamic_pointer_cast<ModuleDict>(module.child(kDict));
    SPARSITY_CHECK(dict != nullptr, InvalidArgument, "cannot parametrize ",
                   ::sparsity::detail::quote(tensor_name), " of ", module.type_name(),
                   ": its child 'parametrizations' is not a ModuleDict");
  }
  module.unregister(tensor_name);
  if (!dict) {
    dict = std::make_shared<ModuleDict>();
    dict->train(module.is_training());
    module.register_module(kDict, dict);
  }
  dict->insert(tensor_name, list);
}

void remove_parametrizations(Module& module, const std::string& tensor_name, bool leave_parametrized) {
  ModulePtr list = list_of(module, tensor_name);
  SPARSITY_CHECK(list != nullptr, InvalidArgument, "Module ", module.type_name(),
                 " does not have a parametrization on ", ::sparsity::detail::quote(tensor_name), "");
  const bool is_param = list->has_parameter("original");
  Tensor original = is_param ? list->parameter("original") : list->buffer("original");
  if (leave_parametrized) {
    const Tensor value = module.tensor(tensor_name);
    SPARSITY_CHECK(value.dtype() == original.dtype(), InvalidArgument,
                   "cannot remove the parametrization of ", ::sparsity::detail::quote(tensor_name), " in ",
                   module.type_name(), ": its value has dtype ", to_string(value.dtype()), ", the original ",
                   to_string(original.dtype()));
    // Write into the original's storage (an engine's buffer stays in use) when possible; a read-only
    // view or a changed shape makes the original become the value instead (same Tensor identity).
    if (value.shape() == original.shape() && !original.is_read_only()) {
      original.copy_(value);
    } else {
      original.set_(value.shares_storage(original) ? value.clone() : value);
    }
  }
  ModulePtr dict = module.child(kDict);
  dict->unregister(tensor_name);
  if (dict->named_children().empty()) module.unregister(kDict);
  if (is_param) {
    module.register_parameter(tensor_name, original);
  } else {
    module.register_buffer(tensor_name, original);
  }
}

bool is_parametrized(const Module& module, const std::string& tensor_name) {
  if (!module.has_child(kDict)) return false;
  ModulePtr dict = module.child(kDict);
  if (dict->base_type_name() != "ModuleDict") return false;
  if (tensor_name.empty()) return !dict->named_children().empty();
  return list_of(module, tensor_name) != nullptr;
}

std::vector<std::shared_ptr<Parametrization>> parametrizations_of(const Module& module,
                                                                  const std::string& tensor_name) {
  std::vector<std::shared_ptr<Parametrization>> out;
  ModulePtr list = list_of(module, tensor_name);
  if (!list) return out;
  for (const auto& [name, p] : list->named_children()) {
    auto cast = std::dynamic_pointer_cast<Parametrization>(p);
    SPARSITY_CHECK(cast != nullptr, Internal, "parametrization ", name, " of ",
                   ::sparsity::detail::quote(tensor_name), " is a ", p->type_name(),
                   ", not a Parametrization");
    out.push_back(std::move(cast));
  }
  return out;
}

Tensor parametrization_original(const Module& module, const std::string& tensor_name) {
  ModulePtr list = list_of(module, tensor_name);
  SPARSITY_CHECK(list != nullptr, InvalidArgument, "Module ", module.type_name(),
                 " does not have a parametrization on ", ::sparsity::detail::quote(tensor_name), "");
  return list->has_parameter("original") ? list->parameter("original") : list->buffer("original");
}

std::string type_before_parametrizations(const Module& module) { return module.base_type_name(); }

}  // namespace sparsity

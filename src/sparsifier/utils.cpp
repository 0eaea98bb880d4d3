// fqn helpers: module_to_fqn, fqn_to_module, get_arg_info_from_tensor_fqn, module_contains_param, swap_module.
#include "sparsity/sparsifier/utils.hpp"

#include "base/text.hpp"
#include "sparsity/core/parametrize.hpp"

namespace sparsity {

std::optional<std::string> module_to_fqn(const Module& model, const Module& module) {
  if (&model == &module) return std::string();
  for (const auto& [name, child] : model.named_children()) {
    if (auto r = module_to_fqn(*child, module)) return r->empty() ? name : name + "." + *r;
  }
  return std::nullopt;
}

FqnTarget fqn_to_module(const ModulePtr& model, const std::string& fqn) {
  SPARSITY_CHECK(model != nullptr, InvalidArgument, "fqn_to_module(", ::sparsity::detail::quote(fqn),
                 ") on a null model");
  if (fqn.empty()) return model;
  ModulePtr m = model;
  size_t start = 0;
  while (true) {
    const size_t dot = fqn.find('.', start);
    const bool last = dot == std::string::npos;
    const std::string part = fqn.substr(start, last ? std::string::npos : dot - start);
    if (m->has_child(part)) {
      m = m->child(part);
    } else if (last && m->has_tensor(part)) {
      return m->tensor(part);
    } else {
      return std::monostate{};
    }
    if (last) return m;
    start = dot + 1;
  }
}

TensorFqnInfo get_arg_info_from_tensor_fqn(const ModulePtr& model, const std::string& tensor_fqn) {
  TensorFqnInfo info;
  const size_t dot = tensor_fqn.rfind('.');
  info.tensor_name = dot == std::string::npos ? tensor_fqn : tensor_fqn.substr(dot + 1);
  info.module_fqn = dot == std::string::npos ? std::string() : tensor_fqn.substr(0, dot);
  info.tensor_fqn = tensor_fqn;
  const FqnTarget target = fqn_to_module(model, info.module_fqn);
  if (const auto* m = std::get_if<ModulePtr>(&target)) info.module = *m;
  return info;
}

bool module_contains_param(const Module& module, const std::string& parametrization_type) {
  if (!is_parametrized(module)) return false;
  for (const auto& [name, list] : module.child("parametrizations")->named_children()) {
    for (const auto& p : parametrizations_of(module, name)) {
      if (p->type_name() == parametrization_type) return true;
    }
  }
  return false;
}

ModulePtr swap_module(const ModulePtr& mod, const ModuleMapping& mapping) {
  SPARSITY_CHECK(mod != nullptr, InvalidArgument, "swap_module on a null module");
  const std::string type = type_before_parametrizations(*mod);
  auto it = mapping.find(type);
  if (it == mapping.end()) return mod;
  SPARSITY_CHECK(static_cast<bool>(it->second), InvalidArgument, "swap_module: the mapping for ",
                 ::sparsity::detail::quote(type), " has no from_dense function");
  ModulePtr swapped = it->second(*mod);
  SPARSITY_CHECK(swapped != nullptr, InvalidArgument, "swap_module: from_dense for ",
                 ::sparsity::detail::quote(type), " returned a null module");
  for (const auto& [id, hook] : mod->forward_pre_hooks()) swapped->register_forward_pre_hook(hook);
  for (const auto& [id, hook] : mod->forward_hooks()) swapped->register_forward_hook(hook);
  return swapped;
}

}  // namespace sparsity

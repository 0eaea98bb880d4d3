// Targets: module tree from tensor names, make_config_from_model over it, checks of named tensors.
#include "prune/targets.hpp"

#include <unordered_map>

#include "base/text.hpp"

namespace sparsity::prune {
namespace {

using ::sparsity::detail::at_file;
using ::sparsity::detail::at_key;
using ::sparsity::detail::quote;

// The dotted parts of a name; empty when a part is empty (such a name describes no module).
std::vector<std::string> parts_of(const std::string& name) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t dot = name.find('.', start);
    parts.push_back(name.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (parts.back().empty()) return {};
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

bool prunable_dtype(const io::TensorInfo& info) { return info.dtype && is_floating(*info.dtype); }

}  // namespace

std::string module_type_of(const io::TensorInfo& info) {
  if (!info.module_type.empty()) return info.module_type;
  if (!prunable_dtype(info)) return "Module";
  if (info.shape.size() == 2) return "Linear";
  if (info.shape.size() == 4) return "Conv2d";
  return "Module";
}

ModulePtr module_tree(const std::vector<io::CheckpointEntry>& entries) {
  // A module's type comes from its `weight`, known before the module is made (top down).
  std::unordered_map<std::string, std::string> type_of;
  for (const auto& e : entries) {
    const std::string& name = e.info->name;
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
      type_of.emplace(name.substr(0, name.size() - 7), module_type_of(*e.info));
    }
  }
  auto root = std::make_shared<Module>("Model");
  std::unordered_map<std::string, ModulePtr> modules;  // by fqn
  for (const auto& e : entries) {
    if (!e.info->dtype) continue;
    const auto parts = parts_of(e.info->name);
    if (parts.empty()) continue;
    ModulePtr cur = root;
    std::string fqn;
    bool ok = true;
    for (size_t i = 0; ok && i + 1 < parts.size(); ++i) {
      fqn += (i ? "." : "") + parts[i];
      auto it = modules.find(fqn);
      if (it == modules.end()) {
        if (cur->has_tensor(parts[i])) {
          ok = false;  // "a.b" is a tensor and "a.b.c" asks for a module a.b
          break;
        }
        const auto t = type_of.find(fqn);
        auto m = std::make_shared<Module>(t == type_of.end() ? "Module" : t->second);
        cur->register_module(parts[i], m);
        it = modules.emplace(fqn, m).first;
      }
      cur = it->second;
    }
    if (!ok || cur->has_child(parts.back()) || cur->has_tensor(parts.back())) continue;
    cur->register_parameter(parts.back(), e.file->tensor(e.info->name));
  }
  return root;
}

std::vector<Target> resolve_targets(const io::Checkpoint& model, const PruneConfig& config,
                                    const BaseSparsifier& sparsifier, const std::string& config_where) {
  std::vector<Target> targets;
  if (!config.config) {
    for (const auto& entry : sparsifier.make_config_from_model(module_tree(model.entries()))) {
      const std::string fqn = entry.options.at("tensor_fqn").get<std::string>();
      targets.push_back({fqn, entry.options, model.find(fqn)});
    }
    return targets;
  }
  for (size_t i = 0; i < config.config->size(); ++i) {
    const Json& e = (*config.config)[i];
    const std::string fqn = e.at("tensor_fqn").get<std::string>();
    const std::vector<std::string> where = {at_file(config_where),
                                            at_key("config[" + std::to_string(i) + "].tensor_fqn")};
    const io::CheckpointEntry* ce = model.find(fqn);
    SPARSITY_CHECK_AT(ce != nullptr, InvalidArgument, where, "tensor_fqn ", quote(fqn), " is not a tensor of ",
                      ::sparsity::detail::printable(model.path()));
    SPARSITY_CHECK_AT(prunable_dtype(*ce->info), InvalidArgument, where, "tensor ", quote(fqn), " has dtype ",
                      ce->info->dtype_name, "; only F32, F64, F16 and BF16 can be pruned");
    SPARSITY_CHECK_AT(ce->info->shape.size() == 2, InvalidArgument, where, "tensor ", quote(fqn), " has shape ",
                      shape_to_string(ce->info->shape), "; only 2-D tensors can be pruned");
    SPARSITY_CHECK_AT(!parts_of(fqn).empty(), InvalidArgument, where, "tensor_fqn ", quote(fqn),
                      " has an empty module name");
    targets.push_back({fqn, e, ce});
  }
  return targets;
}

}  // namespace sparsity::prune

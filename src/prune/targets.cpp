// Selection: module tree from tensor names, targets / config / make_config_from_model, ignore, skips.
#include "prune/targets.hpp"

#include <re2/re2.h>

#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "base/text.hpp"
#include "sparsity/io/orientation.hpp"

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

bool floating(const io::TensorInfo& info) { return info.dtype && is_floating(*info.dtype); }

bool ends_with_weight(const std::string& name) {
  return name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
}
std::string module_of(const std::string& tensor_name) {
  const size_t dot = tensor_name.rfind('.');
  return dot == std::string::npos ? "" : tensor_name.substr(0, dot);
}

// A name list of the config: exact names (a tensor, or a module meaning its weight) and "re:" patterns
// matched from the start of a module name.
class NameMatcher {
 public:
  explicit NameMatcher(const std::vector<std::string>& items) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].rfind("re:", 0) == 0) {
        RE2::Options o;
        o.set_log_errors(false);
        patterns_.push_back({i, std::make_unique<RE2>("(?:" + items[i].substr(3) + ")", o)});
      } else {
        exact_.emplace(items[i], i);
      }
    }
  }
  // The index of the first item that selects tensor `name` (of module `module`), or npos.
  size_t match(const std::string& name, const std::string& module) const {
    size_t best = std::string::npos;
    if (auto it = exact_.find(name); it != exact_.end()) best = it->second;
    if (auto it = exact_.find(module); it != exact_.end() && ends_with_weight(name))
      best = std::min(best, it->second);
    for (const auto& [i, re] : patterns_) {
      if (i < best && ends_with_weight(name)) {
        re2::StringPiece input(module);
        if (RE2::Consume(&input, *re)) best = i;
      }
    }
    return best;
  }
  bool is_pattern(size_t i) const {
    for (const auto& p : patterns_) {
      if (p.first == i) return true;
    }
    return false;
  }
  // The first pattern RE2 refuses, with its error; nullptr when every one compiles.
  const std::pair<size_t, std::unique_ptr<RE2>>* bad_pattern() const {
    for (const auto& p : patterns_) {
      if (!p.second->ok()) return &p;
    }
    return nullptr;
  }

 private:
  std::unordered_map<std::string, size_t> exact_;
  std::vector<std::pair<size_t, std::unique_ptr<RE2>>> patterns_;
};

// The group settings a candidate would get (defaults overlaid by its entry), for the N:M width rule.
bool nm_width_divides(const Json& defaults, const Json& entry, const io::TensorInfo& info) {
  Json g = defaults;
  for (const auto& [k, v] : entry.items()) g[k] = v;
  const auto shape = g.find("sparse_block_shape");
  if (shape == g.end() || !shape->is_array() || shape->size() != 2) return true;
  const int64_t br = (*shape)[0].get<int64_t>(), bc = (*shape)[1].get<int64_t>();
  const auto z = g.find("zeros_per_block");
  if (br != 1 || z == g.end() || z->is_null() || z->get<int64_t>() >= bc) return true;  // not N:M
  // The input width in torch's (out, in) orientation; N:M groups of an (out, in, k...) weight run along
  // its input channels.
  const Shape dims = io::torch_shape(info);
  if (dims.size() < 2) return true;
  return (dims.size() == 2 ? dims.back() : dims[1]) % bc == 0;
}

// "did you mean" for a name the model lacks: its weight when it names a module, else the closest names.
std::string hint_for(const std::string& name, const io::Checkpoint& model) {
  if (model.find(name + ".weight") != nullptr) return " (did you mean " + quote(name + ".weight") + "?)";
  std::vector<std::string> names;
  for (const auto& e : model.entries()) names.push_back(e.info->name);
  const auto close = ::sparsity::detail::closest_names(name, names);
  if (close.empty()) return "";
  std::string h = " (did you mean ";
  for (size_t i = 0; i < close.size(); ++i) h += (i ? ", " : "") + quote(close[i]);
  return h + "?)";
}

}  // namespace

std::function<bool(const std::string&)> name_filter(const std::vector<std::string>& items,
                                                    const std::string& where) {
  auto matcher = std::make_shared<const NameMatcher>(items);
  if (const auto* bad = matcher->bad_pattern()) {
    throw Error(ErrorCode::InvalidArgument,
                "invalid pattern " + quote(items[bad->first].substr(3)) + ": " + bad->second->error(),
                {at_file(where)});
  }
  return [matcher](const std::string& name) {
    return matcher->match(name, module_of(name)) != std::string::npos;
  };
}

std::string module_type_of(const io::TensorInfo& info) {
  if (!info.module_type.empty()) return info.module_type;
  if (!floating(info)) return "Module";
  if (info.shape.size() == 2) return "Linear";
  if (info.shape.size() == 4) return "Conv2d";
  return "Module";
}

// The name a tensor has in the module tree: its own, or "<name>.weight" for a layer weight the file
// names without ".weight" (module_tree's `as_layers`).
std::string tree_name(const io::TensorInfo& info, bool as_layers) {
  if (as_layers && !info.module_type.empty() && info.module_type != "Module" &&
      !ends_with_weight(info.name)) {
    return info.name + ".weight";
  }
  return info.name;
}

ModulePtr module_tree(const std::vector<io::CheckpointEntry>& entries, bool views, bool as_layers) {
  // A module's type comes from its `weight`, known before the module is made (top down).
  std::unordered_map<std::string, std::string> type_of;
  for (const auto& e : entries) {
    const std::string name = tree_name(*e.info, as_layers);
    if (ends_with_weight(name)) type_of.emplace(module_of(name), module_type_of(*e.info));
  }
  auto root = std::make_shared<Module>("Model");
  std::unordered_map<std::string, ModulePtr> modules;  // by fqn
  for (const auto& e : entries) {
    if (!e.info->dtype) continue;
    const auto parts = parts_of(tree_name(*e.info, as_layers));
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
    cur->register_parameter(parts.back(),
                            views ? e.file->tensor(e.info->name) : Tensor::empty({0}, *e.info->dtype));
  }
  return root;
}

Selection select_targets(const io::Checkpoint& model, const PruneConfig& config, BaseSparsifier& sparsifier,
                         const std::string& config_where) {
  auto where = [&](const std::string& key) {
    return std::vector<std::string>{at_file(config_where), at_key(key)};
  };
  std::vector<Target> picked;
  std::set<std::string> chosen;
  std::set<std::string> explicit_names;  // named one by one: kept even when an N:M width does not divide
  std::map<std::string, std::string> skip_reason;
  const Json& defaults = sparsifier.defaults();
  auto add = [&](const std::string& fqn, const Json& entry, bool named) {
    if (!chosen.insert(fqn).second) return;
    picked.push_back({fqn, entry, model.find(fqn)});
    if (named) explicit_names.insert(fqn);
  };
  auto check_named = [&](const std::string& fqn, const std::vector<std::string>& at) {
    const io::CheckpointEntry* ce = model.find(fqn);
    SPARSITY_CHECK_AT(ce != nullptr, InvalidArgument, at, "tensor_fqn ", quote(fqn), " is not a tensor of ",
                      ::sparsity::detail::printable(model.path()), hint_for(fqn, model));
    SPARSITY_CHECK_AT(floating(*ce->info), InvalidArgument, at, "tensor ", quote(fqn), " has dtype ",
                      ce->info->dtype_name, "; only F32, F64, F16 and BF16 can be pruned");
    SPARSITY_CHECK_AT(ce->info->shape.size() >= 2, InvalidArgument, at, "tensor ", quote(fqn), " has shape ",
                      shape_to_string(ce->info->shape),
                      "; only weights of rank 2 or more ((out, in) or (out, in, k...)) can be pruned");
    SPARSITY_CHECK_AT(!parts_of(fqn).empty(), InvalidArgument, at, "tensor_fqn ", quote(fqn),
                      " has an empty module name");
  };
  const std::set<std::string> kinds(config.module_types.begin(), config.module_types.end());

  // ---- 1. candidates -----------------------------------------------------------------------------------
  std::map<std::string, const Json*> entry_of;
  if (config.config) {
    for (const auto& e : *config.config) entry_of[e.at("tensor_fqn").get<std::string>()] = &e;
  }
  if (config.targets) {
    const NameMatcher matcher(*config.targets);
    std::vector<bool> used(config.targets->size(), false);
    // In the model's order; each tensor is picked by the first item that selects it.
    for (const auto& e : model.entries()) {
      const std::string& name = e.info->name;
      const size_t i = matcher.match(name, module_of(name));
      if (i == std::string::npos) continue;
      used[i] = true;
      if (matcher.is_pattern(i)) {
        if (!floating(*e.info) || !kinds.count(module_type_of(*e.info)))
          continue;  // patterns pick layers only
        const Json entry = entry_of.count(name) ? *entry_of[name] : Json{{"tensor_fqn", name}};
        if (!entry_of.count(name) && !nm_width_divides(defaults, entry, *e.info)) {
          skip_reason[name] = "N:M group width does not divide the input width";
          continue;
        }
        add(name, entry, false);
      } else {
        check_named(name, where("targets[" + std::to_string(i) + "]"));
        add(name, entry_of.count(name) ? *entry_of[name] : Json{{"tensor_fqn", name}}, true);
      }
    }
    for (size_t i = 0; i < used.size(); ++i) {
      if (used[i]) continue;
      const std::string& item = (*config.targets)[i];
      if (matcher.is_pattern(i)) {
        throw Error(ErrorCode::InvalidArgument,
                    "pattern " + quote(item.substr(3)) + " matches no module name",
                    where("targets[" + std::to_string(i) + "]"));
      }
      check_named(item, where("targets[" + std::to_string(i) + "]"));
    }
  }
  if (config.config) {
    for (size_t i = 0; i < config.config->size(); ++i) {
      const Json& e = (*config.config)[i];
      const std::string fqn = e.at("tensor_fqn").get<std::string>();
      check_named(fqn, where("config[" + std::to_string(i) + "].tensor_fqn"));
      add(fqn, e, true);
    }
  }
  if (!config.targets && !config.config) {
    sparsifier.supported_modules() = kinds;
    for (const auto& entry : sparsifier.make_config_from_model(module_tree(model.entries(), false, true))) {
      std::string fqn = entry.options.at("tensor_fqn").get<std::string>();
      const io::CheckpointEntry* ce = model.find(fqn);
      if (ce == nullptr) {  // a layer weight the file names without ".weight" (tree_name)
        fqn = module_of(fqn);
        ce = model.find(fqn);
      }
      if (ce == nullptr || !floating(*ce->info)) continue;
      if (!nm_width_divides(defaults, entry.options, *ce->info)) {
        skip_reason[fqn] = "N:M group width does not divide the input width";
        continue;
      }
      if (ce->info->shape.size() < 2) {
        skip_reason[fqn] = "rank " + std::to_string(ce->info->shape.size()) + " (not a layer weight)";
        continue;
      }
      add(fqn, Json{{"tensor_fqn", fqn}}, false);
    }
  }

  // ---- 2. ignore -------------------------------------------------------------------------------------
  if (!config.ignore.empty()) {
    const NameMatcher ignore(config.ignore);
    std::vector<Target> kept;
    for (auto& t : picked) {
      if (ignore.match(t.fqn, module_of(t.fqn)) != std::string::npos) {
        skip_reason[t.fqn] = "ignored";
      } else {
        kept.push_back(std::move(t));
      }
    }
    picked = std::move(kept);
  }

  // ---- 3. what was left alone, and why ------------------------------------------------------------------
  Selection sel;
  std::set<std::string> selected;
  for (const auto& t : picked) selected.insert(t.fqn);
  std::map<std::string, SkipReport> by_reason;
  for (const auto& e : model.entries()) {
    const io::TensorInfo& info = *e.info;
    if (selected.count(info.name)) continue;
    std::string reason;
    if (auto r = skip_reason.find(info.name); r != skip_reason.end()) {
      reason = r->second;
    } else if (!floating(info)) {
      reason = "not floating point";
    } else if (config.targets || config.config) {
      reason = "not selected by the config";
    } else if (!ends_with_weight(info.name) || info.shape.size() < 2) {
      reason = "not a weight (rank " + std::to_string(info.shape.size()) + ")";
    } else if (!kinds.count(module_type_of(info))) {
      reason = module_type_of(info) + " weight, not in module_types";
    } else {
      reason = "not reached by make_config_from_model";
    }
    SkipReport& s = by_reason[reason];
    s.reason = reason;
    ++s.tensors;
    s.parameters += info.numel();
  }
  for (auto& [r, s] : by_reason) sel.skipped.push_back(std::move(s));
  if (picked.empty()) {
    std::string why;
    for (const auto& s : sel.skipped) {
      why += (why.empty() ? "" : "; ") + std::to_string(s.tensors) + " " + s.reason;
    }
    throw Error(ErrorCode::InvalidArgument, "the configuration selects no tensor to prune (" + why + ")",
                {at_file(config_where)});
  }
  sel.targets = std::move(picked);
  return sel;
}

}  // namespace sparsity::prune

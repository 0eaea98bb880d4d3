// BaseSparsifier: prepare (validate, then register), step, squash_mask, convert, state dicts, clone, repr.
#include "sparsity/sparsifier/base_sparsifier.hpp"

#include <algorithm>
#include <sstream>
#include <unordered_map>

#include "base/text.hpp"
#include "sparsity/sparsifier/fake_sparsity.hpp"

namespace sparsity {
namespace {

// register_parametrization's consistency check for a user parametrization: one forward() must keep
// the tensor's shape and dtype.
void check_parametrization_output(Parametrization& p, const Tensor& current, size_t i,
                                  const std::string& tensor_fqn) {
  Tensor value;
  try {
    value = p.forward(current);
  } catch (const Error& e) {
    SPARSITY_FAIL(InvalidArgument, "config entry ", i, " (", ::sparsity::detail::quote(tensor_fqn),
                  "): ", e.what());
  }
  SPARSITY_CHECK(value.defined() && value.shape() == current.shape() && value.dtype() == current.dtype(),
                 InvalidArgument, "config entry ", i, " (", ::sparsity::detail::quote(tensor_fqn),
                 "): parametrization ", p.type_name(), " changes the tensor of shape ",
                 shape_to_string(current.shape()), " and dtype ", to_string(current.dtype()), " into ",
                 value.defined() ? shape_to_string(value.shape()) + " " + to_string(value.dtype())
                                 : std::string("an undefined tensor"));
}

const std::string& config_string(const Json& config, const char* key) {
  auto it = config.find(key);
  SPARSITY_CHECK(it != config.end() && it->is_string(), NotFound, "group has no string ",
                 ::sparsity::detail::quote(key), ": ", config.dump());
  return it->get_ref<const std::string&>();
}

// Python's str() of a config value, for repr: strings bare, lists "[1, 4]", numbers as JSON.
std::string py_str(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_null()) return "None";
  if (v.is_array()) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + (v[i].is_string() ? "'" + v[i].get<std::string>() + "'" : py_str(v[i]));
    return s + "]";
  }
  return v.dump();
}

std::shared_ptr<FakeSparsity> first_fake_sparsity(const Module& module, const std::string& tensor_name) {
  for (const auto& p : parametrizations_of(module, tensor_name)) {
    if (auto f = std::dynamic_pointer_cast<FakeSparsity>(p)) return f;
  }
  return nullptr;
}

}  // namespace

const std::string& Group::tensor_fqn() const { return config_string(config, "tensor_fqn"); }
const std::string& Group::module_fqn() const { return config_string(config, "module_fqn"); }
const std::string& Group::tensor_name() const { return config_string(config, "tensor_name"); }

BaseSparsifier::BaseSparsifier(Json defaults) : defaults_(std::move(defaults)) {
  if (defaults_.is_null()) defaults_ = Json::object();
  SPARSITY_CHECK(defaults_.is_object(), InvalidArgument, "sparsifier defaults must be a JSON object, got ",
                 defaults_.dump());
}

BaseSparsifier::~BaseSparsifier() = default;

TensorState& BaseSparsifier::state_of(const std::string& tensor_fqn) {
  for (auto& [fqn, s] : state_) {
    if (fqn == tensor_fqn) return s;
  }
  state_.emplace_back(tensor_fqn, TensorState{});
  return state_.back().second;
}

void BaseSparsifier::set_masks_in_model_state_dict(bool on) {
  masks_in_state_dict_ = on;
  for (const Group& g : groups_) {
    if (!g.module) continue;
    for (const auto& p : parametrizations_of(*g.module, g.tensor_name())) {
      if (auto f = std::dynamic_pointer_cast<FakeSparsity>(p)) f->include_in_state_dict(on);
    }
  }
}

// ---- prepare ----------------------------------------------------------------------------------------

std::vector<ConfigEntry> BaseSparsifier::make_config_from_model(const ModulePtr& model) const {
  SPARSITY_CHECK(model != nullptr, InvalidArgument, "make_config_from_model on a null model");
  std::vector<ConfigEntry> config;
  // module_to_fqn's answer (the first pre-order path) for every module, from one walk instead of a
  // search per module.
  std::unordered_map<const Module*, std::string> fqn_of;
  for (const auto& [fqn, m] : model->named_modules()) fqn_of.emplace(m.get(), fqn);
  std::vector<ModulePtr> stack{model};
  while (!stack.empty()) {
    ModulePtr module = stack.back();
    stack.pop_back();
    for (const auto& [name, child] : module->named_children()) {
      // Exact type, like torch's `type(child) in SUPPORTED_MODULES`: a parametrized Linear is
      // "ParametrizedLinear" and does not match.
      if (supported_modules_.count(child->type_name())) {
        config.emplace_back(Json{{"tensor_fqn", fqn_of.at(child.get()) + ".weight"}});
      } else {
        stack.push_back(child);
      }
    }
  }
  return config;
}

void BaseSparsifier::prepare(const ModulePtr& model, const std::optional<std::vector<ConfigEntry>>& config) {
  SPARSITY_CHECK(model != nullptr, InvalidArgument, "prepare: the model is null");
  SPARSITY_CHECK(model_ == nullptr && groups_.empty(), FailedPrecondition, class_name(),
                 " is already prepared (", groups_.size(),
                 " groups); prepare() runs once per sparsifier: make a new sparsifier for another model");
  SPARSITY_CHECK(defaults_.is_object(), InvalidArgument, "sparsifier defaults must be a JSON object, got ",
                 defaults_.dump());
  const std::vector<ConfigEntry> entries = config ? *config : make_config_from_model(model);

  // Validate every entry before touching the model, so a failed prepare leaves it untouched.
  struct Planned {
    Group group;
    Tensor mask;
    std::shared_ptr<Parametrization> parametrization;
  };
  std::vector<Planned> planned;
  for (size_t i = 0; i < entries.size(); ++i) {
    const ConfigEntry& entry = entries[i];
    SPARSITY_CHECK(entry.options.is_object(), InvalidArgument, "config entry ", i,
                   " must be a JSON object of options, got ", entry.options.dump());
    Json local = defaults_;
    for (const auto& [key, value] : entry.options.items()) local[key] = value;
    auto fqn_it = local.find("tensor_fqn");
    SPARSITY_CHECK(fqn_it != local.end(), InvalidArgument, "config entry ", i,
                   " has no 'tensor_fqn': tensor_fqn is a required argument in the sparsity config which "
                   "replaces previous `module` and [module]`fqn` arguments");
    SPARSITY_CHECK(fqn_it->is_string(), InvalidArgument, "config entry ", i, ": 'tensor_fqn' must be a string, got ",
                   fqn_it->dump());
    const std::string tensor_fqn = fqn_it->get<std::string>();
    const TensorFqnInfo info = get_arg_info_from_tensor_fqn(model, tensor_fqn);
    SPARSITY_CHECK(info.module != nullptr, NotFound, "config entry ", i, ": tensor_fqn ",
                   ::sparsity::detail::quote(tensor_fqn), " names no module of the model (no module ",
                   ::sparsity::detail::quote(info.module_fqn), ")");
    SPARSITY_CHECK(info.module->has_tensor(info.tensor_name), NotFound, "config entry ", i, ": tensor_fqn ",
                   ::sparsity::detail::quote(tensor_fqn), ": module ",
                   ::sparsity::detail::quote(info.module_fqn), " (", info.module->type_name(),
                   ") has no tensor ", ::sparsity::detail::quote(info.tensor_name), "");
    for (const char* key : {"module_fqn", "tensor_name"}) {
      auto it = local.find(key);
      if (it == local.end()) continue;
      const std::string& expected = std::string(key) == "module_fqn" ? info.module_fqn : info.tensor_name;
      SPARSITY_CHECK(it->is_string() && it->get<std::string>() == expected, InvalidArgument, "config entry ",
                     i, ": Given both `", key, "` (", it->dump(), ") and `tensor_fqn` (",
                     ::sparsity::detail::quote(tensor_fqn), ") in the config, it is expected them to agree!");
    }
    SPARSITY_CHECK(!entry.module || entry.module == info.module, InvalidArgument, "config entry ", i,
                   ": Given both `module` and `tensor_fqn` (", ::sparsity::detail::quote(tensor_fqn),
                   ") in the config, it is expected them to agree!");
    for (const Planned& p : planned) {
      SPARSITY_CHECK(p.group.module != info.module || p.group.tensor_name() != info.tensor_name,
                     InvalidArgument, "config entry ", i, ": tensor ", ::sparsity::detail::quote(tensor_fqn),
                     " is already configured by another entry (",
                     ::sparsity::detail::quote(p.group.tensor_fqn()), ")");
    }
    local["tensor_fqn"] = tensor_fqn;
    local["module_fqn"] = info.module_fqn;
    local["tensor_name"] = info.tensor_name;

    const Tensor current = info.module->tensor(info.tensor_name);
    const Tensor mask = entry.mask.defined() ? entry.mask : ones_like(current);
    std::shared_ptr<Parametrization> p =
        entry.parametrization ? entry.parametrization(mask) : std::make_shared<FakeSparsity>(mask);
    SPARSITY_CHECK(p != nullptr, InvalidArgument, "config entry ", i, " (",
                   ::sparsity::detail::quote(tensor_fqn), "): the parametrization factory returned null");
    // The consistency check of register_parametrization, run now (before anything is registered).
    // FakeSparsity keeps the tensor's dtype, so for it the check is the shape comparison its forward()
    // makes; running that forward here would materialise a full masked copy of every weight.
    if (!entry.parametrization) {
      SPARSITY_CHECK(mask.shape() == current.shape(), InvalidArgument, "config entry ", i, " (",
                     ::sparsity::detail::quote(tensor_fqn), "): FakeSparsity: mask of shape ",
                     shape_to_string(mask.shape()), " does not match the tensor's shape ",
                     shape_to_string(current.shape()));
    } else {
      check_parametrization_output(*p, current, i, tensor_fqn);
    }
    Group g;
    g.config = std::move(local);
    g.module = info.module;
    g.parametrization = entry.parametrization;
    g.mask = entry.mask;
    planned.push_back({std::move(g), mask, std::move(p)});
  }

  model_ = model;
  for (Planned& p : planned) {
    if (auto f = std::dynamic_pointer_cast<FakeSparsity>(p.parametrization)) {
      f->include_in_state_dict(masks_in_state_dict_);
    }
    state_of(p.group.tensor_fqn()).mask = p.mask;
    register_parametrization(*p.group.module, p.group.tensor_name(), p.parametrization, /*unsafe=*/true);
    groups_.push_back(std::move(p.group));
  }
}

// ---- step / squash / convert ----------------------------------------------------------------------------

void BaseSparsifier::step() {
  ++step_count_;
  if (!enable_mask_update) return;
  for (Group& g : groups_) {
    SPARSITY_CHECK(g.module != nullptr, FailedPrecondition, "step: group ",
                   ::sparsity::detail::quote(g.tensor_fqn()), " is not bound to a module of the model");
    SPARSITY_CHECK(is_parametrized(*g.module, g.tensor_name()), FailedPrecondition,
                   "step: ", ::sparsity::detail::quote(g.tensor_fqn()),
                   " is no longer parametrized (squash_mask already ran?)");
    // A copy: update_mask may add keys to g.config, which can move the strings it holds.
    const std::string tensor_name = g.tensor_name();
    update_mask(*g.module, tensor_name, g);
  }
}

void BaseSparsifier::squash_mask(const std::vector<std::string>& params_to_keep,
                                 const std::map<std::string, std::vector<std::string>>& params_to_keep_per_layer) {
  // Check everything first: a failing squash leaves every group parametrized.
  std::vector<Json> sparse_params(groups_.size());
  for (size_t i = 0; i < groups_.size(); ++i) {
    const Group& g = groups_[i];
    SPARSITY_CHECK(g.module != nullptr, FailedPrecondition, "squash_mask: group ",
                   ::sparsity::detail::quote(g.tensor_fqn()), " is not bound to a module of the model");
    SPARSITY_CHECK(is_parametrized(*g.module, g.tensor_name()), FailedPrecondition,
                   "squash_mask: ", ::sparsity::detail::quote(g.tensor_fqn()),
                   " is not parametrized (squash_mask already ran?)");
    Json params = Json::object();
    auto take = [&](const std::string& key) {
      auto it = g.config.find(key);
      SPARSITY_CHECK(it != g.config.end(), NotFound, "squash_mask: group ",
                     ::sparsity::detail::quote(g.tensor_fqn()), " has no key ",
                     ::sparsity::detail::quote(key), " to keep");
      params[key] = *it;
    };
    for (const auto& key : params_to_keep) take(key);
    if (auto it = params_to_keep_per_layer.find(g.module_fqn()); it != params_to_keep_per_layer.end()) {
      for (const auto& key : it->second) take(key);
    }
    sparse_params[i] = std::move(params);
  }
  for (size_t i = 0; i < groups_.size(); ++i) {
    Group& g = groups_[i];
    remove_parametrizations(*g.module, g.tensor_name(), /*leave_parametrized=*/true);
    if (!sparse_params[i].empty()) g.module->sparse_params = sparse_params[i];
  }
}

namespace {
void convert_children(const ModulePtr& module, const ModuleMapping& mapping, const std::string& ptype) {
  for (const auto& [name, child] : module->named_children()) {
    if (module_contains_param(*child, ptype) && mapping.count(type_before_parametrizations(*child))) {
      module->replace_module(name, swap_module(child, mapping));
    } else {
      convert_children(child, mapping, ptype);
    }
  }
}
}  // namespace

ModulePtr BaseSparsifier::convert(const ModulePtr& module, const ModuleMapping& mapping, bool inplace,
                                  const std::string& parametrization_type) {
  SPARSITY_CHECK(module != nullptr, InvalidArgument, "convert: the module is null");
  SPARSITY_CHECK(!mapping.empty(), InvalidArgument,
                 "convert: the mapping is empty (torch: 'Need to auto generate mapping')");
  ModulePtr root = inplace ? module : module->clone();
  convert_children(root, mapping, parametrization_type);
  return root;
}

// ---- state dicts ------------------------------------------------------------------------------------------

SparsifierStateDict BaseSparsifier::state_dict() const {
  SparsifierStateDict sd;
  for (const auto& [fqn, s] : state_) {
    sd.state.emplace_back(fqn, TensorState{s.mask.defined() ? s.mask.clone() : Tensor(), s.values});
  }
  for (const Group& g : groups_) {
    Json c = g.config;
    c.erase("module_fqn");
    c.erase("tensor_name");
    c.erase("module");
    sd.groups.push_back(std::move(c));
  }
  return sd;
}

std::vector<std::string> BaseSparsifier::load_state_dict(const SparsifierStateDict& sd, bool strict) {
  SPARSITY_CHECK(model_ != nullptr, FailedPrecondition, "load_state_dict: ", class_name(),
                 " has no model; call prepare() first");
  std::vector<std::string> skipped;
  auto skip = [&](const std::string& fqn, const std::string& why) {
    SPARSITY_CHECK(!strict, NotFound, "Error loading ", ::sparsity::detail::quote(fqn),
                   " into the model: ", why);
    if (std::find(skipped.begin(), skipped.end(), fqn) == skipped.end()) skipped.push_back(fqn);
  };
  // Resolve and check everything first; then mutate.
  struct MaskLoad {
    std::string fqn;
    TensorFqnInfo info;
    const TensorState* state;
  };
  std::vector<MaskLoad> loads;
  for (const auto& [fqn, s] : sd.state) {
    TensorFqnInfo info = get_arg_info_from_tensor_fqn(model_, fqn);
    if (!info.module) {
      skip(fqn, "the model has no module " + ::sparsity::detail::quote(info.module_fqn));
      continue;
    }
    if (!info.module->has_tensor(info.tensor_name)) {
      skip(fqn, "module " + ::sparsity::detail::quote(info.module_fqn) + " has no tensor " +
                    ::sparsity::detail::quote(info.tensor_name));
      continue;
    }
    if (s.mask.defined()) {
      const Tensor current = info.module->tensor(info.tensor_name);
      SPARSITY_CHECK(s.mask.shape() == current.shape(), InvalidArgument, "Error loading ",
                     ::sparsity::detail::quote(fqn), ": mask of shape ", shape_to_string(s.mask.shape()),
                     " for a tensor of shape ", shape_to_string(current.shape()));
    }
    loads.push_back({fqn, std::move(info), &s});
  }
  std::vector<Group> groups;
  for (size_t i = 0; i < sd.groups.size(); ++i) {
    const Json& c = sd.groups[i];
    SPARSITY_CHECK(c.is_object() && c.contains("tensor_fqn") && c["tensor_fqn"].is_string(), InvalidArgument,
                   "load_state_dict: group ", i, " has no string 'tensor_fqn': ", c.dump());
    const std::string fqn = c["tensor_fqn"].get<std::string>();
    TensorFqnInfo info = get_arg_info_from_tensor_fqn(model_, fqn);
    if (!info.module || !info.module->has_tensor(info.tensor_name)) {
      skip(fqn, "the model has no tensor " + ::sparsity::detail::quote(info.tensor_name) + " in module " +
                    ::sparsity::detail::quote(info.module_fqn));
      continue;
    }
    Group g;
    g.config = c;
    g.config["module_fqn"] = info.module_fqn;
    g.config["tensor_name"] = info.tensor_name;
    g.module = info.module;
    groups.push_back(std::move(g));
  }

  NamedList<TensorState> state;
  for (const MaskLoad& l : loads) {
    Module& module = *l.info.module;
    auto fake = first_fake_sparsity(module, l.info.tensor_name);
    if (!fake) {
      const Tensor current = module.tensor(l.info.tensor_name);
      fake = std::make_shared<FakeSparsity>(ones_like(current));
      fake->include_in_state_dict(masks_in_state_dict_);
      register_parametrization(module, l.info.tensor_name, fake, /*unsafe=*/true);
    }
    Tensor mask = fake->mask();
    // The buffer keeps its identity (state, FakeSparsity and outside references stay aliased) and
    // takes a copy of the given mask: `sd` is never mutated nor aliased.
    if (l.state->mask.defined()) mask.set_(l.state->mask.clone());
    state.emplace_back(l.fqn, TensorState{mask, l.state->values});
  }
  state_ = std::move(state);
  groups_ = std::move(groups);
  return skipped;
}

// ---- clone / repr / helpers -------------------------------------------------------------------------

std::unique_ptr<BaseSparsifier> BaseSparsifier::clone() const {
  std::unique_ptr<BaseSparsifier> copy = clone_self();
  SPARSITY_CHECK(copy != nullptr && copy.get() != this, Internal, class_name(),
                 "::clone_self() must return a new sparsifier");
  if (!model_) return copy;
  const ModulePtr model = model_->clone();
  copy->model_ = model;
  // Tensors of the copy by the fqn their originals have in the source model.
  const NamedList<Tensor> source_buffers = model_->named_buffers();
  const NamedList<Tensor> source_params = model_->named_parameters();
  auto rebind = [&](const Tensor& t) -> Tensor {
    if (!t.defined()) return t;
    for (const auto* list : {&source_buffers, &source_params}) {
      for (const auto& [fqn, src] : *list) {
        if (!src.is_same(t)) continue;
        const size_t dot = fqn.rfind('.');
        ModulePtr owner = model->get_submodule(dot == std::string::npos ? "" : fqn.substr(0, dot));
        const std::string name = dot == std::string::npos ? fqn : fqn.substr(dot + 1);
        return owner->has_buffer(name) ? owner->buffer(name) : owner->parameter(name);
      }
    }
    return t.clone();
  };
  for (Group& g : copy->groups_) {
    if (g.module) {
      const auto path = module_to_fqn(*model_, *g.module);
      g.module = path ? model->get_submodule(*path) : nullptr;
    }
    g.mask = rebind(g.mask);
  }
  for (auto& [fqn, s] : copy->state_) s.mask = rebind(s.mask);
  return copy;
}

std::string BaseSparsifier::repr() const {
  std::string s = class_name() + " (";
  for (size_t i = 0; i < groups_.size(); ++i) {
    const Group& g = groups_[i];
    s += "\n\tGroup " + std::to_string(i) + "\n";
    s += "\t    module: " + (g.module ? g.module->repr() : std::string("None")) + "\n";
    std::vector<std::string> keys;
    for (const auto& [key, value] : g.config.items()) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    for (const auto& key : keys) s += "\t    " + key + ": " + py_str(g.config[key]) + "\n";
  }
  return s + ")";
}

Tensor BaseSparsifier::mask_of(const Module& module, const std::string& tensor_name) {
  const auto chain = parametrizations_of(module, tensor_name);
  SPARSITY_CHECK(!chain.empty(), FailedPrecondition, "", ::sparsity::detail::quote(tensor_name), " of ",
                 module.type_name(), " is not parametrized (no mask)");
  SPARSITY_CHECK(chain.front()->has_buffer("mask"), FailedPrecondition, "the first parametrization of ",
                 ::sparsity::detail::quote(tensor_name), " in ", module.type_name(), " (",
                 chain.front()->type_name(), ") has no mask");
  return chain.front()->buffer("mask");
}

}  // namespace sparsity

// Module: registration and validation of names, fqn enumeration, state dicts, hooks, repr and deep clone.
#include "sparsity/core/module.hpp"

#include <algorithm>
#include <set>
#include <sstream>
#include <typeinfo>
#include <unordered_map>

#include "base/text.hpp"
#include "sparsity/core/parametrize.hpp"

namespace sparsity {
namespace {

std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

void validate_name(const std::string& name, const char* what) {
  SPARSITY_CHECK(!name.empty(), InvalidArgument, what, " name must not be empty");
  SPARSITY_CHECK(name.find('.') == std::string::npos, InvalidArgument, what,
                 " name must not contain a dot (got ", ::sparsity::detail::quote(name), ")");
}

// A Tensor handle's identity: the address of its shared impl's shape (stable while the tensor lives).
const void* tensor_key(const Tensor& t) { return &t.shape(); }

template <class V>
auto find_named(NamedList<V>& list, const std::string& name) {
  return std::find_if(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
}

// The ParametrizationList of `name` (child parametrizations.<name>), or null.
ModulePtr parametrization_list(const Module& m, const std::string& name) {
  if (!m.has_child("parametrizations")) return nullptr;
  ModulePtr dict = m.child("parametrizations");
  if (dict->base_type_name() != "ModuleDict" || !dict->has_child(name)) return nullptr;
  ModulePtr list = dict->child(name);
  return list->base_type_name() == "ParametrizationList" ? list : nullptr;
}

std::string add_indent(const std::string& s, int spaces) {
  std::string out;
  const std::string pad(static_cast<size_t>(spaces), ' ');
  for (char c : s) {
    out += c;
    if (c == '\n') out += pad;
  }
  return out;
}

}  // namespace

Module::Module(std::string type_name) : type_name_(std::move(type_name)) {
  SPARSITY_CHECK(!type_name_.empty(), InvalidArgument, "module type name must not be empty");
}

std::string Module::type_name() const {
  return is_parametrized(*this) ? "Parametrized" + type_name_ : type_name_;
}

// ---- registration ---------------------------------------------------------------------------------

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  return register_tensor(name, std::move(value), /*is_parameter=*/true);
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  return register_tensor(name, std::move(value), /*is_parameter=*/false);
}

Tensor Module::register_tensor(const std::string& name, Tensor value, bool is_parameter) {
  const char* what = is_parameter ? "parameter" : "buffer";
  validate_name(name, what);
  SPARSITY_CHECK(value.defined(), InvalidArgument, what, " ", ::sparsity::detail::quote(name), " of ",
                 type_name_, " is undefined");
  SPARSITY_CHECK(!has_child(name), InvalidArgument, "cannot register ", what, " ",
                 ::sparsity::detail::quote(name), " of ", type_name_, ": a child module has that name");
  SPARSITY_CHECK(!parametrization_list(*this, name), InvalidArgument, "cannot register ", what, " ",
                 ::sparsity::detail::quote(name), " of ", type_name_, ": that tensor is parametrized");
  auto it = tensors_.find(name);
  if (it != tensors_.end()) {
    SPARSITY_CHECK(it->second.is_parameter == is_parameter, InvalidArgument, "cannot register ", what, " ",
                   ::sparsity::detail::quote(name), " of ", type_name_, ": a ",
                   is_parameter ? "buffer" : "parameter", " has that name");
    it->second.value = value;
  } else {
    tensors_.emplace(name, TensorSlot{value, is_parameter, true});
  }
  return value;
}

void Module::register_module_impl(const std::string& name, ModulePtr module) {
  validate_name(name, "module");
  SPARSITY_CHECK(module != nullptr, InvalidArgument, "module ", ::sparsity::detail::quote(name),
                 " registered in ", type_name_, " is null");
  SPARSITY_CHECK(tensors_.find(name) == tensors_.end(), InvalidArgument, "cannot register module ",
                 ::sparsity::detail::quote(name), " in ", type_name_,
                 ": a parameter or buffer has that name");
  // A module may appear several times in a tree, but never inside itself (enumeration would not end).
  SPARSITY_CHECK(module.get() != this, InvalidArgument, "cannot register module ",
                 ::sparsity::detail::quote(name), " inside itself");
  for (const auto& [fqn, m] : module->named_modules()) {
    SPARSITY_CHECK(m.get() != this, InvalidArgument, "cannot register module ",
                   ::sparsity::detail::quote(name), ": this ", type_name_, " is its descendant ",
                   ::sparsity::detail::quote(fqn), " (cycle)");
  }
  auto it = children_.find(name);
  if (it != children_.end()) {
    it->second = std::move(module);
  } else {
    children_.emplace(name, std::move(module));
  }
}

void Module::replace_module(const std::string& name, ModulePtr module) {
  register_module_impl(name, std::move(module));
}

void Module::unregister(const std::string& name) {
  if (auto it = tensors_.find(name); it != tensors_.end()) {
    tensors_.erase(it);
    return;
  }
  if (auto it = children_.find(name); it != children_.end()) {
    children_.erase(it);
    return;
  }
  SPARSITY_FAIL(NotFound, "cannot unregister ", ::sparsity::detail::quote(name), ": ", type_name_,
                " has no parameter, buffer or child of that name");
}

// ---- direct access --------------------------------------------------------------------------------

Tensor Module::tensor(const std::string& name) const {
  if (ModulePtr plist = parametrization_list(*this, name)) return plist->forward(Tensor());
  auto it = tensors_.find(name);
  SPARSITY_CHECK(it != tensors_.end(), NotFound, type_name_,
                 " has no parameter, buffer or parametrized tensor ", ::sparsity::detail::quote(name), "");
  return it->second.value;
}

bool Module::has_tensor(const std::string& name) const {
  return tensors_.find(name) != tensors_.end() || parametrization_list(*this, name) != nullptr;
}

void Module::set_tensor(const std::string& name, Tensor value) {
  SPARSITY_CHECK(value.defined(), InvalidArgument, "cannot assign an undefined tensor to ",
                 ::sparsity::detail::quote(name), " of ", type_name_);
  if (parametrization_list(*this, name)) {
    const auto chain = parametrizations_of(*this, name);
    for (size_t i = chain.size(); i-- > 0;) {
      SPARSITY_CHECK(chain[i]->has_right_inverse(), FailedPrecondition, "cannot assign ",
                     ::sparsity::detail::quote(name), " of ", type_name(), ": parametrization ", i, " (",
                     chain[i]->type_name(), ") has no right_inverse");
    }
    for (size_t i = chain.size(); i-- > 0;) value = chain[i]->right_inverse(value);
    parametrization_original(*this, name).set_(value);
    return;
  }
  auto it = tensors_.find(name);
  SPARSITY_CHECK(it != tensors_.end(), NotFound, "cannot assign ", ::sparsity::detail::quote(name), ": ",
                 type_name_, " has no parameter or buffer of that name");
  it->second.value = std::move(value);
}

bool Module::has_parameter(const std::string& name) const {
  auto it = tensors_.find(name);
  return it != tensors_.end() && it->second.is_parameter;
}
bool Module::has_buffer(const std::string& name) const {
  auto it = tensors_.find(name);
  return it != tensors_.end() && !it->second.is_parameter;
}
bool Module::has_child(const std::string& name) const {
  return children_.find(name) != children_.end();
}

Tensor Module::parameter(const std::string& name) const {
  auto it = tensors_.find(name);
  SPARSITY_CHECK(it != tensors_.end() && it->second.is_parameter, NotFound, type_name_, " has no parameter ",
                 ::sparsity::detail::quote(name), "");
  return it->second.value;
}
Tensor Module::buffer(const std::string& name) const {
  auto it = tensors_.find(name);
  SPARSITY_CHECK(it != tensors_.end() && !it->second.is_parameter, NotFound, type_name_, " has no buffer ",
                 ::sparsity::detail::quote(name), "");
  return it->second.value;
}
ModulePtr Module::child(const std::string& name) const {
  auto it = children_.find(name);
  SPARSITY_CHECK(it != children_.end(), NotFound, type_name_, " has no child module ",
                 ::sparsity::detail::quote(name), "");
  return it->second;
}

// ---- enumeration ------------------------------------------------------------------------------------

NamedList<ModulePtr> Module::named_children() const {
  NamedList<ModulePtr> out;
  std::set<const Module*> seen;
  for (const auto& [name, m] : children_) {
    if (seen.insert(m.get()).second) out.emplace_back(name, m);
  }
  return out;
}

NamedList<ModulePtr> Module::named_modules(const std::string& prefix) const {
  ModulePtr self = std::const_pointer_cast<Module>(weak_from_this().lock());
  SPARSITY_CHECK(self != nullptr, FailedPrecondition, "named_modules() on a ", type_name_,
                 " that is not owned by a std::shared_ptr (create modules with std::make_shared)");
  NamedList<ModulePtr> out;
  std::set<const Module*> seen;
  // Explicit stack of (fqn, module) in pre-order, children pushed in reverse to keep their order.
  std::vector<std::pair<std::string, ModulePtr>> stack{{prefix, self}};
  while (!stack.empty()) {
    auto [fqn, m] = std::move(stack.back());
    stack.pop_back();
    if (!seen.insert(m.get()).second) continue;
    out.emplace_back(fqn, m);
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it) {
      stack.emplace_back(join_name(fqn, it->first), it->second);
    }
  }
  return out;
}

NamedList<Tensor> Module::named_parameters(bool recurse) const {
  return named_tensors(recurse, /*parameters=*/true);
}

NamedList<Tensor> Module::named_buffers(bool recurse) const {
  return named_tensors(recurse, /*parameters=*/false);
}

NamedList<Tensor> Module::named_tensors(bool recurse, bool parameters) const {
  NamedList<Tensor> out;
  std::set<const void*> seen;
  auto add_own = [&](const Module& m, const std::string& prefix) {
    for (const auto& [name, slot] : m.tensors_) {
      if (slot.is_parameter == parameters && seen.insert(tensor_key(slot.value)).second) {
        out.emplace_back(join_name(prefix, name), slot.value);
      }
    }
  };
  if (!recurse) {
    add_own(*this, "");
    return out;
  }
  for (const auto& [prefix, m] : named_modules()) add_own(*m, prefix);
  return out;
}

ModulePtr Module::get_submodule(const std::string& fqn) const {
  ModulePtr m = std::const_pointer_cast<Module>(weak_from_this().lock());
  SPARSITY_CHECK(m != nullptr, FailedPrecondition, "get_submodule() on a ", type_name_,
                 " that is not owned by a std::shared_ptr");
  if (fqn.empty()) return m;
  std::string walked;
  size_t start = 0;
  while (true) {
    const size_t dot = fqn.find('.', start);
    const std::string part = fqn.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    SPARSITY_CHECK(m->has_child(part), NotFound, "no submodule ", ::sparsity::detail::quote(fqn), ": ",
                   walked.empty() ? std::string("the root") : ::sparsity::detail::quote(walked), " (",
                   m->type_name(), ") has no child ", ::sparsity::detail::quote(part), "");
    m = m->child(part);
    walked = join_name(walked, part);
    if (dot == std::string::npos) return m;
    start = dot + 1;
  }
}

// ---- state dict -------------------------------------------------------------------------------------

StateDict Module::state_dict() const {
  StateDict out;
  // Like torch: shared submodules appear under every name; a module that contributes no state
  // (FakeSparsity) hides its subtree.
  std::vector<std::pair<std::string, const Module*>> stack{{"", this}};
  while (!stack.empty()) {
    auto [prefix, m] = stack.back();
    stack.pop_back();
    if (!m->contributes_state()) continue;
    for (const auto& [name, slot] : m->tensors_) {
      if (slot.is_parameter || slot.persistent) out.emplace_back(join_name(prefix, name), slot.value);
    }
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it) {
      stack.emplace_back(join_name(prefix, it->first), it->second.get());
    }
  }
  return out;
}

LoadStateDictResult Module::load_state_dict(const StateDict& state, bool strict) {
  const StateDict own = state_dict();
  std::unordered_map<std::string, const Tensor*> given;
  for (const auto& [key, t] : state) {
    SPARSITY_CHECK(given.emplace(key, &t).second, InvalidArgument, "state dict holds key ",
                   ::sparsity::detail::quote(key), " twice");
    SPARSITY_CHECK(t.defined(), InvalidArgument, "state dict entry ", ::sparsity::detail::quote(key),
                   " is undefined");
  }
  LoadStateDictResult result;
  std::set<std::string> expected;
  for (const auto& [key, dst] : own) {
    expected.insert(key);
    auto it = given.find(key);
    if (it == given.end()) {
      result.missing_keys.push_back(key);
      continue;
    }
    const Tensor& src = *it->second;
    SPARSITY_CHECK(src.shape() == dst.shape(), InvalidArgument, "size mismatch for ",
                   ::sparsity::detail::quote(key), ": checkpoint has shape ", shape_to_string(src.shape()),
                   ", the model ", shape_to_string(dst.shape()));
    SPARSITY_CHECK(!dst.is_read_only(), FailedPrecondition, "cannot load ", ::sparsity::detail::quote(key),
                   ": the model's tensor is a read-only view");
  }
  for (const auto& [key, t] : state) {
    if (!expected.count(key)) result.unexpected_keys.push_back(key);
  }
  if (strict && (!result.missing_keys.empty() || !result.unexpected_keys.empty())) {
    std::ostringstream os;
    os << "error loading state dict into " << type_name() << ":";
    if (!result.missing_keys.empty()) {
      os << " missing keys:";
      for (const auto& k : result.missing_keys) os << " " << ::sparsity::detail::quote(k);
      os << ";";
    }
    if (!result.unexpected_keys.empty()) {
      os << " unexpected keys:";
      for (const auto& k : result.unexpected_keys) os << " " << ::sparsity::detail::quote(k);
      os << ";";
    }
    SPARSITY_FAIL(InvalidArgument, os.str());
  }
  for (const auto& [key, dst] : own) {
    auto it = given.find(key);
    if (it != given.end()) dst.copy_(*it->second);
  }
  return result;
}

// ---- forward ------------------------------------------------------------------------------------------

Tensor Module::operator()(const Tensor& input) {
  Tensor x = input;
  const auto pre = pre_hooks_;  // hooks may add or remove hooks
  for (const auto& [id, hook] : pre) {
    if (auto r = hook(*this, x)) x = *r;
  }
  Tensor y = forward(x);
  const auto post = hooks_;
  for (const auto& [id, hook] : post) {
    if (auto r = hook(*this, x, y)) y = *r;
  }
  return y;
}

Tensor Module::forward(const Tensor&) {
  SPARSITY_FAIL(FailedPrecondition, "module of type ", ::sparsity::detail::quote(type_name()),
                " has no forward()");
}

int Module::register_forward_pre_hook(ForwardPreHook hook) {
  SPARSITY_CHECK(static_cast<bool>(hook), InvalidArgument, "empty forward pre-hook on ", type_name_);
  const int id = next_hook_id_++;
  pre_hooks_.emplace_back(std::to_string(id), std::move(hook));
  return id;
}

int Module::register_forward_hook(ForwardHook hook) {
  SPARSITY_CHECK(static_cast<bool>(hook), InvalidArgument, "empty forward hook on ", type_name_);
  const int id = next_hook_id_++;
  hooks_.emplace_back(std::to_string(id), std::move(hook));
  return id;
}

void Module::remove_hook(int handle) {
  const std::string key = std::to_string(handle);
  if (auto it = find_named(pre_hooks_, key); it != pre_hooks_.end()) {
    pre_hooks_.erase(it);
    return;
  }
  if (auto it = find_named(hooks_, key); it != hooks_.end()) {
    hooks_.erase(it);
    return;
  }
  SPARSITY_FAIL(NotFound, type_name_, " has no hook with handle ", handle);
}

NamedList<Module::ForwardPreHook> Module::forward_pre_hooks() const { return pre_hooks_; }
NamedList<Module::ForwardHook> Module::forward_hooks() const { return hooks_; }

// ---- misc ---------------------------------------------------------------------------------------------

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, c] : children_) c->train(on);
}

ModulePtr Module::clone_self() const {
  SPARSITY_CHECK(typeid(*this) == typeid(Module), FailedPrecondition, "module type ",
                 ::sparsity::detail::quote(type_name_),
                 " cannot be cloned: derive it from sparsity::Cloneable<", type_name_, ">");
  return ModulePtr(new Module(*this));
}

ModulePtr Module::clone_impl(std::map<const Module*, ModulePtr>& seen) const {
  if (auto it = seen.find(this); it != seen.end()) return it->second;
  ModulePtr copy = clone_self();
  SPARSITY_CHECK(copy != nullptr && copy.get() != this && copy->tensors_.size() == tensors_.size() &&
                     copy->children_.size() == children_.size(),
                 Internal, "clone_self() of ", type_name_,
                 " must return a copy with the same parameters, buffers and children");
  seen.emplace(this, copy);
  for (auto& [name, c] : copy->children_) c = c->clone_impl(seen);
  return copy;
}

ModulePtr Module::clone() const {
  std::map<const Module*, ModulePtr> seen;
  ModulePtr root = clone_impl(seen);
  // Tensors are deep-copied once each, so tensors shared inside the tree stay shared in the copy.
  std::unordered_map<const void*, Tensor> copies;
  for (auto& [orig, copy] : seen) {
    for (auto& [name, slot] : copy->tensors_) {
      auto [it, inserted] = copies.try_emplace(tensor_key(slot.value));
      if (inserted) it->second = slot.value.clone();
      slot.value = it->second;
    }
  }
  return root;
}

std::string Module::repr() const {
  std::vector<std::string> lines;
  const std::string extra = extra_repr();
  size_t extra_count = 0;
  if (!extra.empty()) {
    std::istringstream is(extra);
    for (std::string line; std::getline(is, line);) {
      lines.push_back(line);
      ++extra_count;
    }
  }
  for (const auto& [name, c] : children_) lines.push_back("(" + name + "): " + add_indent(c->repr(), 2));
  std::string s = type_name() + "(";
  if (!lines.empty()) {
    if (extra_count == 1 && children_.empty()) {
      s += lines[0];
    } else {
      s += "\n  ";
      for (size_t i = 0; i < lines.size(); ++i) s += (i ? "\n  " : "") + lines[i];
      s += "\n";
    }
  }
  return s + ")";
}

}  // namespace sparsity

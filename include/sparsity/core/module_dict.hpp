// ModuleDict: named child modules with no forward (torch's nn.ModuleDict); parametrizations live in one.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "sparsity/core/module.hpp"

namespace sparsity {

/// Named children with no forward of its own (torch's nn.ModuleDict).
class ModuleDict : public Cloneable<ModuleDict> {
 public:
  ModuleDict() : Cloneable("ModuleDict") {}
  /// Adds or replaces child `name` (validated like every module name).
  void insert(const std::string& name, ModulePtr module) { register_module(name, std::move(module)); }
  bool contains(const std::string& name) const { return has_child(name); }
  /// Child `name`; NotFound naming it.
  ModulePtr at(const std::string& name) const { return child(name); }
  size_t size() const { return named_children().size(); }
  bool empty() const { return size() == 0; }
};

}  // namespace sparsity

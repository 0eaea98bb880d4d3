// Container modules: Sequential, ModuleList, ModuleDict, and the trivial ReLU / Identity layers.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>

#include "sparsity/module.hpp"

namespace sparsity::nn {

/// Children "0", "1", ... applied in order by forward().
///
///   auto seq = std::make_shared<sparsity::nn::Sequential>();
///   seq->push_back(std::make_shared<sparsity::nn::Linear>(4, 8));
///   seq->push_back(std::make_shared<sparsity::nn::ReLU>());
///   sparsity::Tensor y = (*seq)(x);
class Sequential : public Cloneable<Sequential> {
 public:
  Sequential() : Cloneable("Sequential") {}
  Sequential(std::initializer_list<ModulePtr> modules);
  /// Appends `module` as child "<size()>".
  void push_back(ModulePtr module);
  size_t size() const { return named_children().size(); }
  /// Child "<i>"; OutOfRange naming the index when absent.
  ModulePtr operator[](size_t i) const;
  Tensor forward(const Tensor& input) override;
};

/// Children "0", "1", ... with no forward of its own (torch's nn.ModuleList).
class ModuleList : public Cloneable<ModuleList> {
 public:
  ModuleList() : Cloneable("ModuleList") {}
  ModuleList(std::initializer_list<ModulePtr> modules);
  void push_back(ModulePtr module);
  size_t size() const { return named_children().size(); }
  /// Child "<i>"; OutOfRange naming the index when absent.
  ModulePtr operator[](size_t i) const;
};

/// Named children with no forward of its own (torch's nn.ModuleDict).
class ModuleDict : public Cloneable<ModuleDict> {
 public:
  ModuleDict() : Cloneable("ModuleDict") {}
  /// Adds or replaces child `name` (validated like every module name).
  void insert(const std::string& name, ModulePtr module);
  bool contains(const std::string& name) const { return has_child(name); }
  /// Child `name`; NotFound naming it.
  ModulePtr at(const std::string& name) const { return child(name); }
  size_t size() const { return named_children().size(); }
  bool empty() const { return size() == 0; }
};

/// max(x, 0) element-wise, in x's dtype (NaN stays NaN).
class ReLU : public Cloneable<ReLU> {
 public:
  ReLU() : Cloneable("ReLU") {}
  Tensor forward(const Tensor& input) override;
};

/// Returns its input (the same tensor).
class Identity : public Cloneable<Identity> {
 public:
  Identity() : Cloneable("Identity") {}
  Tensor forward(const Tensor& input) override { return input; }
};

}  // namespace sparsity::nn

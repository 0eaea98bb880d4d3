// Container modules: Sequential, ModuleList (ModuleDict is core), and the trivial ReLU / Identity layers.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>

#include "sparsity/core/module.hpp"
#include "sparsity/core/module_dict.hpp"

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

/// torch's nn.ModuleDict (core, since parametrizations are held in one).
using ModuleDict = ::sparsity::ModuleDict;

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

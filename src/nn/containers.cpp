// Sequential, ModuleList, ReLU.
#include "sparsity/nn/containers.hpp"

#include <cmath>

namespace sparsity::nn {

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Sequential() {
  for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(ModulePtr module) { register_module(std::to_string(size()), std::move(module)); }

ModulePtr Sequential::operator[](size_t i) const {
  const std::string name = std::to_string(i);
  SPARSITY_CHECK(has_child(name), OutOfRange, "Sequential index ", i, " out of range (size ", size(), ")");
  return child(name);
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (const auto& [name, m] : named_children()) x = (*m)(x);
  return x;
}

ModuleList::ModuleList(std::initializer_list<ModulePtr> modules) : ModuleList() {
  for (const auto& m : modules) push_back(m);
}

void ModuleList::push_back(ModulePtr module) { register_module(std::to_string(size()), std::move(module)); }

ModulePtr ModuleList::operator[](size_t i) const {
  const std::string name = std::to_string(i);
  SPARSITY_CHECK(has_child(name), OutOfRange, "ModuleList index ", i, " out of range (size ", size(), ")");
  return child(name);
}

Tensor ReLU::forward(const Tensor& input) {
  Tensor out = input.clone();
  const int64_t n = out.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double v = out.get_flat(i);
    if (v < 0.0) out.set_flat(i, 0.0);
  }
  return out;
}

}  // namespace sparsity::nn

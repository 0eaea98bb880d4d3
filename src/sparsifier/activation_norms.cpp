// ActivationNormCollector: double sums of squares per input feature, from batches or Linear pre-hooks.
#include "sparsity/sparsifier/activation_norms.hpp"

#include <cmath>
#include <map>
#include <type_traits>
#include <utility>

#include "base/text.hpp"
#include "sparsity/core/parametrize.hpp"

namespace sparsity {

using ::sparsity::detail::quote;

struct ActivationNormCollector::State {
  struct Entry {
    int64_t width = 0;
    int64_t rows = 0;
    std::vector<double> sums;
  };
  NamedList<Entry> entries;                 // in the order names were first seen
  std::map<std::string, size_t> index;      // name -> position in entries
  std::map<std::string, int64_t> expected;  // widths of attached modules' weights

  Entry* find(const std::string& name) {
    auto it = index.find(name);
    return it == index.end() ? nullptr : &entries[it->second].second;
  }
  const Entry* find(const std::string& name) const {
    auto it = index.find(name);
    return it == index.end() ? nullptr : &entries[it->second].second;
  }
};

namespace {

// sums[j] += x(i, j)^2 for every row i, in row order. Squares of f32/f16/bf16 values are exact in double,
// so only the additions round, in the same order for any batching.
template <class T>
void accumulate(const T* x, int64_t rows, int64_t width, double* sums) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = x + i * width;
    for (int64_t j = 0; j < width; ++j) {
      double v;
      if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
        v = static_cast<double>(static_cast<float>(row[j]));
      } else {
        v = static_cast<double>(row[j]);
      }
      sums[j] += v * v;
    }
  }
}

// The [out, in] weight of a module without materialising a parametrized value; undefined when absent.
Tensor weight_of(const Module& m) {
  if (is_parametrized(m, "weight")) return parametrization_original(m, "weight");
  return m.has_tensor("weight") ? m.tensor("weight") : Tensor();
}

}  // namespace

ActivationNormCollector::ActivationNormCollector() : state_(std::make_shared<State>()) {}

ActivationNormCollector::~ActivationNormCollector() { detach(); }

void ActivationNormCollector::add(const std::string& name, const Tensor& batch) { add_to(*state_, name, batch); }

void ActivationNormCollector::add_to(State& s, const std::string& name, const Tensor& batch) {
  SPARSITY_CHECK(!name.empty(), InvalidArgument, "ActivationNormCollector::add: the name is empty");
  SPARSITY_CHECK(batch.defined(), InvalidArgument, "ActivationNormCollector::add: the batch for ", quote(name),
                 " is undefined");
  SPARSITY_CHECK(batch.dim() >= 1, InvalidArgument, "ActivationNormCollector::add: the batch for ", quote(name),
                 " must have at least one dimension (its last is the input features), got a scalar");
  SPARSITY_CHECK(is_floating(batch.dtype()), InvalidArgument, "ActivationNormCollector::add: the batch for ",
                 quote(name), " must be f32, f64, f16 or bf16, got ", to_string(batch.dtype()));
  const int64_t width = batch.size(-1);
  const int64_t rows = width == 0 ? 0 : batch.numel() / width;
  State::Entry* e = s.find(name);
  const int64_t known = e != nullptr ? e->width : (s.expected.count(name) ? s.expected.at(name) : -1);
  SPARSITY_CHECK(known < 0 || known == width, InvalidArgument, "ActivationNormCollector::add: the batch for ",
                 quote(name), " has ", width, " input features (shape ", shape_to_string(batch.shape()), "), but ",
                 quote(name), e != nullptr ? " had " : "'s weight has ", known);
  if (e == nullptr) {
    s.index.emplace(name, s.entries.size());
    s.entries.emplace_back(name, State::Entry{width, 0, std::vector<double>(static_cast<size_t>(width), 0.0)});
    e = &s.entries.back().second;
  }
  if (rows == 0) return;
  const Tensor x = batch.contiguous();
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Half> ||
                  std::is_same_v<T, BFloat16>) {
      accumulate(static_cast<const T*>(x.data_ptr()), rows, width, e->sums.data());
    }
  });
  e->rows += rows;
}

void ActivationNormCollector::attach(const ModulePtr& model, const std::set<std::string>& module_types) {
  SPARSITY_CHECK(model != nullptr, InvalidArgument, "ActivationNormCollector::attach: the model is null");
  SPARSITY_CHECK(!attached(), FailedPrecondition,
                 "ActivationNormCollector::attach: already attached to a model; detach() first");
  struct Target {
    ModulePtr module;
    std::string key;
    int64_t width;
  };
  std::vector<Target> targets;
  for (const auto& [fqn, m] : model->named_modules()) {
    if (!module_types.count(m->base_type_name())) continue;
    const Tensor w = weight_of(*m);
    SPARSITY_CHECK(w.defined() && w.dim() == 2, InvalidArgument, "ActivationNormCollector::attach: module ",
                   quote(fqn), " (", m->base_type_name(), ") ",
                   w.defined() ? "has a weight of shape " + shape_to_string(w.shape()) : std::string("has no weight"),
                   "; only modules with a 2-D weight [out, in], whose input's last dimension is in, can be attached");
    targets.push_back({m, fqn.empty() ? std::string("weight") : fqn + ".weight", w.size(1)});
  }
  std::string types;
  for (const auto& t : module_types) types += (types.empty() ? "" : ", ") + quote(t);
  SPARSITY_CHECK(!targets.empty(), InvalidArgument, "ActivationNormCollector::attach: the model has no module of type ",
                 types.empty() ? std::string("(none given)") : types);
  for (const Target& t : targets) {
    state_->expected[t.key] = t.width;
    const Module* self = t.module.get();
    std::weak_ptr<State> weak = state_;
    // The hook holds the state weakly and fires only for the module it was installed on: a copy made by
    // Module::clone or convert's swap_module, or one outliving the collector, does nothing.
    const int handle = t.module->register_forward_pre_hook(
        [self, weak, key = t.key](Module& m, const Tensor& input) -> std::optional<Tensor> {
          if (&m != self) return std::nullopt;
          if (std::shared_ptr<State> s = weak.lock()) add_to(*s, key, input);
          return std::nullopt;
        });
    hooks_.push_back({t.module, handle});
  }
}

void ActivationNormCollector::detach() noexcept {
  for (const Hook& h : hooks_) {
    if (ModulePtr m = h.module.lock()) {
      try {
        m->remove_hook(h.handle);
      } catch (const Error&) {
        // Removed by someone else already.
      }
    }
  }
  hooks_.clear();
  state_->expected.clear();
}

NamedList<Tensor> ActivationNormCollector::norms() const {
  NamedList<Tensor> out;
  for (const auto& [name, e] : state_->entries) {
    if (e.rows == 0) continue;
    Tensor t = Tensor::empty({e.width}, DType::f32);
    float* p = t.mutable_data<float>();
    for (size_t j = 0; j < e.sums.size(); ++j) p[j] = static_cast<float>(std::sqrt(e.sums[j]));
    out.emplace_back(name, std::move(t));
  }
  return out;
}

NamedList<Tensor> ActivationNormCollector::sums_of_squares() const {
  NamedList<Tensor> out;
  for (const auto& [name, e] : state_->entries) {
    if (e.rows == 0) continue;
    Tensor t = Tensor::empty({e.width}, DType::f64);
    double* p = t.mutable_data<double>();
    for (size_t j = 0; j < e.sums.size(); ++j) p[j] = e.sums[j];
    out.emplace_back(name, std::move(t));
  }
  return out;
}

int64_t ActivationNormCollector::rows(const std::string& name) const {
  const State::Entry* e = state_->find(name);
  return e == nullptr ? 0 : e->rows;
}

void ActivationNormCollector::clear() {
  state_->entries.clear();
  state_->index.clear();
}

}  // namespace sparsity

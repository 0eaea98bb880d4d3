// nn::Linear: y = x W^T + b, the reference prunable layer (matched by type name "Linear").
#pragma once

#include <cstdint>

#include "sparsity/core/module.hpp"

namespace sparsity::nn {

/// Options of Linear, with fluent setters: `LinearOptions(4, 8).bias(false).seed(7)`.
struct LinearOptions {
  LinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  int64_t in_features_;
  int64_t out_features_;
  bool bias_ = true;
  uint64_t seed_ = 0;
  DType dtype_ = DType::f32;

  LinearOptions& bias(bool on) { bias_ = on; return *this; }
  /// Seed of the deterministic initialisation (see Linear).
  LinearOptions& seed(uint64_t s) { seed_ = s; return *this; }
  LinearOptions& dtype(DType t) { dtype_ = t; return *this; }
};

/// Fully connected layer with parameter `weight` [out, in] and, unless bias(false), `bias` [out].
/// Initialisation is deterministic: every value is drawn from U(-1/sqrt(in), 1/sqrt(in)) (torch's
/// default bound) by std::mt19937_64 seeded with options.seed_ (weight first, row-major, then bias),
/// so equal options give equal weights on every platform; give layers different seeds to make them
/// differ. forward() reads the parametrized weight (`tensor("weight")`).
///
///   auto fc = std::make_shared<sparsity::nn::Linear>(sparsity::nn::LinearOptions(4, 8).bias(false));
///   sparsity::Tensor y = (*fc)(sparsity::Tensor::ones({2, 4}));   // [2, 8]
class Linear : public Cloneable<Linear> {
 public:
  explicit Linear(const LinearOptions& options) : Linear(options, "Linear") {}
  Linear(int64_t in_features, int64_t out_features) : Linear(LinearOptions(in_features, out_features)) {}

  /// x of shape [N, in] or [in] -> [N, out] or [out]. f32 inputs and weights compute in f32, any other
  /// mix in f64; the result has the weight's dtype. InvalidArgument naming the shapes on a mismatch.
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  const LinearOptions& options() const noexcept { return options_; }
  int64_t in_features() const noexcept { return options_.in_features_; }
  int64_t out_features() const noexcept { return options_.out_features_; }
  /// The (parametrized) weight / the bias (undefined without bias).
  Tensor weight() const { return tensor("weight"); }
  Tensor bias() const { return has_tensor("bias") ? tensor("bias") : Tensor(); }

 protected:
  /// For subclasses that are a Linear with their own exact type name (e.g. a sparse Linear made by
  /// convert's from_dense): `class SparseLinear : public Cloneable<SparseLinear, Linear>`.
  Linear(const LinearOptions& options, std::string type_name);

 private:
  LinearOptions options_;
};

/// Fills `t` (row-major) with U(-bound, bound) values drawn from std::mt19937_64(seed) after
/// discarding `skip` draws: value = (2 * (draw >> 11) * 2^-53 - 1) * bound. The generator behind
/// Linear's and Conv2d's initialisation (the bias uses skip = weight.numel()).
void uniform_init_(const Tensor& t, double bound, uint64_t seed, uint64_t skip = 0);

}  // namespace sparsity::nn

// nn::Linear: deterministic initialisation and an Eigen forward over strided tensor maps.
#include "sparsity/nn/linear.hpp"

#include <cmath>
#include <random>

// One thread, like every other computation unless kernels::set_num_threads asks for more: Eigen's
// OpenMP GEMM would otherwise spin up every core for each forward.
#define EIGEN_DONT_PARALLELIZE
// GEMM packing buffers up to 512 KiB live on the stack: heap-allocating them on every forward made
// glibc grow and trim the heap each call (page faults dominated small layers, ~8x slower).
#define EIGEN_STACK_ALLOCATION_LIMIT 524288
#include <Eigen/Core>

#include "sparsity/core/eigen.hpp"

namespace sparsity::nn {

void uniform_init_(const Tensor& t, double bound, uint64_t seed, uint64_t skip) {
  std::mt19937_64 rng(seed);
  rng.discard(skip);
  const int64_t n = t.numel();
  auto draw = [&] {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1), exact on every platform
    return (2.0 * u - 1.0) * bound;
  };
  if (!t.is_contiguous()) {
    for (int64_t i = 0; i < n; ++i) t.set_flat(i, draw());
    return;
  }
  visit_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.mutable_data_ptr());
    for (int64_t i = 0; i < n; ++i) p[i] = from_double<T>(draw());
  });
}

Linear::Linear(const LinearOptions& options, std::string type_name)
    : Cloneable(std::move(type_name)), options_(options) {
  SPARSITY_CHECK(options.in_features_ > 0 && options.out_features_ > 0, InvalidArgument,
                 "Linear needs positive sizes, got in_features=", options.in_features_,
                 " out_features=", options.out_features_);
  SPARSITY_CHECK(is_floating(options.dtype_), InvalidArgument, "Linear needs a float dtype, got ",
                 to_string(options.dtype_));
  const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features_));
  Tensor w = Tensor::empty({options.out_features_, options.in_features_}, options.dtype_);
  uniform_init_(w, bound, options.seed_);
  register_parameter("weight", w);
  if (options.bias_) {
    Tensor b = Tensor::empty({options.out_features_}, options.dtype_);
    uniform_init_(b, bound, options.seed_, static_cast<uint64_t>(w.numel()));
    register_parameter("bias", b);
  }
}

namespace {
template <class T>
Tensor linear_forward(const Tensor& x2, const Tensor& w, const Tensor& b) {
  const int64_t n = x2.size(0), out = w.size(0);
  Tensor y = Tensor::empty({n, out}, dtype_of<T>::value);
  auto X = as_const_matrix<T>(x2);
  auto W = as_const_matrix<T>(w);
  auto Y = as_matrix<T>(y);
  Y.noalias() = X * W.transpose();
  if (b.defined()) {
    const Tensor bc = b.contiguous();
    Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> B(bc.data<T>(), out);
    Y.rowwise() += B;
  }
  return y;
}
}  // namespace

Tensor Linear::forward(const Tensor& x) {
  const Tensor w = weight();
  const Tensor b = bias();
  SPARSITY_CHECK(w.dim() == 2, InvalidArgument, "Linear weight must be 2-D, got shape ",
                 shape_to_string(w.shape()));
  SPARSITY_CHECK((x.dim() == 1 || x.dim() == 2) && x.size(-1) == w.size(1), InvalidArgument,
                 "Linear(in_features=", w.size(1), ") got input of shape ", shape_to_string(x.shape()),
                 " (expected [N, ", w.size(1), "] or [", w.size(1), "])");
  SPARSITY_CHECK(!b.defined() || b.shape() == Shape{w.size(0)}, InvalidArgument, "Linear bias of shape ",
                 shape_to_string(b.shape()), " does not match weight ", shape_to_string(w.shape()));
  const Tensor x2 = x.dim() == 1 ? x.reshape({1, x.size(0)}) : x;
  Tensor y;
  const bool all_f32 = x.dtype() == DType::f32 && w.dtype() == DType::f32 && (!b.defined() || b.dtype() == DType::f32);
  if (all_f32) {
    y = linear_forward<float>(x2, w, b);
  } else {
    y = linear_forward<double>(x2.to(DType::f64), w.to(DType::f64), b.defined() ? b.to(DType::f64) : b);
    if (w.dtype() != DType::f64) y = y.to(w.dtype());
  }
  return x.dim() == 1 ? y.view({w.size(0)}) : y;
}

std::string Linear::extra_repr() const {
  const Tensor w = has_tensor("weight") ? tensor("weight") : Tensor();
  const int64_t in = w.defined() && w.dim() == 2 ? w.size(1) : options_.in_features_;
  const int64_t out = w.defined() && w.dim() == 2 ? w.size(0) : options_.out_features_;
  return "in_features=" + std::to_string(in) + ", out_features=" + std::to_string(out) +
         ", bias=" + (has_tensor("bias") ? "true" : "false");
}

}  // namespace sparsity::nn

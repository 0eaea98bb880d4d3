// nn::SparseLinear: packed weight parts as buffers, from_dense / converter for convert(), forward through
// kernels::sparse_linear.
#include "sparsity/nn/sparse_linear.hpp"

#include "base/text.hpp"
#include "sparsity/kernels/kernels.hpp"

namespace sparsity::nn {

SparseLinear::SparseLinear(const PackedTensor& weight, const Tensor& bias)
    : Cloneable("SparseLinear"), format_(weight.defined() ? weight.format() : PackFormat::csr()) {
  SPARSITY_CHECK(weight.defined(), InvalidArgument, "SparseLinear needs a packed weight, got an undefined one");
  out_features_ = weight.rows();
  in_features_ = weight.cols();
  SPARSITY_CHECK(!bias.defined() || bias.shape() == Shape{out_features_}, InvalidArgument, "SparseLinear bias of shape ",
                 shape_to_string(bias.shape()), " does not match the packed weight ", shape_to_string(weight.shape()));
  SPARSITY_CHECK(!bias.defined() || is_floating(bias.dtype()), InvalidArgument,
                 "SparseLinear bias must be a float tensor, got ", to_string(bias.dtype()));
  for (const auto& [name, part] : weight.parts()) register_buffer(name, part);
  if (bias.defined()) register_parameter("bias", bias);
}

std::shared_ptr<SparseLinear> SparseLinear::from_dense(const Linear& dense, const PackFormat& format) {
  const Tensor w = dense.tensor("weight");
  const Tensor b = dense.has_tensor("bias") ? dense.tensor("bias") : Tensor();
  return std::make_shared<SparseLinear>(pack(w, format), b.defined() ? b.clone() : Tensor());
}

std::function<ModulePtr(const Module&)> SparseLinear::converter(const PackFormat& format) {
  return [format](const Module& dense) -> ModulePtr {
    const auto* linear = dynamic_cast<const Linear*>(&dense);
    SPARSITY_CHECK(linear != nullptr, InvalidArgument, "SparseLinear::from_dense: a module of type ",
                   detail::quote(dense.type_name()), " is not a Linear");
    return from_dense(*linear, format);
  };
}

PackedTensor SparseLinear::weight() const {
  NamedList<Tensor> parts;
  for (const auto& [name, t] : named_buffers(/*recurse=*/false)) parts.emplace_back(name, t);
  PackedTensor p = PackedTensor::from_parts(format_, parts, PackedTensor::Check::shapes);
  SPARSITY_CHECK(p.rows() == out_features_ && p.cols() == in_features_, InvalidArgument,
                 "SparseLinear: buffer 'shape' says ", shape_to_string(p.shape()), ", the module was built for [",
                 out_features_, ", ", in_features_, "]");
  return p;
}

Tensor SparseLinear::forward(const Tensor& x) {
  const PackedTensor w = weight();
  const Tensor b = bias();
  SPARSITY_CHECK((x.dim() == 1 || x.dim() == 2) && x.size(-1) == in_features_, InvalidArgument,
                 "SparseLinear(in_features=", in_features_, ") got input of shape ", shape_to_string(x.shape()),
                 " (expected [N, ", in_features_, "] or [", in_features_, "])");
  SPARSITY_CHECK(!b.defined() || b.shape() == Shape{out_features_}, InvalidArgument, "SparseLinear bias of shape ",
                 shape_to_string(b.shape()), " does not match ", out_features_, " outputs");
  const Tensor x2 = x.dim() == 1 ? x.reshape({1, in_features_}) : x;
  const Tensor xf = x2.dtype() == DType::f32 ? x2.contiguous() : x2.to(DType::f32);
  Tensor bf;
  if (b.defined()) bf = b.dtype() == DType::f32 ? b.contiguous() : b.to(DType::f32);
  const int64_t n = x2.size(0);
  Tensor y = Tensor::empty({n, out_features_}, DType::f32);
  kernels::sparse_linear(w.kernel_weight(), xf.data<float>(), n, in_features_,
                         bf.defined() ? bf.data<float>() : nullptr, y.mutable_data<float>(), out_features_);
  if (w.dtype() != DType::f32) y = y.to(w.dtype());
  return x.dim() == 1 ? y.view({out_features_}) : y;
}

std::string SparseLinear::extra_repr() const {
  return "in_features=" + std::to_string(in_features_) + ", out_features=" + std::to_string(out_features_) +
         ", bias=" + (has_tensor("bias") ? "true" : "false") + ", format=" + format_.to_string();
}

}  // namespace sparsity::nn

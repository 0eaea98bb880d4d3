// nn::SparseLinear: y = x W^T + b with W packed (N:M, BSR, sparse-bitmask, CSR), through the sparse kernels.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "sparsity/core/module.hpp"
#include "sparsity/core/packed.hpp"
#include "sparsity/nn/linear.hpp"

namespace sparsity::nn {

/// A Linear whose weight is a PackedTensor (matched by type name "SparseLinear"). Same tensors in and
/// out as Linear: x [N, in] or [in] -> [N, out] or [out]. The input is read as f32 (converted when it
/// is not), products are summed in f32 (kernels::sparse_linear; Linear sums non-f32 mixes in f64), and
/// the result has the dtype of the packed values, as Linear's has the weight's.
///
/// state_dict: the packed weight's parts as buffers under their part names (`shape`, `compressed`,
/// `bitmask`, `row_offsets`, `col_indices`, `crow_indices`: the ones the format has, see PackedTensor)
/// and the parameter `bias`, so a module "fc" holds "fc.compressed", "fc.bitmask", ... as
/// compressed-tensors names a packed "fc.weight".
///
///   auto sparse = sparsity::nn::SparseLinear::from_dense(*linear, sparsity::PackFormat::nm(2, 4));
///   ModulePtr fast = sparsifier.convert(model,
///       {{"Linear", sparsity::nn::SparseLinear::converter(sparsity::PackFormat::automatic())}});
class SparseLinear : public Cloneable<SparseLinear> {
 public:
  /// `weight` packed [out, in]; `bias` [out] (its dtype kept) or undefined.
  explicit SparseLinear(const PackedTensor& weight, const Tensor& bias = Tensor());

  /// Packs the *current value* of `dense`'s weight (the masked one while it is parametrized, as
  /// torch's convert hands from_dense the parametrized module) in `format` (`auto`: the smallest that
  /// fits) and copies its bias. Errors of pack() (a pattern the format cannot hold, a weight dtype other
  /// than f32/f16/bf16) name the row and column.
  static std::shared_ptr<SparseLinear> from_dense(const Linear& dense, const PackFormat& format);
  /// from_dense with `format` as a module mapping entry for BaseSparsifier::convert / swap_module:
  /// {{"Linear", SparseLinear::converter(format)}}. A module that is not a Linear throws InvalidArgument
  /// quoting its type.
  static std::function<ModulePtr(const Module&)> converter(const PackFormat& format);

  /// InvalidArgument naming the shapes when x is not [N, in] or [in], or naming the part when a
  /// buffer no longer has the dtype and shape its format needs.
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  const PackFormat& format() const noexcept { return format_; }
  int64_t in_features() const noexcept { return in_features_; }
  int64_t out_features() const noexcept { return out_features_; }
  /// The packed weight over the module's current buffers (their shapes and dtypes checked).
  PackedTensor weight() const;
  /// The bias (undefined without one).
  Tensor bias() const { return has_tensor("bias") ? tensor("bias") : Tensor(); }

 private:
  PackFormat format_;
  int64_t in_features_ = 0;
  int64_t out_features_ = 0;
};

}  // namespace sparsity::nn

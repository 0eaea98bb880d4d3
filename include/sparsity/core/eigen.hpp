// Opt-in Eigen interop: zero-copy Eigen::Map views of 2-D tensors (the only public header with Eigen).
#pragma once

#include <Eigen/Core>

#include "sparsity/core/tensor.hpp"

namespace sparsity {

/// Row-major dynamic matrix map with run-time outer (row) and inner (column) strides in elements.
template <class T>
using MatrixMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                             Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
/// Read-only counterpart of MatrixMap.
template <class T>
using ConstMatrixMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                                  Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

namespace detail {
template <class T>
void check_matrix(const Tensor& t) {
  SPARSITY_CHECK(t.defined(), InvalidArgument, "as_matrix on an undefined tensor");
  SPARSITY_CHECK(t.dtype() == dtype_of<T>::value, InvalidArgument, "as_matrix<",
                 to_string(dtype_of<T>::value), "> on a tensor of dtype ", to_string(t.dtype()));
  SPARSITY_CHECK(t.dim() == 2, InvalidArgument, "as_matrix needs a 2-D tensor, got shape ",
                 shape_to_string(t.shape()));
}
}  // namespace detail

/// Writable view of a 2-D tensor whose dtype is T's (f32 <-> float, f64 <-> double, i32, ...): no copy,
/// strides respected (a transposed or narrowed tensor maps as is). Throws InvalidArgument on a wrong
/// dtype or rank, FailedPrecondition on a read-only tensor.
///
///   auto w = sparsity::Tensor::ones({4, 8});
///   sparsity::as_matrix<float>(w).row(0).setZero();   // writes into w
template <class T>
MatrixMap<T> as_matrix(const Tensor& t) {
  detail::check_matrix<T>(t);
  return MatrixMap<T>(static_cast<T*>(t.mutable_data_ptr()), t.size(0), t.size(1),
                      Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(t.strides()[0], t.strides()[1]));
}

/// Read-only view (also of read-only tensors); same checks as as_matrix except writability.
template <class T>
ConstMatrixMap<T> as_const_matrix(const Tensor& t) {
  detail::check_matrix<T>(t);
  return ConstMatrixMap<T>(static_cast<const T*>(t.data_ptr()), t.size(0), t.size(1),
                           Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(t.strides()[0], t.strides()[1]));
}

}  // namespace sparsity

// sparsity/eigen.hpp: zero-copy Eigen maps of 2-D tensors with strides, and the misuse errors.
#include "sparsity/core/eigen.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace sparsity {
namespace {

TEST(Eigen, MapsWithoutCopying) {
  const Tensor t = Tensor::from_values({1, 2, 3, 4, 5, 6}, {2, 3});
  auto m = as_matrix<float>(t);
  EXPECT_EQ(m.data(), t.data_ptr());
  EXPECT_EQ(m.rows(), 2);
  EXPECT_EQ(m.cols(), 3);
  EXPECT_EQ(m(1, 2), 6.0f);
  m.row(0).setZero();
  EXPECT_EQ(t.to_vector(), (std::vector<double>{0, 0, 0, 4, 5, 6}));
}

TEST(Eigen, RespectsStrides) {
  const Tensor t = Tensor::from_values({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {3, 4}, DType::f64);
  const Tensor tt = t.t();  // [4, 3], strides {1, 4}
  auto m = as_const_matrix<double>(tt);
  EXPECT_EQ(m.rows(), 4);
  EXPECT_EQ(m(3, 2), 11.0);
  EXPECT_EQ(m(1, 0), 1.0);
  const Tensor block = t.narrow(1, 1, 2);  // [3, 2], offset 1
  auto b = as_matrix<double>(block);
  EXPECT_EQ(b(2, 1), 10.0);
  b(0, 0) = -1.0;
  EXPECT_EQ(t.get({0, 1}), -1.0);
  Eigen::MatrixXd product = as_const_matrix<double>(t) * m;  // [3,4] x [4,3]
  EXPECT_EQ(product(0, 0), 0 * 0 + -1.0 * -1.0 + 2 * 2 + 3 * 3);
}

TEST(Eigen, ReadOnlyTensorsMapConstOnly) {
  const std::vector<int32_t> bytes{1, 2, 3, 4};
  const Tensor t = Tensor::from_blob(static_cast<const void*>(bytes.data()), {2, 2}, DType::i32);
  EXPECT_EQ(as_const_matrix<int32_t>(t)(1, 0), 3);
  EXPECT_SPARSITY_ERROR(as_matrix<int32_t>(t), FailedPrecondition, "read-only");
}

TEST(Eigen, WrongDtypeOrRankThrows) {
  EXPECT_SPARSITY_ERROR(as_matrix<double>(Tensor::zeros({2, 2})), InvalidArgument, "f64", "f32");
  EXPECT_SPARSITY_ERROR(as_matrix<float>(Tensor::zeros({4})), InvalidArgument, "2-D", "[4]");
  EXPECT_SPARSITY_ERROR(as_const_matrix<float>(Tensor()), InvalidArgument, "undefined");
}

}  // namespace
}  // namespace sparsity

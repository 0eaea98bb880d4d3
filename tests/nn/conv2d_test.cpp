// nn::Conv2d: shapes, hand-computed convolutions with stride and padding, errors.
#include "sparsity/nn/conv2d.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace sparsity {
namespace {

std::shared_ptr<nn::Conv2d> ones_conv(nn::Conv2dOptions o) {
  auto c = std::make_shared<nn::Conv2d>(o);
  c->parameter("weight").fill_(1.0);
  if (c->has_tensor("bias")) c->parameter("bias").fill_(0.5);
  return c;
}

TEST(Conv2d, ParametersAndRepr) {
  nn::Conv2d c(nn::Conv2dOptions(3, 8, 3).bias(false));
  EXPECT_EQ(c.type_name(), "Conv2d");
  EXPECT_EQ(c.parameter("weight").shape(), (Shape{8, 3, 3, 3}));
  EXPECT_FALSE(c.has_tensor("bias"));
  EXPECT_EQ(c.extra_repr(), "3, 8, kernel_size=(3, 3), stride=(1, 1), bias=false");
  nn::Conv2d d(nn::Conv2dOptions(1, 2, {1, 2}).seed(1));
  EXPECT_EQ(d.parameter("weight").shape(), (Shape{2, 1, 1, 2}));
  EXPECT_EQ(d.parameter("bias").shape(), (Shape{2}));
}

TEST(Conv2d, ValidConvolution) {
  auto c = ones_conv(nn::Conv2dOptions(1, 1, 2));
  const Tensor x = Tensor::arange(9).view({1, 1, 3, 3});
  const Tensor y = (*c)(x);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(y.to_vector(), (std::vector<double>{8.5, 12.5, 20.5, 24.5}));
  // Unbatched input.
  EXPECT_EQ((*c)(Tensor::arange(9).view({1, 3, 3})).shape(), (Shape{1, 2, 2}));
}

TEST(Conv2d, StrideAndPadding) {
  auto c = ones_conv(nn::Conv2dOptions(1, 1, 2).stride(2).padding(1));
  const Tensor y = (*c)(Tensor::arange(9).view({1, 1, 3, 3}));
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(y.to_vector(), (std::vector<double>{0.5, 3.5, 9.5, 24.5}));
}

TEST(Conv2d, ChannelsAreSummed) {
  auto c = ones_conv(nn::Conv2dOptions(2, 1, 1).bias(false));
  c->parameter("weight").set({0, 1, 0, 0}, -1.0);
  const Tensor x = Tensor::from_values({1, 2, 3, 4, 10, 20, 30, 40}, {1, 2, 2, 2});
  EXPECT_EQ((*c)(x).to_vector(), (std::vector<double>{-9, -18, -27, -36}));
}

TEST(Conv2d, Errors) {
  EXPECT_SPARSITY_ERROR(nn::Conv2d(nn::Conv2dOptions(1, 1, 0)), InvalidArgument, "kernel");
  EXPECT_SPARSITY_ERROR(nn::Conv2d(nn::Conv2dOptions(1, 1, 1).stride(0)), InvalidArgument, "stride");
  auto c = std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 1, 3));
  EXPECT_SPARSITY_ERROR((*c)(Tensor::ones({1, 2, 5, 5})), InvalidArgument, "in_channels=3", "[1, 2, 5, 5]");
  EXPECT_SPARSITY_ERROR((*c)(Tensor::ones({1, 3, 2, 2})), InvalidArgument, "smaller than the kernel");
}

}  // namespace
}  // namespace sparsity

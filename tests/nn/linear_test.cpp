// nn::Linear: options, deterministic initialisation, Eigen forward, parametrized weights, errors.
#include "sparsity/nn/linear.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.hpp"

namespace sparsity {
namespace {

TEST(Linear, OptionsAndShapes) {
  nn::Linear lin(nn::LinearOptions(4, 8).bias(false));
  EXPECT_EQ(lin.type_name(), "Linear");
  EXPECT_EQ(lin.parameter("weight").shape(), (Shape{8, 4}));
  EXPECT_FALSE(lin.has_tensor("bias"));
  EXPECT_FALSE(lin.bias().defined());
  nn::Linear with_bias(3, 2);
  EXPECT_EQ(with_bias.parameter("bias").shape(), (Shape{2}));
  EXPECT_EQ(with_bias.extra_repr(), "in_features=3, out_features=2, bias=true");
  EXPECT_EQ(nn::Linear(nn::LinearOptions(2, 2).dtype(DType::f64)).parameter("weight").dtype(), DType::f64);
  EXPECT_SPARSITY_ERROR(nn::Linear(0, 2), InvalidArgument, "in_features=0");
  EXPECT_SPARSITY_ERROR(nn::Linear(nn::LinearOptions(2, 2).dtype(DType::i32)), InvalidArgument, "i32");
}

TEST(Linear, InitialisationIsDeterministicAndBounded) {
  const nn::Linear a(nn::LinearOptions(16, 8).seed(3));
  const nn::Linear b(nn::LinearOptions(16, 8).seed(3));
  const nn::Linear c(nn::LinearOptions(16, 8).seed(4));
  EXPECT_TRUE(bitwise_equal(a.parameter("weight"), b.parameter("weight")));
  EXPECT_TRUE(bitwise_equal(a.parameter("bias"), b.parameter("bias")));
  EXPECT_FALSE(equal(a.parameter("weight"), c.parameter("weight")));
  for (double v : a.parameter("weight").to_vector()) {
    EXPECT_LT(std::fabs(v), 0.25);  // 1/sqrt(16)
  }
}

TEST(Linear, UniformInitFollowsTheStandardGenerator) {
  // The C++ standard fixes the 10000th output of a default-seeded (5489) mt19937_64.
  const Tensor t = Tensor::zeros({1}, DType::f64);
  nn::uniform_init_(t, 2.0, 5489, 9999);
  const double u = static_cast<double>(9981545732273789042ull >> 11) * std::ldexp(1.0, -53);
  EXPECT_EQ(t.item(), (2.0 * u - 1.0) * 2.0);
}

TEST(Linear, ForwardComputesXWtPlusB) {
  auto lin = std::make_shared<nn::Linear>(3, 2);
  lin->set_tensor("weight", Tensor::from_values({1, 2, 3, -1, 0, 1}, {2, 3}));
  lin->set_tensor("bias", Tensor::from_values({0.5, -0.5}));
  const Tensor x = Tensor::from_values({1, 1, 1, 2, 0, -1}, {2, 3});
  const Tensor y = (*lin)(x);
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(y.to_vector(), (std::vector<double>{6.5, -0.5, -0.5, -3.5}));
  const Tensor y1 = (*lin)(Tensor::from_values({1, 1, 1}));
  EXPECT_EQ(y1.shape(), (Shape{2}));
  EXPECT_EQ(y1.to_vector(), (std::vector<double>{6.5, -0.5}));
  // A strided (transposed) input is read through its strides.
  const Tensor xt = Tensor::from_values({1, 2, 1, 0, 1, -1}, {3, 2}).t();
  EXPECT_EQ((*lin)(xt).to_vector(), y.to_vector());
}

TEST(Linear, ForwardInOtherDtypes) {
  for (DType dt : {DType::f64, DType::f16, DType::bf16}) {
    auto lin = std::make_shared<nn::Linear>(nn::LinearOptions(2, 1).bias(false).dtype(dt));
    lin->set_tensor("weight", Tensor::from_values({2, -3}, {1, 2}, dt));
    const Tensor y = (*lin)(Tensor::from_values({1.5, 1}, {1, 2}));
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_EQ(y.item(), 0.0) << to_string(dt);
  }
}

TEST(Linear, ForwardUsesTheParametrizedWeight) {
  auto lin = std::make_shared<nn::Linear>(nn::LinearOptions(2, 2).bias(false));
  lin->set_tensor("weight", Tensor::from_values({1, 2, 3, 4}, {2, 2}));
  register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(Tensor::eye(2, 2)));
  EXPECT_EQ((*lin)(Tensor::from_values({1, 1})).to_vector(), (std::vector<double>{1, 4}));
}

TEST(Linear, ShapeErrorsNameTheShapes) {
  auto lin = std::make_shared<nn::Linear>(3, 2);
  EXPECT_SPARSITY_ERROR((*lin)(Tensor::ones({2, 4})), InvalidArgument, "in_features=3", "[2, 4]");
  EXPECT_SPARSITY_ERROR((*lin)(Tensor::ones({1, 1, 3})), InvalidArgument, "[1, 1, 3]");
}

TEST(Linear, CloneKeepsOptionsAndValues) {
  auto lin = std::make_shared<nn::Linear>(nn::LinearOptions(3, 2).seed(9));
  auto copy = std::dynamic_pointer_cast<nn::Linear>(lin->clone());
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->in_features(), 3);
  EXPECT_TRUE(equal(copy->weight(), lin->weight()));
  EXPECT_FALSE(copy->weight().shares_storage(lin->weight()));
}

}  // namespace
}  // namespace sparsity

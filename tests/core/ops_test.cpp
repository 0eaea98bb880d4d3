// Tensor-level mask operations: every mask dtype, strided views, in place, shape errors.
#include "sparsity/core/ops.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "sparsity/kernels/kernels.hpp"
#include "test_util.hpp"

namespace sparsity {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(Ops, ApplyMaskEveryMaskDtype) {
  const Tensor x = Tensor::from_values({1.5, -2, 3, -4, 5, 6}, {2, 3});
  const std::vector<double> keep{1, 0, 0, 1, 0, 1};
  for (DType mdt : {DType::bool_, DType::u8, DType::i8, DType::i32, DType::i64, DType::f32, DType::f64,
                    DType::f16, DType::bf16}) {
    const Tensor m = Tensor::from_values(keep, {2, 3}, mdt);
    const Tensor y = apply_mask(x, m);
    EXPECT_EQ(y.dtype(), DType::f32) << to_string(mdt);
    EXPECT_EQ(y.shape(), x.shape());
    EXPECT_EQ(y.to_vector(), (std::vector<double>{1.5, 0, 0, -4, 0, 6})) << to_string(mdt);
  }
}

TEST(Ops, PrunedElementsBecomePositiveZero) {
  const Tensor x = Tensor::from_values({kNaN, -0.0, std::numeric_limits<double>::infinity(), -1}, {4});
  const Tensor m = Tensor::from_values({0, 0, 0, 1}, {4}, DType::bool_);
  const Tensor y = apply_mask(x, m);
  const float* p = y.data<float>();
  for (int i = 0; i < 3; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    EXPECT_EQ(bits, 0u) << i;
  }
  EXPECT_EQ(p[3], -1.0f);
}

TEST(Ops, FloatMaskNonZeroKeepsIncludingNaN) {
  const Tensor x = Tensor::from_values({1, 2, 3, 4}, {4}, DType::f64);
  const Tensor m = Tensor::from_values({kNaN, -0.0, 0.25, 0}, {4}, DType::f64);
  EXPECT_EQ(apply_mask(x, m).to_vector(), (std::vector<double>{1, 0, 3, 0}));
  const Tensor m32 = Tensor::from_values({kNaN, -0.0, 0.25, 0}, {4}, DType::f32);  // other float dtype
  EXPECT_EQ(apply_mask(x, m32).to_vector(), (std::vector<double>{1, 0, 3, 0}));
}

TEST(Ops, HalfWeightsKeepTheirDtype) {
  for (DType dt : {DType::f16, DType::bf16}) {
    const Tensor x = Tensor::from_values({1, -2, 3, 0.5}, {2, 2}, dt);
    const Tensor m = Tensor::from_values({0, 1, 1, 0}, {2, 2}, dt);
    const Tensor y = apply_mask(x, m);
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_EQ(y.to_vector(), (std::vector<double>{0, -2, 3, 0}));
  }
}

TEST(Ops, IntegerWeights) {
  const Tensor x = Tensor::from_values({7, -3, 5}, {3}, DType::i32);
  const Tensor m = Tensor::from_values({1, 0, 1}, {3}, DType::bool_);
  const Tensor y = apply_mask(x, m);
  EXPECT_EQ(y.dtype(), DType::i32);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{7, 0, 5}));
}

TEST(Ops, NonContiguousInputs) {
  // x^T and a transposed mask: logical element (i, j) of the view is used, whatever the strides.
  const Tensor base = Tensor::from_values({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor xt = base.t();  // [[1, 4], [2, 5], [3, 6]]
  const Tensor mbase = Tensor::from_values({1, 0, 1, 1, 0, 0}, {2, 3}, DType::u8);
  const Tensor mt = mbase.t();  // [[1, 1], [0, 0], [1, 0]]
  EXPECT_EQ(apply_mask(xt, mt).to_vector(), (std::vector<double>{1, 4, 0, 0, 3, 0}));
  const Tensor mc = Tensor::from_values({0, 1, 1, 1, 1, 0}, {3, 2}, DType::f32);  // contiguous mask
  EXPECT_EQ(apply_mask(xt, mc).to_vector(), (std::vector<double>{0, 4, 2, 5, 3, 0}));
}

TEST(Ops, InPlaceWritesThroughViews) {
  const Tensor x = Tensor::from_values({1, 2, 3, 4, 5, 6}, {2, 3});
  apply_mask_(x, Tensor::from_values({1, 1, 0, 1, 0, 1}, {2, 3}, DType::bool_));
  EXPECT_EQ(x.to_vector(), (std::vector<double>{1, 2, 0, 4, 0, 6}));
  const Tensor y = Tensor::from_values({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor handle = y;  // same tensor
  apply_mask_(y.t(), Tensor::from_values({0, 1, 1, 1, 1, 0}, {3, 2}, DType::i64));
  // y^T = [[1, 4], [2, 5], [3, 6]] masked by [[0, 1], [1, 1], [1, 0]] -> y = [[0, 2, 3], [4, 5, 0]].
  EXPECT_EQ(handle.to_vector(), (std::vector<double>{0, 2, 3, 4, 5, 0}));
  // Mask aliasing the tensor itself: x * (x != 0) leaves it unchanged.
  const Tensor z = Tensor::from_values({0, 1, -0.0, 2}, {4});
  apply_mask_(z, z);
  EXPECT_EQ(z.to_vector(), (std::vector<double>{0, 1, 0, 2}));
}

TEST(Ops, LargeTensorMatchesElementwiseDefinition) {
  // Long enough for the SIMD, streaming and threaded paths.
  const int64_t n = (int64_t{1} << 21) + 13;
  const Tensor x = testing::random_tensor({n}, 5);
  Tensor m = Tensor::empty({n}, DType::bool_);
  auto* mp = static_cast<uint8_t*>(m.mutable_data_ptr());
  for (int64_t i = 0; i < n; ++i) mp[i] = static_cast<uint8_t>((i * 7919) % 3 == 0);
  const int saved = kernels::num_threads();
  for (int threads : {1, 2}) {
    kernels::set_num_threads(threads);
    const Tensor y = apply_mask(x, m);
    const float* xp = x.data<float>();
    const float* yp = y.data<float>();
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i) bad += yp[i] != (mp[i] ? xp[i] : 0.0f);
    EXPECT_EQ(bad, 0) << threads << " threads";
  }
  kernels::set_num_threads(saved);
}

TEST(Ops, ShapeMismatchNamesBothShapes) {
  const Tensor x = Tensor::zeros({2, 3});
  EXPECT_SPARSITY_ERROR(apply_mask(x, Tensor::zeros({3, 2})), InvalidArgument, "[3, 2]", "[2, 3]");
  EXPECT_SPARSITY_ERROR(apply_mask_(x, Tensor::zeros({6})), InvalidArgument, "[6]", "[2, 3]");
  EXPECT_SPARSITY_ERROR(apply_mask(x, Tensor()), InvalidArgument, "undefined");
}

TEST(Ops, ReadOnlyTensorIsRefused) {
  const float data[2] = {1, 2};
  const Tensor ro = Tensor::from_blob(static_cast<const void*>(data), {2}, DType::f32);
  EXPECT_SPARSITY_ERROR(apply_mask_(ro, Tensor::ones({2})), FailedPrecondition, "read-only");
  EXPECT_EQ(apply_mask(ro, Tensor::from_values({0, 1}, {2})).to_vector(), (std::vector<double>{0, 2}));
}

TEST(Ops, MaskToU8) {
  const Tensor m = Tensor::from_values({kNaN, -0.0, 0.0, 3, -1e-30}, {5}, DType::f64);
  const Tensor u = mask_to_u8(m);
  EXPECT_EQ(u.dtype(), DType::u8);
  EXPECT_EQ(u.to_vector(), (std::vector<double>{1, 0, 0, 1, 1}));
  const Tensor i = Tensor::from_values({0, 256, -1, 0}, {2, 2}, DType::i32).t();
  EXPECT_EQ(mask_to_u8(i).to_vector(), (std::vector<double>{0, 1, 1, 0}));
  const Tensor b = Tensor::from_values({0, 1}, {2}, DType::bf16);
  EXPECT_EQ(mask_to_u8(b).to_vector(), (std::vector<double>{0, 1}));
}

}  // namespace
}  // namespace sparsity

// Tensor: factories, views over foreign memory, read-only views, strides, set_ identity, 16-bit floats.
#include "sparsity/core/tensor.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "test_util.hpp"

namespace sparsity {
namespace {

const double kInf = std::numeric_limits<double>::infinity();

TEST(Tensor, FactoriesAndMetadata) {
  const Tensor z = Tensor::zeros({2, 3}, DType::i32);
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.strides(), (Shape{3, 1}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.nbytes(), 24u);
  EXPECT_EQ(z.dim(), 2);
  EXPECT_EQ(z.size(-1), 3);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(count_nonzero(z), 0);
  EXPECT_EQ(Tensor::ones({4}, DType::bool_).to_vector(), (std::vector<double>{1, 1, 1, 1}));
  EXPECT_EQ(Tensor::full({2}, -2.5, DType::f64).to_vector(), (std::vector<double>{-2.5, -2.5}));
  EXPECT_EQ(Tensor::arange(4, DType::i64).to_vector(), (std::vector<double>{0, 1, 2, 3}));
  EXPECT_EQ(Tensor::eye(2, 3).to_vector(), (std::vector<double>{1, 0, 0, 0, 1, 0}));
  EXPECT_EQ(Tensor::zeros({}).numel(), 1);  // a scalar
  EXPECT_EQ(Tensor::zeros({0, 5}).numel(), 0);
  const Tensor like = ones_like(Tensor::zeros({3, 1}, DType::bf16));
  EXPECT_EQ(like.dtype(), DType::bf16);
  EXPECT_EQ(like.shape(), (Shape{3, 1}));
  EXPECT_FALSE(Tensor().defined());
  EXPECT_EQ(Tensor().to_string(), "Tensor(undefined)");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(Tensor::zeros({3}, DType::u8).data_ptr()) % 64, 0u);
  EXPECT_TRUE(Tensor::zeros({3}).storage()->owns_memory());
}

TEST(Tensor, HandlesShareTheTensorCloneDoesNot) {
  const Tensor a = Tensor::zeros({2});
  const Tensor b = a;
  b.set({1}, 7.0);
  EXPECT_EQ(a.get({1}), 7.0);
  EXPECT_TRUE(a.is_same(b));
  const Tensor c = a.clone();
  EXPECT_FALSE(c.is_same(a));
  EXPECT_FALSE(c.shares_storage(a));
  c.set({1}, 1.0);
  EXPECT_EQ(a.get({1}), 7.0);
}

TEST(Tensor, SetKeepsIdentity) {
  const Tensor a = Tensor::ones({2, 2});
  const Tensor alias = a;
  const Tensor src = Tensor::arange(3, DType::i64);
  a.set_(src);
  EXPECT_TRUE(alias.is_same(a));
  EXPECT_FALSE(a.is_same(src));
  EXPECT_EQ(alias.shape(), (Shape{3}));
  EXPECT_EQ(alias.dtype(), DType::i64);
  EXPECT_TRUE(alias.shares_storage(src));
  src.set({2}, 9.0);
  EXPECT_EQ(alias.get({2}), 9.0);
  EXPECT_SPARSITY_ERROR(Tensor().set_(src), FailedPrecondition, "undefined");
}

TEST(Tensor, ViewOverForeignMemoryIsZeroCopy) {
  std::vector<float> engine{1, 2, 3, 4, 5, 6};
  const Tensor t = Tensor::from_blob(engine.data(), {2, 3}, DType::f32);
  EXPECT_EQ(t.data_ptr(), engine.data());
  EXPECT_FALSE(t.storage()->owns_memory());
  EXPECT_EQ(t.get({1, 0}), 4.0);
  t.set({0, 2}, -1.0);
  EXPECT_EQ(engine[2], -1.0f);
  engine[5] = 60.0f;
  EXPECT_EQ(t.get({1, 2}), 60.0);
  // Views of the view still point into the engine's buffer.
  t.transpose(0, 1).set({2, 1}, 0.0);
  EXPECT_EQ(engine[5], 0.0f);
}

TEST(Tensor, OwnerKeepsForeignMemoryAlive) {
  Tensor t;
  std::weak_ptr<std::vector<double>> watch;
  {
    auto owner = std::make_shared<std::vector<double>>(std::vector<double>{1.5, 2.5});
    watch = owner;
    t = Tensor::from_blob(owner->data(), {2}, DType::f64, owner);
  }
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(t.to_vector(), (std::vector<double>{1.5, 2.5}));
  t = Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(Tensor, ReadOnlyViewsRefuseWrites) {
  const std::vector<int32_t> mapped{1, 2, 3, 4};
  const Tensor t = Tensor::from_blob(static_cast<const void*>(mapped.data()), {4}, DType::i32);
  EXPECT_TRUE(t.is_read_only());
  EXPECT_EQ(t.data<int32_t>()[3], 4);
  EXPECT_SPARSITY_ERROR(t.set({0}, 5.0), FailedPrecondition, "read-only", "[4]");
  EXPECT_SPARSITY_ERROR(t.fill_(0.0), FailedPrecondition, "read-only");
  EXPECT_SPARSITY_ERROR(t.mutable_data_ptr(), FailedPrecondition, "read-only");
  EXPECT_SPARSITY_ERROR(t.copy_(Tensor::zeros({4}, DType::i32)), FailedPrecondition, "read-only");
  EXPECT_SPARSITY_ERROR(t.narrow(0, 1, 2).set({0}, 1.0), FailedPrecondition, "read-only");
  const Tensor c = t.clone();
  EXPECT_FALSE(c.is_read_only());
  c.set({0}, 5.0);
  EXPECT_EQ(mapped[0], 1);
}

TEST(Tensor, StridesTransposeNarrowSelect) {
  const Tensor m = Tensor::from_values({0, 1, 2, 3, 4, 5}, {2, 3});
  const Tensor t = m.t();
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(t.strides(), (Shape{1, 3}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.get({2, 1}), 5.0);
  EXPECT_EQ(t.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_SPARSITY_ERROR(t.view({6}), InvalidArgument, "contiguous", "[1, 3]");
  const Tensor r = t.reshape({6});
  EXPECT_EQ(r.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_FALSE(r.shares_storage(m));
  const Tensor cols = m.narrow(1, 1, 2);
  EXPECT_EQ(cols.offset(), 1);
  EXPECT_EQ(cols.to_vector(), (std::vector<double>{1, 2, 4, 5}));
  const Tensor row1 = m.select(0, 1);
  EXPECT_EQ(row1.shape(), (Shape{3}));
  EXPECT_EQ(row1.offset(), 3);
  row1.fill_(9.0);
  EXPECT_EQ(m.to_vector(), (std::vector<double>{0, 1, 2, 9, 9, 9}));
  EXPECT_TRUE(m.view({3, -1}).shares_storage(m));
  EXPECT_EQ(m.view({3, -1}).shape(), (Shape{3, 2}));
  // Copy between overlapping views of one storage goes through a temporary.
  const Tensor v = Tensor::arange(4);
  v.narrow(0, 1, 3).copy_(v.narrow(0, 0, 3));
  EXPECT_EQ(v.to_vector(), (std::vector<double>{0, 0, 1, 2}));
  // Explicit strides over a storage.
  const Tensor s = Tensor::from_storage(m.storage(), {2}, {3}, 0, DType::f32);
  EXPECT_EQ(s.to_vector(), (std::vector<double>{0, 9}));
}

TEST(Tensor, MisuseErrorsNameTheProblem) {
  const Tensor t = Tensor::zeros({2, 3});
  EXPECT_SPARSITY_ERROR(t.get({2, 0}), OutOfRange, "index 2", "[2, 3]");
  EXPECT_SPARSITY_ERROR(t.get({0}), InvalidArgument, "rank 1", "[2, 3]");
  EXPECT_SPARSITY_ERROR(t.data<double>(), InvalidArgument, "f32", "f64");
  EXPECT_SPARSITY_ERROR(t.item(), InvalidArgument, "[2, 3]");
  EXPECT_SPARSITY_ERROR(t.view({4, 2}), InvalidArgument, "[4, 2]", "6");
  EXPECT_SPARSITY_ERROR(t.copy_(Tensor::zeros({3, 2})), InvalidArgument, "[3, 2]", "[2, 3]");
  EXPECT_SPARSITY_ERROR(t.narrow(1, 2, 2), OutOfRange, "narrow");
  EXPECT_SPARSITY_ERROR(t.size(2), OutOfRange, "dimension 2");
  EXPECT_SPARSITY_ERROR(Tensor::from_storage(t.storage(), {7}, {1}, 0, DType::f32), OutOfRange, "[7]", "24 bytes");
  EXPECT_SPARSITY_ERROR(Tensor::zeros({-1}), OutOfRange, "[-1]");
  EXPECT_SPARSITY_ERROR(Tensor::from_values({1, 2, 3}, {2, 2}), InvalidArgument, "3 values", "[2, 2]");
  EXPECT_SPARSITY_ERROR(Tensor().shape(), FailedPrecondition, "undefined");
  EXPECT_SPARSITY_ERROR(dtype_from_string("f128"), InvalidArgument, "f128");
}

TEST(Tensor, DTypeNames) {
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::bool_, DType::u8, DType::i8, DType::i32,
                  DType::i64}) {
    EXPECT_EQ(dtype_from_string(to_string(t)), t);
  }
  EXPECT_STREQ(to_string(DType::bool_), "bool");
  EXPECT_EQ(size_of(DType::bf16), 2u);
}

TEST(Tensor, ConversionsBetweenDtypes) {
  const Tensor f = Tensor::from_values({-1.75, 0.0, 2.5, 300.0});
  EXPECT_EQ(f.to(DType::i32).to_vector(), (std::vector<double>{-1, 0, 2, 300}));  // C++ truncation
  EXPECT_EQ(f.to(DType::bool_).to_vector(), (std::vector<double>{1, 0, 1, 1}));
  EXPECT_EQ(f.to(DType::f64).dtype(), DType::f64);
  EXPECT_TRUE(equal(f, f.to(DType::f64)));
  EXPECT_FALSE(bitwise_equal(f, f.to(DType::f64)));
}

// ---- f16 / bf16: hand-derived bit patterns ---------------------------------------------------------

TEST(Half, RoundToNearestEven) {
  EXPECT_EQ(Half(1.0f).bits, 0x3C00);
  EXPECT_EQ(Half(-2.0f).bits, 0xC000);
  EXPECT_EQ(Half(1.0f + 0x1.0p-11f).bits, 0x3C00);        // tie -> even (down)
  EXPECT_EQ(Half(1.0f + 3 * 0x1.0p-11f).bits, 0x3C02);    // tie -> even (up)
  EXPECT_EQ(Half(1.0f + 0x1.8p-11f).bits, 0x3C01);        // above the tie
  EXPECT_EQ(Half(65504.0f).bits, 0x7BFF);                 // largest finite
  EXPECT_EQ(Half(65519.0f).bits, 0x7BFF);
  EXPECT_EQ(Half(65520.0f).bits, 0x7C00);                 // tie -> even = overflow to inf
  EXPECT_EQ(Half(0x1.0p-24f).bits, 0x0001);               // smallest subnormal
  EXPECT_EQ(Half(0x1.0p-25f).bits, 0x0000);               // tie -> even (zero)
  EXPECT_EQ(Half(0x1.8p-25f).bits, 0x0001);
  EXPECT_EQ(Half(-0.0f).bits, 0x8000);
  EXPECT_EQ(Half::to_float(0x0001), 0x1.0p-24f);
  EXPECT_EQ(Half::to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(Half::to_float(0x7BFF), 65504.0f);
}

TEST(Half, InfinityAndNan) {
  EXPECT_EQ(Half(std::numeric_limits<float>::infinity()).bits, 0x7C00);
  EXPECT_EQ(Half(-std::numeric_limits<float>::infinity()).bits, 0xFC00);
  EXPECT_EQ(Half(1e10f).bits, 0x7C00);
  const uint16_t nan = Half(std::numeric_limits<float>::quiet_NaN()).bits;
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  EXPECT_TRUE(std::isnan(Half::to_float(nan)));
  EXPECT_TRUE(std::isinf(Half::to_float(0xFC00)));
  EXPECT_LT(Half::to_float(0xFC00), 0.0f);
}

TEST(BFloat16, RoundToNearestEven) {
  EXPECT_EQ(BFloat16(1.0f).bits, 0x3F80);
  EXPECT_EQ(BFloat16(1.0f + 0x1.0p-8f).bits, 0x3F80);      // tie -> even (down)
  EXPECT_EQ(BFloat16(1.0f + 3 * 0x1.0p-8f).bits, 0x3F82);  // tie -> even (up)
  EXPECT_EQ(BFloat16(1.0f + 0x1.8p-8f).bits, 0x3F81);
  EXPECT_EQ(BFloat16::to_float(0x3F81), 1.0078125f);
  EXPECT_EQ(BFloat16(std::numeric_limits<float>::max()).bits, 0x7F80);  // rounds up to inf
  EXPECT_EQ(BFloat16(std::numeric_limits<float>::infinity()).bits, 0x7F80);
  EXPECT_EQ(BFloat16(-std::numeric_limits<float>::infinity()).bits, 0xFF80);
  const uint16_t nan = BFloat16(std::numeric_limits<float>::quiet_NaN()).bits;
  EXPECT_TRUE(std::isnan(BFloat16::to_float(nan)));
  // A NaN whose payload sits only in the low 16 bits must not round to infinity.
  const float low_payload_nan = detail::bits_f32(0x7F800001u);
  EXPECT_TRUE(std::isnan(BFloat16::to_float(BFloat16(low_payload_nan).bits)));
}

TEST(Tensor, SixteenBitTensorsRoundOnStore) {
  const Tensor h = Tensor::from_values({1.0 + std::ldexp(1.0, -11), 65520.0, -kInf, std::nan("")}, DType::f16);
  EXPECT_EQ(h.get({0}), 1.0);
  EXPECT_EQ(h.get({1}), kInf);
  EXPECT_EQ(h.get({2}), -kInf);
  EXPECT_TRUE(std::isnan(h.get({3})));
  const Tensor b = Tensor::from_values({1.0 + 3 * std::ldexp(1.0, -8)}, DType::bf16);
  EXPECT_EQ(b.data<BFloat16>()[0].bits, 0x3F82);
  EXPECT_EQ(b.to(DType::f32).item(), 1.015625);
}

TEST(Tensor, ComparisonHelpers) {
  const Tensor a = Tensor::from_values({1, std::nan(""), 3});
  EXPECT_FALSE(equal(a, a));  // NaN != NaN
  EXPECT_TRUE(allclose(a, a, 1e-5, 1e-8, /*equal_nan=*/true));
  EXPECT_FALSE(allclose(a, a));
  EXPECT_TRUE(allclose(Tensor::from_values({1.0}), Tensor::from_values({1.0 + 1e-7})));
  EXPECT_FALSE(allclose(Tensor::from_values({1.0}), Tensor::from_values({1.1})));
  EXPECT_FALSE(equal(Tensor::zeros({2}), Tensor::zeros({1, 2})));
  EXPECT_TRUE(bitwise_equal(Tensor::zeros({2}), Tensor::zeros({2})));
  EXPECT_FALSE(bitwise_equal(Tensor::zeros({1}), Tensor::from_values({-0.0})));
  EXPECT_EQ(count_nonzero(a), 3);
}

}  // namespace
}  // namespace sparsity

// DType names, sizes and the element-type mapping, including the 16-bit integer type of packed indices.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "sparsity/base/dtype.hpp"
#include "sparsity/core/tensor.hpp"
#include "test_util.hpp"

namespace sparsity {
namespace {

TEST(DType, EveryNameRoundTripsAndSizesMatchTheElementType) {
  const DType all[] = {DType::f32, DType::f64, DType::f16,  DType::bf16, DType::bool_,
                       DType::u8,  DType::i8,  DType::i16, DType::i32,  DType::i64};
  for (DType t : all) {
    EXPECT_EQ(dtype_from_string(to_string(t)), t) << to_string(t);
    const size_t bytes = visit_dtype(t, [](auto tag) { return sizeof(tag); });
    EXPECT_EQ(size_of(t), bytes) << to_string(t);
  }
  EXPECT_STREQ(to_string(DType::i16), "i16");
  EXPECT_EQ(size_of(DType::i16), 2u);
  EXPECT_EQ(dtype_of<int16_t>::value, DType::i16);
}

TEST(DType, I16TensorsStoreTwoByteLittleEndianIntegers) {
  const Tensor t = Tensor::from_values({-32768, -1, 0, 258, 32767}, DType::i16);
  EXPECT_EQ(t.nbytes(), 10u);
  const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
  // 258 = 0x0102 -> bytes 02 01; -1 -> ff ff; -32768 -> 00 80.
  const std::vector<uint8_t> want = {0x00, 0x80, 0xff, 0xff, 0x00, 0x00, 0x02, 0x01, 0xff, 0x7f};
  EXPECT_EQ(std::vector<uint8_t>(bytes, bytes + 10), want);
  EXPECT_EQ(t.to(DType::i32).to_vector(), (std::vector<double>{-32768, -1, 0, 258, 32767}));
  EXPECT_SPARSITY_ERROR(dtype_from_string("u16"), InvalidArgument, "u16");
}

}  // namespace
}  // namespace sparsity

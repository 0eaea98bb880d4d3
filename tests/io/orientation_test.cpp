// Tests of the mapping between torch's (out, in) orientation and a tensor's stored layout.
#include "sparsity/io/orientation.hpp"

#include <gtest/gtest.h>

namespace sparsity::io {
namespace {

TEST(Orientation, BlocksAndShapesSwapOnlyForTransposedTensors) {
  TensorInfo stored;  // e.g. a Gemm's B with transB=1: (out, in) as torch
  stored.shape = {8, 16};
  TensorInfo transposed = stored;  // e.g. a MatMul's B: (in, out)
  transposed.transposed = true;
  // 2:4 along `in` is a (1, 4) block in torch's orientation: (4, 1) over an (in, out) matrix.
  EXPECT_EQ(stored_block_shape(stored, {1, 4}), (std::array<int64_t, 2>{1, 4}));
  EXPECT_EQ(stored_block_shape(transposed, {1, 4}), (std::array<int64_t, 2>{4, 1}));
  EXPECT_EQ(stored_block_shape(transposed, {2, 8}), (std::array<int64_t, 2>{8, 2}));
  EXPECT_EQ(torch_shape(stored), (Shape{8, 16}));
  EXPECT_EQ(torch_shape(transposed), (Shape{16, 8}));
  transposed.shape = {2, 3, 4};  // only matrices have an orientation
  EXPECT_EQ(torch_shape(transposed), (Shape{2, 3, 4}));
}

}  // namespace
}  // namespace sparsity::io

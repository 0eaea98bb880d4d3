// Torch's (out, in) orientation and a tensor's stored layout: block shapes and shapes mapped between them.
#pragma once

#include <array>
#include <cstdint>

#include "sparsity/io/tensor_file.hpp"

namespace sparsity::io {

/// A block (or N:M group, which is a (1, M) block) given in torch's (out, in) orientation, as it
/// applies to the tensor's stored layout: swapped when the file stores the transpose
/// (TensorInfo::transposed, e.g. an ONNX MatMul's (in, out) weight), unchanged otherwise.
///
///   auto b = sparsity::io::stored_block_shape(info, {1, 4});   // 2:4 along `in`: {4, 1} for MatMul's B
std::array<int64_t, 2> stored_block_shape(const TensorInfo& info,
                                          std::array<int64_t, 2> torch_block) noexcept;

/// A 2-D tensor's shape in torch's (out, in) orientation: the stored shape, swapped when transposed.
/// Shapes of other ranks are returned as stored.
Shape torch_shape(const TensorInfo& info);

}  // namespace sparsity::io

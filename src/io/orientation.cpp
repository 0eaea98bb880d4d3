// Block shapes and shapes between torch's (out, in) orientation and a tensor's stored layout.
#include "sparsity/io/orientation.hpp"

namespace sparsity::io {

std::array<int64_t, 2> stored_block_shape(const TensorInfo& info,
                                          std::array<int64_t, 2> torch_block) noexcept {
  if (!info.transposed) return torch_block;
  return {torch_block[1], torch_block[0]};
}

Shape torch_shape(const TensorInfo& info) {
  if (!info.transposed || info.shape.size() != 2) return info.shape;
  return {info.shape[1], info.shape[0]};
}

}  // namespace sparsity::io

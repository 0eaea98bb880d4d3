// Sparsity statistics of a checkpoint: zeros per tensor and the pattern they form.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsity/core/tensor.hpp"

namespace sparsity::prune {

/// One tensor's statistics. `pattern` is "dense" (no zeros), "all zero", "N:M" (every M consecutive
/// elements along a row hold at most N non-zeros, N < M, and most groups hold exactly N), "RxC blocks" (the zeros are exactly a union
/// of aligned R x C tiles, the largest such tile reported), or "unstructured"; 2-D tensors only, others
/// are "dense", "all zero" or "unstructured". Zero means +0.0 or -0.0 for floats, all bits 0 otherwise.
struct TensorStats {
  std::string name;
  std::string dtype;
  Shape shape;
  uint64_t numel = 0;
  uint64_t zeros = 0;
  std::string pattern;
};

struct CheckpointStats {
  std::vector<TensorStats> tensors;  ///< checkpoint order
  uint64_t numel = 0;
  uint64_t zeros = 0;
};

/// Statistics of every tensor of a .safetensors file or sharded index, streamed tensor by tensor.
CheckpointStats inspect_checkpoint(const std::string& path);

/// Pattern of a rows x cols matrix given its non-zero flags (1 = non-zero), as described above.
std::string detect_pattern(const uint8_t* nonzero, int64_t rows, int64_t cols);

}  // namespace sparsity::prune

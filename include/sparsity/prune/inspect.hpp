// Sparsity statistics of a checkpoint: zeros per tensor and the pattern they form.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sparsity/base/json.hpp"
#include "sparsity/core/tensor.hpp"

namespace sparsity::prune {

/// One tensor's statistics. `pattern` is "dense" (no zeros), "all zero", "N:M" (every M consecutive
/// elements along a row hold at most N non-zeros, N < M, and most groups hold exactly N), "N:M along
/// columns" (the same down the columns, as a weight stored (in, out) carries N:M of its inputs), "RxC
/// blocks" (the zeros are exactly a union of aligned R x C tiles, the largest such tile reported), or
/// "unstructured". A tensor of rank >= 3 is read as the matrix (shape[0], the rest); rank 1 and 0 are
/// "dense", "all zero" or "unstructured". Zero means +0.0 or -0.0 for floats, all bits 0 otherwise.
/// For a tensor stored as (in, out) (TensorInfo::transposed), `torch_pattern` is the pattern in
/// torch's (out, in) orientation.
struct TensorStats {
  std::string name;
  std::string dtype;
  Shape shape;
  uint64_t numel = 0;
  uint64_t zeros = 0;
  std::string pattern;
  std::string torch_pattern;  ///< set for transposed tensors only
  bool inspected = true;      ///< false for block-quantized data (GGUF Q*, IQ*, ...): no zeros counted
  /// A packed weight (pack.hpp) is one entry for all its parts: `name` the weight's, `dtype` and `shape`
  /// the dense tensor's, zeros and pattern those of the unpacked weight, `format` its layout (empty for
  /// a tensor stored dense).
  std::string format;
  uint64_t bytes = 0;        ///< bytes in the file (a packed weight: its parts together)
  uint64_t dense_bytes = 0;  ///< bytes the dense tensor takes (== bytes for a tensor stored dense)
};

/// What a sparsifier state file (state_file.hpp) holds, when the inspected file is one.
struct StateStats {
  std::string sparsifier;
  int64_t steps = 0;
  bool scheduler = false;  ///< the state holds a scheduler's
  /// One per group: the tensor, its mask's statistics (numel, zeros = pruned, pattern), its group keys.
  struct Group {
    TensorStats mask;
    Json settings;
  };
  std::vector<Group> groups;
};

struct CheckpointStats {
  std::vector<TensorStats> tensors;  ///< checkpoint order
  uint64_t numel = 0;                ///< over the inspected tensors
  uint64_t zeros = 0;
  uint64_t packed = 0;              ///< packed weights among `tensors`
  uint64_t bytes = 0;               ///< sum of TensorStats::bytes
  uint64_t dense_bytes = 0;         ///< sum of TensorStats::dense_bytes
  std::optional<StateStats> state;  ///< set when the file is a sparsifier state
};

/// Statistics of every tensor of a tensor file or sharded index, streamed tensor by tensor; a sparsifier
/// state file is read as one (its masks unpacked), a packed weight as the dense weight it holds (its
/// parts checked in full and unpacked one weight at a time).
CheckpointStats inspect_checkpoint(const std::string& path);

/// Pattern of a rows x cols matrix given its non-zero flags (1 = non-zero), as described above.
std::string detect_pattern(const uint8_t* nonzero, int64_t rows, int64_t cols);

}  // namespace sparsity::prune

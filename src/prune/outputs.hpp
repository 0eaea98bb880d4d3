// The outputs of a prune run: path checks by file identity, hidden writers, and their publication.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "prune/targets.hpp"
#include "sparsity/io/atomic_file.hpp"
#include "sparsity/io/checkpoint.hpp"
#include "sparsity/io/tensor_file.hpp"
#include "sparsity/prune/state_file.hpp"

namespace sparsity::prune {

/// Where a run writes. Empty paths are not written.
struct OutputPaths {
  std::string output;  ///< the pruned model (an index .json for a sharded model, its shards beside it)
  std::string masks;
  std::string state;
  std::string resume;  ///< read, not written; may be `state`
  bool durable = true;
};

/// Checks the paths against each other and against every input file by identity (device and inode,
/// symbolic links followed): no output may be an input unless the output is the model itself (OUT ==
/// MODEL replaces it), no two outputs the same file, nothing that is not a regular file. Then creates
/// every writer, hidden until publish(). InvalidArgument naming the path and the flag otherwise.
class Outputs {
 public:
  Outputs(const io::Checkpoint& model, const std::vector<Target>& targets, const OutputPaths& paths);
  ~Outputs();

  /// The writer of the model shard holding a tensor, and the tensor's index in it; null without output.
  io::TensorWriter* model_writer(size_t shard) const {
    return model_.empty() ? nullptr : model_[shard].get();
  }
  /// The masks writer (entry i = target i), null when not asked for.
  io::TensorWriter* masks() const { return masks_.get(); }
  bool wants_state() const { return !paths_.state.empty(); }

  /// Finishes every output, stages the state file (when asked), and publishes them all back to back:
  /// the model's shards, its index, the masks, the state; then syncs their directories.
  void publish(const SparsifierCheckpoint* state);

 private:
  OutputPaths paths_;
  std::vector<std::unique_ptr<io::TensorWriter>> model_;
  std::unique_ptr<io::TensorWriter> masks_;
  std::unique_ptr<io::AtomicFile> index_;
};

}  // namespace sparsity::prune

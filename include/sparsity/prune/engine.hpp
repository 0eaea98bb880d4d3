// Out-of-core pruning of safetensors checkpoints: the engine behind `sparsity prune` and `sparsity demo`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sparsity/io/checkpoint.hpp"
#include "sparsity/prune/registry.hpp"

namespace sparsity::io {

/// What to prune and where the results go. Empty paths are not written.
struct PruneOptions {
  std::string model;   ///< .safetensors file or sharded index (.json)
  PruneConfig config;  ///< see registry.hpp
  std::string output;  ///< pruned checkpoint (same form as `model`); may equal `model`
  std::string masks;   ///< U8 masks, 1 kept / 0 pruned, one per pruned tensor
  std::string state;   ///< sparsifier state file (state_file.hpp)
  std::string resume;  ///< state file to continue from
  int threads = 0;     ///< 0: every core
  bool durable = true; ///< fsync outputs before renaming them into place
  /// Called from worker threads (serialised) with bytes done and total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

/// Per pruned tensor: fraction of zeros in the mask after each step, and the time spent on it.
struct LayerReport {
  std::string fqn;
  std::string dtype;
  Shape shape;
  std::vector<double> sparsity_per_step;
  double seconds = 0;
};

struct PruneReport {
  std::vector<LayerReport> layers;  ///< in config order
  int64_t steps_done = 0;           ///< including the resumed state's
};

/// The tensors a configuration prunes, in config order (for `config` null: every module whose
/// `weight` is 2-D and floating, in make_config_from_model's LIFO order over the module tree the
/// tensor names describe). Each entry is the config entry (with "tensor_fqn"). Unknown fqns,
/// non-floating or non-2-D tensors throw InvalidArgument naming the config key.
std::vector<Json> resolve_targets(const Checkpoint& model, const PruneConfig& config, const std::string& config_where);

/// Runs prepare, `steps` x (step, scheduler step) and squash on every target, tensor by tensor (the
/// groups are independent and each tensor replays the scheduler's levels), streaming the input from
/// its mapping to the outputs. Outputs appear only when everything succeeded (temporary files, fsync,
/// rename); on any error nothing is written and the input is untouched.
PruneReport prune_checkpoint(const PruneOptions& options, const std::string& config_where = "config");

}  // namespace sparsity::io

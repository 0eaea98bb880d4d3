// One target's work: the sparsifier lifecycle on a view of the tensor, streamed to the outputs.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/scratch.hpp"
#include "prune/targets.hpp"
#include "sparsity/io/tensor_file.hpp"
#include "sparsity/prune/engine.hpp"
#include "sparsity/prune/state_file.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"
#include "sparsity/sparsifier/base_sparsifier.hpp"

namespace sparsity::prune {

/// What a resumed run restores for one tensor.
struct ResumedTensor {
  Json group;
  const PackedMask* mask = nullptr;
  Json values;     ///< TensorState::values, possibly empty
  Json scheduler;  ///< this tensor's part of the scheduler state (null when none)
};

/// Where one target's results go; null writers are not written.
struct TensorSinks {
  io::TensorWriter* model = nullptr;
  size_t model_index = 0;
  io::TensorWriter* masks = nullptr;
  size_t mask_index = 0;
  bool state = false;
};

/// A worker's memory, reused from tensor to tensor: the mask and the slices on their way out.
struct WorkerScratch {
  ::sparsity::detail::Scratch<uint8_t> mask, slice;
};

/// What one target leaves for the report and the state file.
struct TensorResult {
  LayerReport report;
  PackedMask bits;  ///< the final mask (when the state is written)
  Json group;
  Json values;
  Json scheduler;
};

/// Zeros (+0.0 and -0.0) of a floating-point tensor of a file, read in slices.
uint64_t count_zeros(const io::TensorFile& file, const io::TensorInfo& info, WorkerScratch& scratch);

/// The sparsity a group's settings ask for: sparsity_level x zeros_per_block / block size (WeightNorm's
/// keys when present), nullopt when the group has no level.
std::optional<double> expected_sparsity(const Json& group);

/// A target's sparsifier, prepared on a one-tensor module tree holding a read-only view of it (a u8 mask in
/// the worker's scratch; WandaSparsifier given `activation_norms` when defined), `resumed` restored
/// through load_state_dict, and its scheduler.
struct TensorLifecycle {
  ModulePtr model;
  std::unique_ptr<BaseSparsifier> sparsifier;
  std::unique_ptr<BaseScheduler> scheduler;
};
TensorLifecycle prepare_tensor(const Target& target, const PruneConfig& config, const ResumedTensor* resumed,
                               const Tensor& activation_norms, WorkerScratch& scratch);

/// Prunes one target: prepare_tensor, then `steps` x (step, scheduler step). The squashed weight
/// (squash_mask's value: the original where the mask keeps it, +0.0 elsewhere) is streamed slice by slice
/// to `sinks.model`, the 0/1 mask to `sinks.masks`. `activation_norms`, when defined, is the target's input
/// norms for WandaSparsifier; `blocks_to_prune` >= 0 is the target's share of a global ranking (a
/// WeightNormSparsifier's set_blocks_to_prune).
TensorResult prune_tensor(const Target& target, const PruneConfig& config, const ResumedTensor* resumed,
                          const Tensor& activation_norms, int64_t blocks_to_prune, const TensorSinks& sinks,
                          WorkerScratch& scratch);

}  // namespace sparsity::prune

// Sparsifier state files: masks packed as bits in safetensors, groups and scheduler state as JSON.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sparsity/io/safetensors.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"
#include "sparsity/sparsifier/base_sparsifier.hpp"

namespace sparsity::prune {

/// Most steps a state may count (scheduler epochs are 32-bit ints).
inline constexpr int64_t kMaxSteps = 2147483647;

/// A mask of `shape` packed as bits (element i is bit i % 8 of byte i / 8; 1 = kept).
struct PackedMask {
  Shape shape;
  std::vector<uint8_t> bits;
};

/// Everything needed to continue pruning: the sparsifier's state_dict (groups, per-tensor values and
/// masks), its class and defaults, the scheduler's state_dict (null when none) and the steps done.
///
/// File layout: one U8 tensor per tensor_fqn holding the packed bits (shape [ceil(n / 8)]); the
/// `__metadata__` keys "sparsity.format" = "sparsity-state/1", "sparsifier", "defaults", "groups",
/// "state" ({fqn: {"shape": [...], ...values}}), "scheduler" and "steps", the last five as JSON text.
struct SparsifierCheckpoint {
  std::string sparsifier;
  Json defaults = Json::object();
  std::vector<Json> groups;
  NamedList<PackedMask> masks;  ///< by tensor_fqn, in group order
  Json values = Json::object(); ///< {fqn: TensorState::values}
  Json scheduler;               ///< null when there is no scheduler
  int64_t steps = 0;
};

/// Snapshot of a live sparsifier (masks of any dtype are packed: non-zero = kept).
SparsifierCheckpoint checkpoint_of(const BaseSparsifier& sparsifier, const BaseScheduler* scheduler, int64_t steps);
/// The sparsifier state_dict of a checkpoint, masks unpacked as u8 tensors of 0/1.
SparsifierStateDict to_state_dict(const SparsifierCheckpoint& checkpoint);
/// Packs a mask (any dtype, non-zero = kept).
PackedMask pack_mask(const Tensor& mask);
/// u8 tensor of 0/1.
Tensor unpack_mask(const PackedMask& mask);

/// Writes atomically (temporary file, fsync, rename).
void save_checkpoint(const std::string& path, const SparsifierCheckpoint& checkpoint);
/// Writes and flushes a hidden file; the returned writer's publish() makes it appear at `path`
/// (for several outputs that must appear together).
std::unique_ptr<io::SafetensorsWriter> stage_checkpoint(const std::string& path, const SparsifierCheckpoint& checkpoint,
                                                    bool durable = true);
/// Reads and validates (format key, JSON of every metadata key, bit counts per mask, masks matching
/// groups); errors name the file and the key or tensor.
SparsifierCheckpoint load_checkpoint(const std::string& path);

}  // namespace sparsity::prune

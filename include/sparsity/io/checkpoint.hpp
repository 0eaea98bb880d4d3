// Checkpoints: one tensor file, or a sharded set described by model.safetensors.index.json.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sparsity/io/tensor_file.hpp"

namespace sparsity::io {

/// One tensor of a checkpoint and the shard that holds it.
struct CheckpointEntry {
  std::shared_ptr<TensorFile> file;
  const TensorInfo* info = nullptr;
  size_t shard = 0;
};

/// A checkpoint opened as a whole: one tensor file of any format open_tensor_file() knows, or, for a
/// path ending in ".json", a sharded index
/// ({"metadata": {...}, "weight_map": {tensor: shard file name}}), whose shards live beside it; every
/// shard is opened and validated, and the index must name each tensor of each shard exactly once.
///
///   auto ckpt = sparsity::io::Checkpoint::open("model.safetensors.index.json");
///   for (const auto& e : ckpt.entries()) std::cout << e.info->name << "\n";
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);

  const std::string& path() const noexcept { return path_; }
  bool sharded() const noexcept { return sharded_; }
  /// Shards in index order (one element for a single file).
  const std::vector<std::shared_ptr<TensorFile>>& shards() const noexcept { return shards_; }
  /// Shard file names as the index gives them (the single file's base name otherwise).
  const std::vector<std::string>& shard_names() const noexcept { return shard_names_; }
  /// The index file's text (sharded only).
  const std::string& index_text() const noexcept { return index_text_; }
  /// Every tensor: shards in order, each in file order.
  const std::vector<CheckpointEntry>& entries() const noexcept { return entries_; }
  /// nullptr when absent.
  const CheckpointEntry* find(const std::string& name) const;
  /// Sum of the tensors' data sizes.
  uint64_t data_bytes() const noexcept { return data_bytes_; }

 private:
  std::string path_;
  bool sharded_ = false;
  std::vector<std::shared_ptr<TensorFile>> shards_;
  std::vector<std::string> shard_names_;
  std::string index_text_;
  std::vector<CheckpointEntry> entries_;
  std::map<std::string, size_t> index_;
  uint64_t data_bytes_ = 0;
};

/// True for paths that name a sharded index (ending in ".json").
bool is_index_path(const std::string& path);

}  // namespace sparsity::io

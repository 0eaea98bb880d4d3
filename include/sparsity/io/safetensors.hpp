// safetensors reading (memory-mapped, zero-copy, fully validated) and writing (atomic).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sparsity/tensor.hpp"

namespace sparsity::io {

/// One tensor entry of a safetensors header. `dtype_name` is the file's name ("F32", "I16", "F8_E4M3",
/// ...); `dtype` is set for the dtypes a Tensor can hold.
struct TensorInfo {
  std::string name;
  std::string dtype_name;
  std::optional<DType> dtype;
  Shape shape;
  uint64_t begin = 0;  ///< data_offsets, relative to the data buffer
  uint64_t end = 0;
};

/// A safetensors file mapped read-only. Opening validates the whole header (spec: 8-byte LE length N
/// <= file size - 8 and <= 100 MB, JSON object, known dtypes, offsets in range, ordered, non-overlapping
/// and covering the data buffer, sizes matching shape x dtype without overflow, unique names) and
/// throws sparsity::Error naming the file and the offending tensor, key or byte offset.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  /// Parse and validate a header held in memory (`file_size` = total size it claims to describe).
  static std::vector<TensorInfo> parse_header(const uint8_t* data, size_t size, const std::string& where,
                                              std::map<std::string, std::string>* metadata = nullptr);

  const std::string& path() const noexcept { return path_; }
  /// Entries in file order (by data offset).
  const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  const TensorInfo& info(const std::string& name) const;  ///< NotFound naming it
  bool contains(const std::string& name) const;
  /// Read-only zero-copy view (keeps the mapping alive); InvalidArgument for dtypes a Tensor cannot hold.
  Tensor tensor(const std::string& name) const;
  /// Raw bytes of an entry (any dtype).
  const uint8_t* bytes(const TensorInfo& info) const;
  uint64_t file_size() const noexcept { return size_; }

  ~SafetensorsFile();

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  uint64_t data_begin_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, size_t> index_;
};

/// Convenience: every tensor of a file as owned copies, in file order (small files, tests).
NamedList<Tensor> load_safetensors(const std::string& path,
                                   std::map<std::string, std::string>* metadata = nullptr);

/// Writes tensors to `path` atomically (temporary file in the same directory, fsync, rename).
void save_safetensors(const std::string& path, const NamedList<Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace sparsity::io

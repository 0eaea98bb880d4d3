// safetensors reading (memory-mapped, zero-copy, fully validated) and writing (atomic).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparsity/core/tensor.hpp"
#include "sparsity/io/tensor_file.hpp"

namespace sparsity::io {

/// Largest header a file may declare (100 MB), as the reference implementation.
inline constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

/// Bytes per element of a safetensors dtype name ("F32" -> 4, "F8_E4M3" -> 1); 0 for an unknown name.
size_t safetensors_dtype_size(std::string_view dtype_name) noexcept;
/// The DType a Tensor uses for a safetensors dtype name (F32, F64, F16, BF16, BOOL, U8, I8, I16, I32,
/// I64); nullopt for the others (U16, U32, U64, F8_*), which only pass through as bytes.
std::optional<DType> safetensors_to_dtype(std::string_view dtype_name) noexcept;
/// "F32", "F64", "F16", "BF16", "BOOL", "U8", "I8", "I16", "I32", "I64".
const char* dtype_to_safetensors(DType dtype) noexcept;

/// A safetensors file mapped read-only. Opening validates the whole header (spec: 8-byte LE length N
/// <= file size - 8 and <= 100 MB, JSON object, known dtypes, offsets in range, ordered, non-overlapping
/// and covering the data buffer, sizes matching shape x dtype without overflow, unique names) and
/// throws sparsity::Error naming the file and the offending tensor, key or byte offset. Messages have
/// the form "<what> (<file>, <tensor, key or byte offset>)" on a single line.
///
///   auto f = sparsity::io::SafetensorsFile::open("model.safetensors");
///   for (const auto& info : f->tensors()) std::cout << info.name << "\n";
///   sparsity::Tensor w = f->tensor("layers.0.weight");   // read-only view of the mapping
class SafetensorsFile : public TensorFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  /// Parse and validate a whole file image held in memory (`data`, `size` = the 8-byte length, the
  /// header and the data buffer). `where` names it in error messages. Returns the entries in file
  /// order, their offsets relative to the data buffer (the header's data_offsets).
  static std::vector<TensorInfo> parse_header(const uint8_t* data, size_t size, const std::string& where,
                                              std::map<std::string, std::string>* metadata = nullptr);

  std::string_view format() const noexcept override { return "safetensors"; }
  /// Absolute file offset of the data buffer (8 + header length).
  uint64_t data_begin() const noexcept { return data_begin_; }
  /// Same header bytes, same data layout.
  std::unique_ptr<TensorWriter> create_like(const std::string& path) const override;

 private:
  explicit SafetensorsFile(std::string path) : TensorFile(std::move(path)) {}
  uint64_t data_begin_ = 0;
};

/// Convenience: every tensor of a file as owned copies, in file order (small files, tests). Throws
/// InvalidArgument naming the tensor for a dtype a Tensor cannot hold.
NamedList<Tensor> load_safetensors(const std::string& path,
                                   std::map<std::string, std::string>* metadata = nullptr);

/// Writes tensors to `path` atomically (temporary file in the same directory, fsync, rename).
void save_safetensors(const std::string& path, const NamedList<Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// What a SafetensorsWriter lays out: name, safetensors dtype name and shape of one entry.
struct TensorSpec {
  std::string name;
  std::string dtype_name;
  Shape shape;
};

/// A new safetensors file of known layout, streamed into a hidden file and published atomically
/// (see FileLayoutWriter and AtomicFile). Data may be written in any order and from any thread.
///
///   io::SafetensorsWriter w("out.safetensors", {{"w", "F32", {2, 2}}});
///   w.write(0, 0, values, 16);     // entry 0, byte 0 of its data
///   w.commit();                    // fsync + appears at out.safetensors
class SafetensorsWriter : public FileLayoutWriter {
 public:
  /// Validates names (non-empty, unique, not "__metadata__") and dtypes, and creates the hidden file.
  SafetensorsWriter(std::string path, std::vector<TensorSpec> entries,
                    const std::map<std::string, std::string>& metadata = {});
  struct Layout;  ///< header bytes and entries (safetensors.cpp)

 private:
  SafetensorsWriter(std::string path, Layout layout);
};

}  // namespace sparsity::io

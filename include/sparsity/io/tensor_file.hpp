// The format seam: a tensor file read zero-copy (TensorFile) and written atomically (TensorWriter).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparsity/core/tensor.hpp"
#include "sparsity/io/atomic_file.hpp"

namespace sparsity::io {

/// One tensor of a file, whatever the format. `dtype_name` is the file's own type name ("F32", "I16",
/// "Q4_K", ...); `dtype` is set when a Tensor can hold the data. `shape` is in torch order (slowest
/// dimension first) whatever order the file stores its dimensions in. The data is the `size` bytes at
/// absolute file offset `offset`.
struct TensorInfo {
  std::string name;
  std::string dtype_name;
  std::optional<DType> dtype;
  Shape shape;
  uint64_t offset = 0;
  uint64_t size = 0;
  /// The layer kind the file says uses this tensor ("Linear", "Conv2d"), empty when it does not say.
  std::string module_type;
  /// The stored matrix is (in, out), the transpose of torch's (out, in) (e.g. an ONNX MatMul's B).
  bool transposed = false;

  uint64_t nbytes() const noexcept { return size; }
  uint64_t numel() const noexcept;
};

class TensorWriter;

/// A tensor file mapped read-only, validated when opened. Formats derive from it (safetensors.hpp, ...);
/// open_tensor_file() picks the format of a path.
///
///   auto f = sparsity::io::open_tensor_file("model.safetensors");
///   for (const auto& info : f->tensors()) std::cout << info.name << "\n";
///   sparsity::Tensor w = f->tensor("layers.0.weight");   // read-only view of the mapping
class TensorFile : public std::enable_shared_from_this<TensorFile> {
 public:
  virtual ~TensorFile();
  TensorFile(const TensorFile&) = delete;
  TensorFile& operator=(const TensorFile&) = delete;

  /// "safetensors", "gguf", ...
  virtual std::string_view format() const noexcept = 0;
  const std::string& path() const noexcept { return path_; }
  uint64_t file_size() const noexcept { return size_; }
  /// Entries in file order (by data offset).
  const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
  /// String metadata of the file (safetensors' __metadata__; other formats render theirs).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  /// nullptr when absent.
  const TensorInfo* find(const std::string& name) const noexcept;
  bool contains(const std::string& name) const noexcept { return find(name) != nullptr; }
  /// NotFound naming it.
  const TensorInfo& info(const std::string& name) const;
  /// Raw bytes of an entry (any dtype), in the mapping.
  const uint8_t* bytes(const TensorInfo& info) const noexcept { return map_ + info.offset; }
  /// Read-only zero-copy view (keeps the mapping alive); InvalidArgument for dtypes a Tensor cannot
  /// hold. Data not aligned to its element size is copied into an owned tensor instead.
  Tensor tensor(const std::string& name) const;
  /// Hint: the pages of this entry will be read soon.
  void prefetch(const TensorInfo& info) const noexcept;
  /// Hint: the pages of this entry may leave the resident set (they stay readable).
  void release(const TensorInfo& info) const noexcept;

  /// A writer for a file of this format with this file's layout (same header, same tensors at the same
  /// offsets) at `path`, hidden until published. Every tensor's data must be written or copied.
  virtual std::unique_ptr<TensorWriter> create_like(const std::string& path) const = 0;

 protected:
  /// Maps `path` read-only (NotFound / Io / InvalidArgument naming it: missing, unreadable, not a
  /// regular file). Derived constructors then parse and fill tensors_ and metadata_ and call index().
  explicit TensorFile(std::string path);
  /// Builds the name lookup; InvalidArgument naming a name that appears twice.
  void index();

  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;

 private:
  std::string path_;
  std::map<std::string, size_t> by_name_;
};

/// An output tensor file: each entry's data is written by index and byte offset, in any order and from
/// any thread (writes are serialised); nothing appears at path() until publish().
class TensorWriter {
 public:
  virtual ~TensorWriter() = default;
  virtual const std::string& path() const noexcept = 0;
  /// The entries, with their places in the file.
  virtual const std::vector<TensorInfo>& entries() const noexcept = 0;
  /// NotFound naming it.
  size_t index_of(const std::string& name) const;
  /// Writes `n` bytes at byte `offset` of entry `index`'s data; OutOfRange past the entry's end.
  virtual void write(size_t index, uint64_t offset, const void* data, size_t n) = 0;
  /// Copies an entry's whole data from a source file (same byte count), releasing the source pages
  /// as it goes.
  void copy_from(size_t index, const TensorFile& src, const TensorInfo& src_info);
  virtual void set_durable(bool on) noexcept = 0;
  virtual void start_writeback() noexcept = 0;
  /// Completes the output (fsync when durable); still hidden.
  virtual void finish() = 0;
  /// See AtomicFile::stage().
  virtual void stage() = 0;
  virtual void publish(bool sync_dir = true) = 0;
  /// Every file publish() makes appear, path() first (a format may write more than one, e.g. an ONNX
  /// model's external data).
  virtual std::vector<std::string> paths() const = 0;
  /// The directories of paths(), each once (for sync_directories()).
  std::vector<std::string> directories() const;
  void commit() {
    finish();
    publish();
  }
};

/// The writer of single-file formats: the bytes before and between the tensors are given by the
/// format (write_raw), the tensors' data is written by entry.
class FileLayoutWriter : public TensorWriter {
 public:
  /// `entries` carry absolute offsets; the file is `file_size` bytes.
  FileLayoutWriter(std::string path, std::vector<TensorInfo> entries, uint64_t file_size);
  const std::string& path() const noexcept override { return file_.path(); }
  const std::vector<TensorInfo>& entries() const noexcept override { return entries_; }
  uint64_t file_size() const noexcept { return file_size_; }
  void write(size_t index, uint64_t offset, const void* data, size_t n) override;
  /// Bytes that belong to no tensor (headers, padding) at an absolute offset.
  void write_raw(uint64_t offset, const void* data, size_t n);
  void set_durable(bool on) noexcept override { file_.set_durable(on); }
  void start_writeback() noexcept override { file_.start_writeback(); }
  void finish() override { file_.finish(); }
  void stage() override { file_.stage(); }
  void publish(bool sync_dir = true) override { file_.publish(sync_dir); }
  std::vector<std::string> paths() const override { return {file_.path()}; }

 private:
  AtomicFile file_;
  std::vector<TensorInfo> entries_;
  uint64_t file_size_ = 0;
  std::mutex write_mu_;  ///< one write at a time (the file system serialises them anyway; this sleeps)
};

/// Opens a tensor file, choosing the format by its first bytes (then by its extension): safetensors,
/// GGUF, ... InvalidArgument naming the path when no format recognises it.
std::shared_ptr<TensorFile> open_tensor_file(const std::string& path);

/// How a format is recognised and opened; one per format, in io/formats.cpp.
struct TensorFormat {
  const char* name;
  /// Whether the first bytes (at most 16, fewer for short files) and the path look like this format.
  bool (*recognises)(const uint8_t* head, size_t n, const std::string& path);
  std::shared_ptr<TensorFile> (*open)(const std::string& path);
};
/// Every compiled-in format, in the order open_tensor_file() tries them.
const std::vector<TensorFormat>& tensor_formats();

}  // namespace sparsity::io

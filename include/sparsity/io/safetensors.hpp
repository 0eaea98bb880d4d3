// safetensors reading (memory-mapped, zero-copy, fully validated) and writing (atomic).
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

namespace sparsity::io {

/// Largest header a file may declare (100 MB), as the reference implementation.
inline constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

/// Bytes per element of a safetensors dtype name ("F32" -> 4, "F8_E4M3" -> 1); 0 for an unknown name.
size_t safetensors_dtype_size(std::string_view dtype_name) noexcept;
/// The DType a Tensor uses for a safetensors dtype name (F32, F64, F16, BF16, BOOL, U8, I8, I32, I64);
/// nullopt for the others (I16, U16, U32, U64, F8_*), which only pass through as bytes.
std::optional<DType> safetensors_to_dtype(std::string_view dtype_name) noexcept;
/// "F32", "F64", "F16", "BF16", "BOOL", "U8", "I8", "I32", "I64".
const char* dtype_to_safetensors(DType dtype) noexcept;

/// One tensor entry of a safetensors header. `dtype_name` is the file's name ("F32", "I16", "F8_E4M3",
/// ...); `dtype` is set for the dtypes a Tensor can hold.
struct TensorInfo {
  std::string name;
  std::string dtype_name;
  std::optional<DType> dtype;
  Shape shape;
  uint64_t begin = 0;  ///< data_offsets, relative to the data buffer
  uint64_t end = 0;

  uint64_t nbytes() const noexcept { return end - begin; }
  uint64_t numel() const noexcept;
};

/// A safetensors file mapped read-only. Opening validates the whole header (spec: 8-byte LE length N
/// <= file size - 8 and <= 100 MB, JSON object, known dtypes, offsets in range, ordered, non-overlapping
/// and covering the data buffer, sizes matching shape x dtype without overflow, unique names) and
/// throws sparsity::Error naming the file and the offending tensor, key or byte offset. Messages have
/// the form "<what> (<file>, <tensor, key or byte offset>)" on a single line.
///
///   auto f = sparsity::io::SafetensorsFile::open("model.safetensors");
///   for (const auto& info : f->tensors()) std::cout << info.name << "\n";
///   sparsity::Tensor w = f->tensor("layers.0.weight");   // read-only view of the mapping
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  /// Parse and validate a whole file image held in memory (`data`, `size` = the 8-byte length, the
  /// header and the data buffer). `where` names it in error messages. Returns the entries in file order.
  static std::vector<TensorInfo> parse_header(const uint8_t* data, size_t size, const std::string& where,
                                              std::map<std::string, std::string>* metadata = nullptr);

  const std::string& path() const noexcept { return path_; }
  /// Entries in file order (by data offset).
  const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  const TensorInfo& info(const std::string& name) const;  ///< NotFound naming it
  bool contains(const std::string& name) const;
  /// Read-only zero-copy view (keeps the mapping alive); InvalidArgument for dtypes a Tensor cannot
  /// hold. Data that is not aligned to its element size is copied into an owned tensor instead.
  Tensor tensor(const std::string& name) const;
  /// Raw bytes of an entry (any dtype).
  const uint8_t* bytes(const TensorInfo& info) const;
  uint64_t file_size() const noexcept { return size_; }
  /// Absolute file offset of the data buffer (8 + header length).
  uint64_t data_begin() const noexcept { return data_begin_; }
  /// Hint: the pages of this entry may leave the process's resident set (they stay readable and are
  /// faulted back in from the page cache when touched again). Used to stream large files.
  void release(const TensorInfo& info) const noexcept;
  /// Hint: the pages of this entry will be read soon.
  void prefetch(const TensorInfo& info) const noexcept;

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

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

/// Streams a safetensors file of known layout into a hidden temporary file in the target directory
/// (unnamed O_TMPFILE where the file system supports it, else a dot-file removed on failure). Data
/// may be written in any order; nothing appears at `path` until publish(). Destroying an unpublished
/// writer discards everything, and a killed process leaves no file behind (with O_TMPFILE).
///
///   io::SafetensorsWriter w("out.safetensors", {{"w", "F32", {2, 2}}});
///   w.write(0, 0, values, 16);     // entry 0, byte 0 of its data
///   w.commit();                    // fsync + rename into place
class SafetensorsWriter {
 public:
  /// Validates names (non-empty, unique, not "__metadata__") and dtypes, and creates the temporary file.
  SafetensorsWriter(std::string path, std::vector<TensorSpec> entries,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  const std::string& path() const noexcept { return path_; }
  /// The entries with their data offsets, in the given order.
  const std::vector<TensorInfo>& entries() const noexcept { return entries_; }
  size_t index_of(const std::string& name) const;  ///< NotFound naming it
  uint64_t file_size() const noexcept { return file_size_; }

  /// Writes `n` bytes at byte `offset` of entry `index`'s data; OutOfRange past the entry's end. Safe to
  /// call from several threads (the writes are serialised).
  void write(size_t index, uint64_t offset, const void* data, size_t n);
  /// Copies an entry's whole data from an open source file range (kernel-side copy when possible).
  void copy_from(size_t index, const SafetensorsFile& src, const TensorInfo& src_info);
  /// Completes the file and, unless set_durable(false), flushes it to disk (fsync). The file is
  /// complete but still hidden.
  void finish();
  /// Whether finish() and publish() fsync (default true). Without it a killed process still leaves
  /// no partial file, but a power loss may lose the renamed file's contents.
  void set_durable(bool on) noexcept { durable_ = on; }
  /// Starts writing back the data written so far (non-blocking), so that finish() waits less.
  void start_writeback() noexcept;
  /// Gives the finished file its hidden temporary name (for unnamed files); publish() calls it. Calling it
  /// first for several writers keeps the window between their renames as short as possible.
  void stage();
  /// Makes the finished file appear at `path` atomically (rename over any previous file) and, with
  /// `sync_dir` (and durability on), syncs the directory.
  void publish(bool sync_dir = true);
  /// finish() + publish().
  void commit() {
    finish();
    publish();
  }

 private:
  void discard() noexcept;
  std::string path_;
  std::string dir_;
  std::string temp_path_;  ///< named temporary file (fallback); empty with O_TMPFILE
  int fd_ = -1;
  std::mutex write_mu_;  ///< one write() at a time
  bool finished_ = false;
  bool published_ = false;
  bool durable_ = true;
  std::vector<TensorInfo> entries_;
  std::map<std::string, size_t> index_;
  uint64_t data_begin_ = 0;
  uint64_t file_size_ = 0;
};

}  // namespace sparsity::io

// TensorFile (mapping, lookup, views, paging hints), TensorWriter's copy, FileLayoutWriter, format choice.
#include "sparsity/io/tensor_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/text.hpp"
#include "io/paths.hpp"

namespace sparsity::io {
namespace {

using ::sparsity::detail::at_file;
using ::sparsity::detail::at_tensor;
using ::sparsity::detail::quote;

std::string sys_error() { return std::strerror(errno); }

// Page-aligned range covering bytes [begin, end) of a mapping.
void page_range(const uint8_t* base, uint64_t begin, uint64_t end, uint8_t** a, size_t* len) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t lo = reinterpret_cast<uintptr_t>(base + begin) & ~(page - 1);
  const uintptr_t hi = reinterpret_cast<uintptr_t>(base + end);
  *a = reinterpret_cast<uint8_t*>(lo);
  *len = hi > lo ? hi - lo : 0;
}

}  // namespace

uint64_t TensorInfo::numel() const noexcept {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

// ---- TensorFile ------------------------------------------------------------------------------------

TensorFile::TensorFile(std::string path) : path_(std::move(path)) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    throw Error(errno == ENOENT ? ErrorCode::NotFound : ErrorCode::Io, "cannot open: " + sys_error(),
                {at_file(path_)});
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string e = sys_error();
    ::close(fd);
    throw Error(ErrorCode::Io, "cannot stat: " + e, {at_file(path_)});
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorCode::InvalidArgument, "not a regular file", {at_file(path_)});
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const std::string map_error = m == MAP_FAILED ? sys_error() : "";
    ::close(fd);
    if (m == MAP_FAILED) throw Error(ErrorCode::Io, "cannot map: " + map_error, {at_file(path_)});
    map_ = static_cast<const uint8_t*>(m);
  } else {
    ::close(fd);
  }
}

TensorFile::~TensorFile() {
  if (map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), size_);
}

void TensorFile::index() {
  by_name_.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    SPARSITY_CHECK_AT(by_name_.emplace(tensors_[i].name, i).second, InvalidArgument,
                      (std::vector<std::string>{at_file(path_), at_tensor(tensors_[i].name)}),
                      "tensor name ", quote(tensors_[i].name), " appears twice");
  }
}

const TensorInfo* TensorFile::find(const std::string& name) const noexcept {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& TensorFile::info(const std::string& name) const {
  const TensorInfo* i = find(name);
  SPARSITY_CHECK_AT(i != nullptr, NotFound, (std::vector<std::string>{at_file(path_), at_tensor(name)}),
                    "no tensor ", quote(name));
  return *i;
}

Tensor TensorFile::tensor(const std::string& name) const {
  const TensorInfo& ti = info(name);
  SPARSITY_CHECK_AT(ti.dtype.has_value(), InvalidArgument,
                    (std::vector<std::string>{at_file(path_), at_tensor(name)}), "dtype ", ti.dtype_name,
                    " cannot be held by a Tensor");
  const uint8_t* p = bytes(ti);
  if (reinterpret_cast<uintptr_t>(p) % size_of(*ti.dtype) != 0) {
    Tensor t = Tensor::zeros(ti.shape, *ti.dtype);
    if (ti.nbytes()) std::memcpy(t.mutable_data_ptr(), p, ti.nbytes());
    return t;
  }
  return Tensor::from_blob(static_cast<const void*>(p), ti.shape, *ti.dtype,
                           std::const_pointer_cast<TensorFile>(shared_from_this()));
}

void TensorFile::prefetch(const TensorInfo& info) const noexcept {
  uint8_t* a;
  size_t len;
  page_range(map_, info.offset, info.offset + info.size, &a, &len);
  if (!len) return;
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif
  // Map the whole tensor in one call (page-table entries in bulk instead of a fault per few pages);
  // kernels without MADV_POPULATE_READ only start the read-ahead.
  if (::madvise(a, len, MADV_POPULATE_READ) != 0) ::madvise(a, len, MADV_WILLNEED);
}

void TensorFile::release(const TensorInfo& info) const noexcept {
  uint8_t* a;
  size_t len;
  page_range(map_, info.offset, info.offset + info.size, &a, &len);
  if (len) ::madvise(a, len, MADV_DONTNEED);
}

// ---- writers ---------------------------------------------------------------------------------------

size_t TensorWriter::index_of(const std::string& name) const {
  const auto& e = entries();
  for (size_t i = 0; i < e.size(); ++i) {
    if (e[i].name == name) return i;
  }
  throw Error(ErrorCode::NotFound, "no tensor " + quote(name), {at_file(path()), at_tensor(name)});
}

void TensorWriter::copy_from(size_t index, const TensorFile& src, const TensorInfo& src_info) {
  SPARSITY_CHECK_AT(index < entries().size(), OutOfRange, {at_file(path())}, "entry index ", index,
                    " out of range");
  const TensorInfo& e = entries()[index];
  SPARSITY_CHECK_AT(e.nbytes() == src_info.nbytes(), InvalidArgument,
                    (std::vector<std::string>{at_file(path()), at_tensor(e.name)}), "copy of ",
                    src_info.nbytes(), " bytes into ", e.nbytes());
  // Straight from the mapping in slices, each dropped from the resident set once written.
  const uint8_t* p = src.bytes(src_info);
  constexpr uint64_t kSlice = 8u << 20;
  for (uint64_t done = 0; done < e.nbytes(); done += kSlice) {
    const uint64_t n = std::min(kSlice, e.nbytes() - done);
    write(index, done, p + done, n);
    TensorInfo part = src_info;
    part.offset = src_info.offset + done;
    part.size = n;
    src.release(part);
  }
}

FileLayoutWriter::FileLayoutWriter(std::string path, std::vector<TensorInfo> entries, uint64_t file_size)
    : file_(std::move(path)), entries_(std::move(entries)), file_size_(file_size) {
  for (const auto& e : entries_) {
    SPARSITY_CHECK_AT(e.offset <= file_size_ && e.size <= file_size_ - e.offset, OutOfRange,
                      (std::vector<std::string>{at_file(file_.path()), at_tensor(e.name)}),
                      "tensor data lies past the end of the file");
  }
  // Reserve the blocks up front: a full disk fails here, before any work.
  file_.reserve(file_size_);
}

void FileLayoutWriter::write(size_t index, uint64_t offset, const void* data, size_t n) {
  SPARSITY_CHECK_AT(index < entries_.size(), OutOfRange, {at_file(file_.path())}, "entry index ", index,
                    " out of range");
  const TensorInfo& e = entries_[index];
  SPARSITY_CHECK_AT(offset <= e.size && n <= e.size - offset, OutOfRange,
                    (std::vector<std::string>{at_file(file_.path()), at_tensor(e.name)}), "write of ", n,
                    " bytes at ", offset, " passes the end of ", e.size, " bytes");
  // File systems hold the inode lock through a buffered write and a second writer spins on it while the
  // first copies; waiting here sleeps instead (same wall time, the CPU left to the other threads).
  std::lock_guard<std::mutex> lock(write_mu_);
  file_.write(data, n, e.offset + offset);
}

void FileLayoutWriter::write_raw(uint64_t offset, const void* data, size_t n) {
  SPARSITY_CHECK_AT(offset <= file_size_ && n <= file_size_ - offset, OutOfRange, {at_file(file_.path())},
                    "write of ", n, " bytes at ", offset, " passes the end of the file");
  std::lock_guard<std::mutex> lock(write_mu_);
  file_.write(data, n, offset);
}

std::vector<std::string> TensorWriter::directories() const {
  std::vector<std::string> dirs;
  for (const auto& p : paths()) {
    const std::string d = parent_dir(p);
    if (std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
  }
  return dirs;
}

// ---- formats ---------------------------------------------------------------------------------------

std::shared_ptr<TensorFile> open_tensor_file(const std::string& path) {
  uint8_t head[16] = {};
  size_t n = 0;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      const ssize_t r = ::pread(fd, head, sizeof head, 0);
      n = r > 0 ? static_cast<size_t>(r) : 0;
    }
    ::close(fd);
  }
  for (const auto& f : tensor_formats()) {
    if (f.recognises(head, n, path)) return f.open(path);
  }
  // Nothing claims it: the last format (safetensors) reports what is wrong with it, or that it is
  // missing / not a regular file.
  return tensor_formats().back().open(path);
}

}  // namespace sparsity::io

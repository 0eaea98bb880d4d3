// safetensors: header validation, memory-mapped reading and atomic streaming writes.
#include "sparsity/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "io/json_strict.hpp"
#include "base/text.hpp"

namespace sparsity::io {
namespace {

using ::sparsity::detail::printable;
using ::sparsity::detail::quote;

struct DTypeRow {
  const char* name;
  size_t size;
  std::optional<DType> dtype;
};
const DTypeRow kDTypes[] = {
    {"BOOL", 1, DType::bool_}, {"U8", 1, DType::u8},       {"I8", 1, DType::i8},
    {"F8_E5M2", 1, {}},        {"F8_E4M3", 1, {}},         {"I16", 2, {}},
    {"U16", 2, {}},            {"F16", 2, DType::f16},     {"BF16", 2, DType::bf16},
    {"I32", 4, DType::i32},    {"U32", 4, {}},             {"F32", 4, DType::f32},
    {"F64", 8, DType::f64},    {"I64", 8, DType::i64},     {"U64", 8, {}},
};

std::string sys_error() { return std::strerror(errno); }

// Error "<what> (<file>, <where>)".
[[noreturn]] void fail(ErrorCode code, const std::string& what, const std::string& file, const std::string& where) {
  throw Error(code, what + " (" + printable(file) + (where.empty() ? "" : ", " + where) + ")");
}

std::string tensor_where(const std::string& name) { return "tensor " + quote(name); }

uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool as_u64(const nlohmann::ordered_json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

std::string shape_text(const Shape& s) { return shape_to_string(s); }

constexpr int kMaxDepth = 64;

}  // namespace

size_t safetensors_dtype_size(std::string_view name) noexcept {
  for (const auto& r : kDTypes) {
    if (name == r.name) return r.size;
  }
  return 0;
}

std::optional<DType> safetensors_to_dtype(std::string_view name) noexcept {
  for (const auto& r : kDTypes) {
    if (name == r.name) return r.dtype;
  }
  return std::nullopt;
}

const char* dtype_to_safetensors(DType dtype) noexcept {
  for (const auto& r : kDTypes) {
    if (r.dtype && *r.dtype == dtype) return r.name;
  }
  return "?";
}

uint64_t TensorInfo::numel() const noexcept {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::vector<TensorInfo> SafetensorsFile::parse_header(const uint8_t* data, size_t size, const std::string& where,
                                                      std::map<std::string, std::string>* metadata) {
  if (size < 8) {
    fail(ErrorCode::InvalidArgument,
         "file of " + std::to_string(size) + " bytes is too short for the 8-byte header length", where,
         "byte offset 0");
  }
  const uint64_t n = load_le64(data);
  if (n > kMaxHeaderBytes) {
    fail(ErrorCode::InvalidArgument,
         "header length " + std::to_string(n) + " exceeds the 100 MB limit", where, "byte offset 0");
  }
  if (n > size - 8) {
    fail(ErrorCode::InvalidArgument,
         "header length " + std::to_string(n) + " exceeds the file size minus 8 (" + std::to_string(size - 8) + ")",
         where, "byte offset 0");
  }
  const char* text = reinterpret_cast<const char*>(data + 8);

  nlohmann::ordered_json header;
  detail::StrictJsonError err;
  if (!detail::parse_strict(text, text + n, header, err, kMaxDepth)) {
    if (err.kind == 1) {
      fail(ErrorCode::InvalidArgument, "duplicate key " + quote(err.key) + " in the header", where,
           tensor_where(err.key));
    }
    if (err.kind == 2) {
      fail(ErrorCode::InvalidArgument, "header JSON is nested deeper than " + std::to_string(kMaxDepth) + " levels",
           where, "byte offset 8");
    }
    fail(ErrorCode::InvalidArgument, "header is not valid JSON", where, "byte offset " + std::to_string(8 + err.offset));
  }
  if (!header.is_object()) fail(ErrorCode::InvalidArgument, "header is not a JSON object", where, "byte offset 8");

  const uint64_t buffer = size - 8 - n;
  std::vector<TensorInfo> infos;
  infos.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(ErrorCode::InvalidArgument, "__metadata__ is not a JSON object", where, "key '__metadata__'");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          fail(ErrorCode::InvalidArgument, "__metadata__ value is not a string", where,
               "key '__metadata__." + printable(m.key()) + "'");
        }
        if (metadata) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tw = tensor_where(name);
    if (name.empty()) fail(ErrorCode::InvalidArgument, "empty tensor name", where, tw);
    if (!v.is_object()) fail(ErrorCode::InvalidArgument, "tensor entry is not a JSON object", where, tw);
    for (auto k = v.begin(); k != v.end(); ++k) {
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets") {
        fail(ErrorCode::InvalidArgument, "unknown key " + quote(k.key()) + " in tensor entry", where, tw);
      }
    }
    TensorInfo info;
    info.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(ErrorCode::InvalidArgument, "missing or non-string 'dtype'", where, tw);
    info.dtype_name = dt->get<std::string>();
    const size_t esize = safetensors_dtype_size(info.dtype_name);
    if (esize == 0) fail(ErrorCode::InvalidArgument, "unknown dtype " + quote(info.dtype_name), where, tw);
    info.dtype = safetensors_to_dtype(info.dtype_name);

    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(ErrorCode::InvalidArgument, "missing or non-array 'shape'", where, tw);
    uint64_t bytes = esize;
    bool overflow = false;
    for (const auto& d : *sh) {
      uint64_t dim = 0;
      if (!as_u64(d, &dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(ErrorCode::InvalidArgument, "shape holds a value that is not a non-negative integer", where, tw);
      }
      info.shape.push_back(static_cast<int64_t>(dim));
      if (!overflow && __builtin_mul_overflow(bytes, dim, &bytes)) overflow = true;
    }
    // A zero dimension makes the product 0 whatever overflowed before it.
    if (std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end()) {
      overflow = false;
      bytes = 0;
    }
    if (overflow) {
      fail(ErrorCode::InvalidArgument, "shape " + shape_text(info.shape) + " overflows a 64-bit byte count", where, tw);
    }

    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !as_u64((*off)[0], &info.begin) ||
        !as_u64((*off)[1], &info.end)) {
      fail(ErrorCode::InvalidArgument, "'data_offsets' is not an array of two non-negative integers", where, tw);
    }
    if (info.begin > info.end) {
      fail(ErrorCode::InvalidArgument,
           "data_offsets begin " + std::to_string(info.begin) + " > end " + std::to_string(info.end), where, tw);
    }
    if (info.end > buffer) {
      fail(ErrorCode::OutOfRange,
           "data_offsets end " + std::to_string(info.end) + " lies past the data buffer of " + std::to_string(buffer) +
               " bytes",
           where, tw);
    }
    if (info.end - info.begin != bytes) {
      fail(ErrorCode::InvalidArgument,
           "size mismatch: shape " + shape_text(info.shape) + " of " + info.dtype_name + " needs " +
               std::to_string(bytes) + " bytes, data_offsets span " + std::to_string(info.end - info.begin),
           where, tw);
    }
    infos.push_back(std::move(info));
  }

  // File order; empty entries keep header order among equal offsets.
  std::stable_sort(infos.begin(), infos.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const auto& info : infos) {
    if (info.begin < cursor) {
      fail(ErrorCode::InvalidArgument,
           "data of tensors " + quote(prev->name) + " and " + quote(info.name) + " overlap at data offset " +
               std::to_string(info.begin),
           where, tensor_where(info.name));
    }
    if (info.begin > cursor) {
      fail(ErrorCode::InvalidArgument,
           "data buffer bytes " + std::to_string(cursor) + ".." + std::to_string(info.begin) +
               " belong to no tensor",
           where, "byte offset " + std::to_string(8 + n + cursor));
    }
    cursor = info.end;
    if (info.end > info.begin) prev = &info;
  }
  if (cursor != buffer) {
    fail(ErrorCode::InvalidArgument,
         "data buffer bytes " + std::to_string(cursor) + ".." + std::to_string(buffer) + " belong to no tensor", where,
         "byte offset " + std::to_string(8 + n + cursor));
  }
  return infos;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(errno == ENOENT ? ErrorCode::NotFound : ErrorCode::Io, "cannot open: " + sys_error(), path, "");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string e = sys_error();
    ::close(fd);
    fail(ErrorCode::Io, "cannot stat: " + e, path, "");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::InvalidArgument, "not a regular file", path, "");
  }
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ < 8) {
    ::close(fd);
    fail(ErrorCode::InvalidArgument,
         "file of " + std::to_string(f->size_) + " bytes is too short for the 8-byte header length", path,
         "byte offset 0");
  }
  void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const std::string map_error = m == MAP_FAILED ? sys_error() : "";
  ::close(fd);
  if (m == MAP_FAILED) fail(ErrorCode::Io, "cannot map: " + map_error, path, "");
  f->map_ = static_cast<const uint8_t*>(m);
  f->tensors_ = parse_header(f->map_, f->size_, path, &f->metadata_);
  f->data_begin_ = 8 + load_le64(f->map_);
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(ErrorCode::NotFound, "no tensor " + quote(name), path_, tensor_where(name));
  return tensors_[it->second];
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

const uint8_t* SafetensorsFile::bytes(const TensorInfo& info) const { return map_ + data_begin_ + info.begin; }

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& ti = info(name);
  if (!ti.dtype) {
    fail(ErrorCode::InvalidArgument, "dtype " + ti.dtype_name + " cannot be held by a Tensor", path_,
         tensor_where(name));
  }
  const uint8_t* p = bytes(ti);
  const size_t esize = size_of(*ti.dtype);
  if (reinterpret_cast<uintptr_t>(p) % esize != 0) {
    Tensor t = Tensor::zeros(ti.shape, *ti.dtype);
    if (ti.nbytes()) std::memcpy(t.mutable_data_ptr(), p, ti.nbytes());
    return t;
  }
  return Tensor::from_blob(static_cast<const void*>(p), ti.shape, *ti.dtype,
                           std::const_pointer_cast<SafetensorsFile>(shared_from_this()));
}

namespace {
void page_range(const uint8_t* base, uint64_t begin, uint64_t end, uint8_t** a, size_t* len) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t lo = reinterpret_cast<uintptr_t>(base + begin) & ~(page - 1);
  uintptr_t hi = reinterpret_cast<uintptr_t>(base + end);
  *a = reinterpret_cast<uint8_t*>(lo);
  *len = hi > lo ? hi - lo : 0;
}
}  // namespace

void SafetensorsFile::release(const TensorInfo& info) const noexcept {
  uint8_t* a;
  size_t len;
  page_range(map_, data_begin_ + info.begin, data_begin_ + info.end, &a, &len);
  if (len) ::madvise(a, len, MADV_DONTNEED);
}

void SafetensorsFile::prefetch(const TensorInfo& info) const noexcept {
  uint8_t* a;
  size_t len;
  page_range(map_, data_begin_ + info.begin, data_begin_ + info.end, &a, &len);
  if (!len) return;
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif
  // Map the whole tensor in one call (page-table entries in bulk instead of a fault per few pages); kernels
  // without MADV_POPULATE_READ only start the read-ahead.
  if (::madvise(a, len, MADV_POPULATE_READ) != 0) ::madvise(a, len, MADV_WILLNEED);
}

NamedList<Tensor> load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  auto f = SafetensorsFile::open(path);
  if (metadata) *metadata = f->metadata();
  NamedList<Tensor> out;
  for (const auto& info : f->tensors()) {
    if (!info.dtype) {
      fail(ErrorCode::InvalidArgument, "dtype " + info.dtype_name + " cannot be held by a Tensor", path,
           tensor_where(info.name));
    }
    Tensor t = Tensor::zeros(info.shape, *info.dtype);
    if (info.nbytes()) std::memcpy(t.mutable_data_ptr(), f->bytes(info), info.nbytes());
    out.emplace_back(info.name, t);
  }
  return out;
}

void save_safetensors(const std::string& path, const NamedList<Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    SPARSITY_CHECK(t.defined(), InvalidArgument, "undefined tensor ", quote(name), " (", printable(path), ")");
    specs.push_back({name, dtype_to_safetensors(t.dtype()), t.shape()});
  }
  SafetensorsWriter w(path, std::move(specs), metadata);
  for (size_t i = 0; i < tensors.size(); ++i) {
    Tensor c = tensors[i].second.contiguous();
    if (c.nbytes()) w.write(i, 0, c.data_ptr(), c.nbytes());
  }
  w.commit();
}

// ---- writer -------------------------------------------------------------------------------------

namespace {
void pwrite_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t w = ::pwrite(fd, p, chunk, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(ErrorCode::Io, "cannot write: " + sys_error(), path, "byte offset " + std::to_string(offset));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
std::string base_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), dir_(dir_of(path_)) {
  SPARSITY_CHECK(!path_.empty() && base_of(path_) != "" && base_of(path_) != "." && base_of(path_) != "..",
                 InvalidArgument, "not a file path (", printable(path_), ")");
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header["__metadata__"];
    m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  uint64_t offset = 0;
  for (auto& s : specs) {
    const std::string tw = tensor_where(s.name);
    if (s.name.empty() || s.name == "__metadata__") fail(ErrorCode::InvalidArgument, "invalid tensor name", path_, tw);
    if (!index_.emplace(s.name, entries_.size()).second) {
      fail(ErrorCode::InvalidArgument, "duplicate tensor name", path_, tw);
    }
    const size_t esize = safetensors_dtype_size(s.dtype_name);
    if (esize == 0) fail(ErrorCode::InvalidArgument, "unknown dtype " + quote(s.dtype_name), path_, tw);
    TensorInfo info;
    info.name = s.name;
    info.dtype_name = s.dtype_name;
    info.dtype = safetensors_to_dtype(s.dtype_name);
    info.shape = s.shape;
    const uint64_t numel = static_cast<uint64_t>(shape_numel(s.shape));
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(numel, esize, &bytes) || __builtin_add_overflow(offset, bytes, &info.end)) {
      fail(ErrorCode::OutOfRange, "tensor too large", path_, tw);
    }
    info.begin = offset;
    offset = info.end;
    header[s.name] = {{"dtype", s.dtype_name}, {"shape", s.shape}, {"data_offsets", {info.begin, info.end}}};
    entries_.push_back(std::move(info));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data buffer 8-byte aligned
  data_begin_ = 8 + text.size();
  file_size_ = data_begin_ + offset;

#ifdef O_TMPFILE
  fd_ = ::open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
#endif
  if (fd_ < 0) {
    std::string templ = dir_ + "/." + base_of(path_) + ".tmp-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    fd_ = ::mkostemp(buf.data(), O_CLOEXEC);
    if (fd_ < 0) fail(ErrorCode::Io, "cannot create a temporary file in " + printable(dir_) + ": " + sys_error(), path_, "");
    temp_path_ = buf.data();
    ::fchmod(fd_, 0644);
  }
  try {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(text.size() >> (8 * i));
    pwrite_all(fd_, len, 8, 0, path_);
    pwrite_all(fd_, text.data(), text.size(), 8, path_);
    // Reserve the blocks up front (a full disk fails here, before any work); file systems without
    // fallocate get a sparse file of the right size.
    if (::fallocate(fd_, 0, 0, static_cast<off_t>(file_size_)) != 0) {
      if (errno == ENOSPC) fail(ErrorCode::Io, "cannot size the output: " + sys_error(), path_, "");
      if (::ftruncate(fd_, static_cast<off_t>(file_size_)) != 0) {
        fail(ErrorCode::Io, "cannot size the output: " + sys_error(), path_, "");
      }
    }
  } catch (...) {
    discard();
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  if (!published_) discard();
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsWriter::discard() noexcept {
  if (!temp_path_.empty()) {
    ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

size_t SafetensorsWriter::index_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(ErrorCode::NotFound, "no tensor " + quote(name), path_, tensor_where(name));
  return it->second;
}

void SafetensorsWriter::write(size_t index, uint64_t offset, const void* data, size_t n) {
  SPARSITY_CHECK(fd_ >= 0 && !finished_, FailedPrecondition, "writer is closed (", printable(path_), ")");
  SPARSITY_CHECK(index < entries_.size(), OutOfRange, "entry index ", index, " out of range (", printable(path_), ")");
  const TensorInfo& e = entries_[index];
  SPARSITY_CHECK(offset <= e.nbytes() && n <= e.nbytes() - offset, OutOfRange, "write of ", n, " bytes at ", offset,
                 " passes the end of ", e.nbytes(), " bytes (", printable(path_), ", ", tensor_where(e.name), ")");
  // File systems hold the inode lock through a buffered write, and a second writer spins on it while the
  // first copies; waiting here sleeps instead (same wall time, the CPU left to the other threads).
  std::lock_guard<std::mutex> lock(write_mu_);
  pwrite_all(fd_, data, n, data_begin_ + e.begin + offset, path_);
}

void SafetensorsWriter::copy_from(size_t index, const SafetensorsFile& src, const TensorInfo& src_info) {
  SPARSITY_CHECK(index < entries_.size(), OutOfRange, "entry index ", index, " out of range (", printable(path_), ")");
  const TensorInfo& e = entries_[index];
  SPARSITY_CHECK(e.nbytes() == src_info.nbytes(), InvalidArgument, "copy of ", src_info.nbytes(), " bytes into ",
                 e.nbytes(), " (", printable(path_), ", ", tensor_where(e.name), ")");
  // Write straight from the mapping in slices, dropping each slice from the resident set afterwards.
  const uint8_t* p = src.bytes(src_info);
  const uint64_t total = e.nbytes();
  constexpr uint64_t kSlice = 8u << 20;
  for (uint64_t done = 0; done < total; done += kSlice) {
    const uint64_t n = std::min(kSlice, total - done);
    write(index, done, p + done, n);
    TensorInfo part = src_info;
    part.begin = src_info.begin + done;
    part.end = part.begin + n;
    src.release(part);
  }
}

void SafetensorsWriter::start_writeback() noexcept {
  if (fd_ >= 0 && durable_) ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
}

void SafetensorsWriter::finish() {
  SPARSITY_CHECK(fd_ >= 0, FailedPrecondition, "writer is closed (", printable(path_), ")");
  if (finished_) return;
  if (durable_ && ::fsync(fd_) != 0) fail(ErrorCode::Io, "cannot flush to disk: " + sys_error(), path_, "");
  finished_ = true;
}

void SafetensorsWriter::stage() {
  SPARSITY_CHECK(finished_ && fd_ >= 0 && !published_, FailedPrecondition, "publish() needs a finished writer (",
                 printable(path_), ")");
  if (temp_path_.empty()) {
    // Unnamed file: give it a hidden name first (linkat cannot replace), then rename over the target.
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    for (int attempt = 0;; ++attempt) {
      std::string name = dir_ + "/." + base_of(path_) + ".tmp-" + std::to_string(::getpid()) + "-" +
                         std::to_string(attempt);
      if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0) {
        temp_path_ = name;
        break;
      }
      if (errno != EEXIST || attempt > 100) fail(ErrorCode::Io, "cannot link the output: " + sys_error(), path_, "");
    }
  }
}

void SafetensorsWriter::publish(bool sync_dir) {
  stage();
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    fail(ErrorCode::Io, "cannot rename into place: " + sys_error(), path_, "");
  }
  temp_path_.clear();
  published_ = true;
  const int dfd = durable_ && sync_dir ? ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace sparsity::io

// safetensors: header validation, reading through the TensorFile mapping, and the layout of new files.
#include "sparsity/io/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "base/json_strict.hpp"
#include "base/text.hpp"

namespace sparsity::io {
namespace {

using ::sparsity::detail::fail_at_file;
using ::sparsity::detail::printable;
using ::sparsity::detail::quote;

struct DTypeRow {
  const char* name;
  size_t size;
  std::optional<DType> dtype;
};
const DTypeRow kDTypes[] = {
    {"BOOL", 1, DType::bool_}, {"U8", 1, DType::u8},       {"I8", 1, DType::i8},
    {"F8_E5M2", 1, {}},        {"F8_E4M3", 1, {}},         {"I16", 2, DType::i16},
    {"U16", 2, {}},            {"F16", 2, DType::f16},     {"BF16", 2, DType::bf16},
    {"I32", 4, DType::i32},    {"U32", 4, {}},             {"F32", 4, DType::f32},
    {"F64", 8, DType::f64},    {"I64", 8, DType::i64},     {"U64", 8, {}},
};

std::string tensor_where(const std::string& name) { return ::sparsity::detail::at_tensor(name); }

uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool as_u64(const Json& v, uint64_t* out) {
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

std::vector<TensorInfo> SafetensorsFile::parse_header(const uint8_t* data, size_t size, const std::string& where,
                                                      std::map<std::string, std::string>* metadata) {
  if (size < 8) {
    fail_at_file(ErrorCode::InvalidArgument,
         "file of " + std::to_string(size) + " bytes is too short for the 8-byte header length", where,
         "byte offset 0");
  }
  const uint64_t n = load_le64(data);
  if (n > kMaxHeaderBytes) {
    fail_at_file(ErrorCode::InvalidArgument,
         "header length " + std::to_string(n) + " exceeds the 100 MB limit", where, "byte offset 0");
  }
  if (n > size - 8) {
    fail_at_file(ErrorCode::InvalidArgument,
         "header length " + std::to_string(n) + " exceeds the file size minus 8 (" + std::to_string(size - 8) + ")",
         where, "byte offset 0");
  }
  const char* text = reinterpret_cast<const char*>(data + 8);

  Json header;
  ::sparsity::detail::StrictJsonError err;
  if (!::sparsity::detail::parse_strict(text, text + n, header, err, kMaxDepth)) {
    if (err.kind == 1) {
      fail_at_file(ErrorCode::InvalidArgument, "duplicate key " + quote(err.key) + " in the header", where,
           tensor_where(err.key));
    }
    if (err.kind == 2) {
      fail_at_file(ErrorCode::InvalidArgument, "header JSON is nested deeper than " + std::to_string(kMaxDepth) + " levels",
           where, "byte offset 8");
    }
    fail_at_file(ErrorCode::InvalidArgument, "header is not valid JSON", where, "byte offset " + std::to_string(8 + err.offset));
  }
  if (!header.is_object()) fail_at_file(ErrorCode::InvalidArgument, "header is not a JSON object", where, "byte offset 8");

  const uint64_t buffer = size - 8 - n;
  std::vector<TensorInfo> infos;
  infos.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail_at_file(ErrorCode::InvalidArgument, "__metadata__ is not a JSON object", where, "key '__metadata__'");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          fail_at_file(ErrorCode::InvalidArgument, "__metadata__ value is not a string", where,
               "key '__metadata__." + printable(m.key()) + "'");
        }
        if (metadata) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tw = tensor_where(name);
    if (name.empty()) fail_at_file(ErrorCode::InvalidArgument, "empty tensor name", where, tw);
    if (!v.is_object()) fail_at_file(ErrorCode::InvalidArgument, "tensor entry is not a JSON object", where, tw);
    for (auto k = v.begin(); k != v.end(); ++k) {
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets") {
        fail_at_file(ErrorCode::InvalidArgument, "unknown key " + quote(k.key()) + " in tensor entry", where, tw);
      }
    }
    TensorInfo info;
    info.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail_at_file(ErrorCode::InvalidArgument, "missing or non-string 'dtype'", where, tw);
    info.dtype_name = dt->get<std::string>();
    const size_t esize = safetensors_dtype_size(info.dtype_name);
    if (esize == 0) fail_at_file(ErrorCode::InvalidArgument, "unknown dtype " + quote(info.dtype_name), where, tw);
    info.dtype = safetensors_to_dtype(info.dtype_name);

    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail_at_file(ErrorCode::InvalidArgument, "missing or non-array 'shape'", where, tw);
    uint64_t bytes = esize;
    bool overflow = false;
    for (const auto& d : *sh) {
      uint64_t dim = 0;
      if (!as_u64(d, &dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail_at_file(ErrorCode::InvalidArgument, "shape holds a value that is not a non-negative integer", where, tw);
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
      fail_at_file(ErrorCode::InvalidArgument, "shape " + shape_text(info.shape) + " overflows a 64-bit byte count", where, tw);
    }

    auto off = v.find("data_offsets");
    uint64_t begin = 0, end = 0;
    if (off == v.end() || !off->is_array() || off->size() != 2 || !as_u64((*off)[0], &begin) ||
        !as_u64((*off)[1], &end)) {
      fail_at_file(ErrorCode::InvalidArgument, "'data_offsets' is not an array of two non-negative integers", where, tw);
    }
    if (begin > end) {
      fail_at_file(ErrorCode::InvalidArgument,
           "data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end), where, tw);
    }
    if (end > buffer) {
      fail_at_file(ErrorCode::OutOfRange,
           "data_offsets end " + std::to_string(end) + " lies past the data buffer of " + std::to_string(buffer) +
               " bytes",
           where, tw);
    }
    if (end - begin != bytes) {
      fail_at_file(ErrorCode::InvalidArgument,
           "size mismatch: shape " + shape_text(info.shape) + " of " + info.dtype_name + " needs " +
               std::to_string(bytes) + " bytes, data_offsets span " + std::to_string(end - begin),
           where, tw);
    }
    info.offset = begin;
    info.size = end - begin;
    infos.push_back(std::move(info));
  }

  // File order; empty entries keep header order among equal offsets.
  std::stable_sort(infos.begin(), infos.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.size < b.size;
  });
  uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const auto& info : infos) {
    if (info.offset < cursor) {
      fail_at_file(ErrorCode::InvalidArgument,
           "data of tensors " + quote(prev->name) + " and " + quote(info.name) + " overlap at data offset " +
               std::to_string(info.offset),
           where, tensor_where(info.name));
    }
    if (info.offset > cursor) {
      fail_at_file(ErrorCode::InvalidArgument,
           "data buffer bytes " + std::to_string(cursor) + ".." + std::to_string(info.offset) +
               " belong to no tensor",
           where, "byte offset " + std::to_string(8 + n + cursor));
    }
    cursor = info.offset + info.size;
    if (info.size > 0) prev = &info;
  }
  if (cursor != buffer) {
    fail_at_file(ErrorCode::InvalidArgument,
         "data buffer bytes " + std::to_string(cursor) + ".." + std::to_string(buffer) + " belong to no tensor", where,
         "byte offset " + std::to_string(8 + n + cursor));
  }
  return infos;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile(path));
  f->tensors_ = parse_header(f->map_, f->size_, path, &f->metadata_);
  f->data_begin_ = 8 + load_le64(f->map_);
  for (auto& info : f->tensors_) info.offset += f->data_begin_;
  f->index();
  return f;
}

std::unique_ptr<TensorWriter> SafetensorsFile::create_like(const std::string& path) const {
  auto w = std::make_unique<FileLayoutWriter>(path, tensors_, size_);
  w->write_raw(0, map_, data_begin_);
  return w;
}

NamedList<Tensor> load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  auto f = SafetensorsFile::open(path);
  if (metadata) *metadata = f->metadata();
  NamedList<Tensor> out;
  for (const auto& info : f->tensors()) {
    if (!info.dtype) {
      fail_at_file(ErrorCode::InvalidArgument, "dtype " + info.dtype_name + " cannot be held by a Tensor", path,
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

struct SafetensorsWriter::Layout {
  std::vector<TensorInfo> entries;  // absolute offsets
  std::string header;               // the 8-byte length and the JSON text, padded
  uint64_t file_size = 0;
};

namespace {

SafetensorsWriter::Layout layout_of(const std::string& path, std::vector<TensorSpec> specs,
                 const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter::Layout l;
  Json header = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (auto& s : specs) {
    const std::string tw = tensor_where(s.name);
    if (s.name.empty() || s.name == "__metadata__") fail_at_file(ErrorCode::InvalidArgument, "invalid tensor name", path, tw);
    if (!names.insert(s.name).second) fail_at_file(ErrorCode::InvalidArgument, "duplicate tensor name", path, tw);
    const size_t esize = safetensors_dtype_size(s.dtype_name);
    if (esize == 0) fail_at_file(ErrorCode::InvalidArgument, "unknown dtype " + quote(s.dtype_name), path, tw);
    TensorInfo info;
    info.name = s.name;
    info.dtype_name = s.dtype_name;
    info.dtype = safetensors_to_dtype(s.dtype_name);
    info.shape = s.shape;
    const uint64_t numel = static_cast<uint64_t>(shape_numel(s.shape));
    uint64_t end = 0;
    if (__builtin_mul_overflow(numel, esize, &info.size) || __builtin_add_overflow(offset, info.size, &end)) {
      fail_at_file(ErrorCode::OutOfRange, "tensor too large", path, tw);
    }
    header[s.name] = {{"dtype", s.dtype_name}, {"shape", s.shape}, {"data_offsets", {offset, end}}};
    info.offset = offset;
    offset = end;
    l.entries.push_back(std::move(info));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data buffer 8-byte aligned
  l.header.resize(8);
  for (int i = 0; i < 8; ++i) l.header[static_cast<size_t>(i)] = static_cast<char>(text.size() >> (8 * i));
  l.header += text;
  for (auto& e : l.entries) e.offset += l.header.size();
  l.file_size = l.header.size() + offset;
  return l;
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                                     const std::map<std::string, std::string>& metadata)
    : SafetensorsWriter(path, layout_of(path, std::move(specs), metadata)) {}

SafetensorsWriter::SafetensorsWriter(std::string path, Layout layout)
    : FileLayoutWriter(std::move(path), std::move(layout.entries), layout.file_size) {
  write_raw(0, layout.header.data(), layout.header.size());
}

}  // namespace sparsity::io


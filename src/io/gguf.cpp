// GGUF: the ggml type table, metadata values, validation of a file image, the mapped file and writers.
#include "sparsity/io/gguf.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>
#include <limits>
#include <numeric>
#include <type_traits>
#include <unordered_map>

#include "base/text.hpp"

namespace sparsity::io {
namespace {

using ::sparsity::detail::at_offset;
using ::sparsity::detail::at_tensor;
using ::sparsity::detail::fail_at_file;
using ::sparsity::detail::quote;

constexpr uint32_t QK = 256;  // QK_K, the super-block of the K, IQ and TQ types

constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;  // magic, version, tensor count, kv count
// Smallest encodings, to bound counts by what the rest of the file can hold.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;        // key length, a 1-byte key, type, a u8
constexpr uint64_t kMinInfoBytes = 8 + 1 + 4 + 4 + 8;  // name length, a 1-byte name, n_dims, type, offset
constexpr uint64_t kMaxShownElements = 8;

// The value types by number: name, bytes of a scalar (0 for string and array), and kind ('u'nsigned,
// 'i'nteger, 'f'loat, 'b'ool, 's'tring, 'a'rray).
struct ValueKind {
  const char* name;
  uint64_t size;
  char kind;
};
constexpr ValueKind kValueKinds[] = {
    {"u8", 1, 'u'},  {"i8", 1, 'i'},  {"u16", 2, 'u'},  {"i16", 2, 'i'},    {"u32", 4, 'u'},
    {"i32", 4, 'i'}, {"f32", 4, 'f'}, {"bool", 1, 'b'}, {"string", 0, 's'}, {"array", 0, 'a'},
    {"u64", 8, 'u'}, {"i64", 8, 'i'}, {"f64", 8, 'f'},
};

const ValueKind& kind_of(GgufType t) { return kValueKinds[static_cast<uint32_t>(t)]; }
uint64_t scalar_size(GgufType t) { return kind_of(t).size; }
bool valid_type(uint32_t t) { return t < std::size(kValueKinds); }

// Smallest encoding of one array element of type t.
uint64_t min_element_bytes(GgufType t) {
  if (t == GgufType::string) return 8;
  if (t == GgufType::array) return 4 + 8;
  return scalar_size(t);
}

uint64_t load_le(const uint8_t* p, uint64_t n) {
  uint64_t v = 0;
  for (uint64_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

void store_le(std::string& out, uint64_t v, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

template <class F>
std::string shortest(F v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string n_str(uint64_t v) { return std::to_string(v); }

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

// ---- types --------------------------------------------------------------------------------------

const std::vector<GgmlType>& ggml_types() noexcept {
  // ggml's type_traits (ggml.c): block size and sizeof(block_<type>) from ggml-common.h.
  static const std::vector<GgmlType> types = {
      {0, "F32", 1, 4, DType::f32},
      {1, "F16", 1, 2, DType::f16},
      {2, "Q4_0", 32, 2 + 16, {}},
      {3, "Q4_1", 32, 2 + 2 + 16, {}},
      {6, "Q5_0", 32, 2 + 4 + 16, {}},
      {7, "Q5_1", 32, 2 + 2 + 4 + 16, {}},
      {8, "Q8_0", 32, 2 + 32, {}},
      {9, "Q8_1", 32, 2 + 2 + 32, {}},
      {10, "Q2_K", QK, 2 + 2 + QK / 16 + QK / 4, {}},
      {11, "Q3_K", QK, 2 + QK / 4 + QK / 8 + 12, {}},
      {12, "Q4_K", QK, 2 + 2 + 12 + QK / 2, {}},
      {13, "Q5_K", QK, 2 + 2 + 12 + QK / 2 + QK / 8, {}},
      {14, "Q6_K", QK, 2 + QK / 16 + 3 * QK / 4, {}},
      {15, "Q8_K", QK, 4 + QK + QK / 16 * 2, {}},
      {16, "IQ2_XXS", QK, 2 + QK / 8 * 2, {}},
      {17, "IQ2_XS", QK, 2 + QK / 8 * 2 + QK / 32, {}},
      {18, "IQ3_XXS", QK, 2 + 3 * (QK / 8), {}},
      {19, "IQ1_S", QK, 2 + QK / 8 + QK / 16, {}},
      {20, "IQ4_NL", 32, 2 + 16, {}},
      {21, "IQ3_S", QK, 2 + 13 * (QK / 32) + QK / 64, {}},
      {22, "IQ2_S", QK, 2 + QK / 4 + QK / 16, {}},
      {23, "IQ4_XS", QK, 2 + 2 + QK / 64 + QK / 2, {}},
      {24, "I8", 1, 1, {}},
      {25, "I16", 1, 2, {}},
      {26, "I32", 1, 4, {}},
      {27, "I64", 1, 8, {}},
      {28, "F64", 1, 8, {}},
      {29, "IQ1_M", QK, QK / 8 + QK / 16 + QK / 32, {}},
      {30, "BF16", 1, 2, DType::bf16},
      {34, "TQ1_0", QK, 2 + QK / 64 + (QK - 4 * QK / 64) / 5, {}},
      {35, "TQ2_0", QK, 2 + QK / 4, {}},
      {39, "MXFP4", 32, 1 + 16, {}},
      {40, "NVFP4", 64, 64 / 16 + 64 / 2, {}},
      {41, "Q1_0", 128, 2 + 128 / 8, {}},
      {42, "Q2_0", 64, 2 + 64 / 4, {}},
  };
  return types;
}

const GgmlType* find_ggml_type(uint32_t id) noexcept {
  for (const auto& t : ggml_types()) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

const GgmlType* find_ggml_type(std::string_view name) noexcept {
  for (const auto& t : ggml_types()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

const char* to_string(GgufType type) noexcept {
  return valid_type(static_cast<uint32_t>(type)) ? kind_of(type).name : "?";
}

// ---- values -------------------------------------------------------------------------------------

GgufValue GgufValue::scalar(GgufType type, uint64_t bits) {
  const uint64_t n = valid_type(static_cast<uint32_t>(type)) ? scalar_size(type) : 0;
  SPARSITY_CHECK(n != 0, InvalidArgument, "a GGUF scalar cannot have type ", sparsity::io::to_string(type));
  GgufValue v;
  v.type_ = type;
  v.bits_ = n == 8 ? bits : bits & ((uint64_t{1} << (8 * n)) - 1);
  v.encoded_size_ = n;
  return v;
}

GgufValue GgufValue::of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return scalar(GgufType::f32, b);
}

GgufValue GgufValue::of(double v) {
  uint64_t b;
  std::memcpy(&b, &v, 8);
  return scalar(GgufType::f64, b);
}

GgufValue GgufValue::of(std::string v) {
  GgufValue s;
  s.type_ = GgufType::string;
  s.encoded_size_ = 8 + v.size();
  s.bytes_ = std::move(v);
  return s;
}

GgufValue GgufValue::empty_array(GgufType element_type) {
  SPARSITY_CHECK(valid_type(static_cast<uint32_t>(element_type)), InvalidArgument, "unknown GGUF value type ",
                 static_cast<uint32_t>(element_type));
  GgufValue a;
  a.type_ = GgufType::array;
  a.element_type_ = element_type;
  a.encoded_size_ = 4 + 8;
  return a;
}

GgufValue GgufValue::array(std::vector<GgufValue> arrays) {
  GgufValue a = empty_array(GgufType::array);
  for (auto& e : arrays) a.push_back(e);
  return a;
}

void GgufValue::push_back(const GgufValue& element) {
  SPARSITY_CHECK(is_array(), InvalidArgument, "push_back on a GGUF ", sparsity::io::to_string(type_),
                 " value");
  SPARSITY_CHECK(element.type_ == element_type_, InvalidArgument, "a ",
                 sparsity::io::to_string(element.type_), " value cannot join an array of ",
                 sparsity::io::to_string(element_type_));
  if (const uint64_t n = scalar_size(element_type_)) {
    store_le(bytes_, element.bits_, n);
  } else {
    elements_.push_back(element);
  }
  ++count_;
  encoded_size_ += element.encoded_size_;
}

GgufValue GgufValue::at(uint64_t i) const {
  SPARSITY_CHECK(is_array(), InvalidArgument, "element of a GGUF ", sparsity::io::to_string(type_), " value");
  SPARSITY_CHECK(i < count_, OutOfRange, "element ", i, " of an array of ", count_);
  if (const uint64_t n = scalar_size(element_type_)) {
    return scalar(element_type_, load_le(reinterpret_cast<const uint8_t*>(bytes_.data()) + i * n, n));
  }
  return elements_[static_cast<size_t>(i)];
}

uint64_t GgufValue::as_u64() const {
  const char k = kind_of(type_).kind;
  if (k == 'u') return bits_;
  if (k == 'b') return bits_ != 0;
  if (k == 'i') return static_cast<uint64_t>(as_i64());
  SPARSITY_FAIL(InvalidArgument, "a GGUF ", sparsity::io::to_string(type_), " value is not an integer");
}

int64_t GgufValue::as_i64() const {
  if (kind_of(type_).kind != 'i') return static_cast<int64_t>(as_u64());
  const uint64_t shift = 64 - 8 * scalar_size(type_);  // sign-extend from the value's width
  return static_cast<int64_t>(bits_ << shift) >> shift;
}

double GgufValue::as_f64() const {
  if (type_ == GgufType::f32) {
    float f;
    const auto b = static_cast<uint32_t>(bits_);
    std::memcpy(&f, &b, 4);
    return f;
  }
  if (type_ == GgufType::f64) {
    double d;
    std::memcpy(&d, &bits_, 8);
    return d;
  }
  return kind_of(type_).kind == 'i' ? static_cast<double>(as_i64()) : static_cast<double>(as_u64());
}

const std::string& GgufValue::as_string() const {
  SPARSITY_CHECK(type_ == GgufType::string, InvalidArgument, "a GGUF ", sparsity::io::to_string(type_),
                 " value is not a string");
  return bytes_;
}

std::string GgufValue::to_string() const {
  if (type_ == GgufType::array) {
    std::string s = "[" + std::string(sparsity::io::to_string(element_type_)) + " x " + n_str(count_);
    for (uint64_t i = 0; i < std::min(count_, kMaxShownElements); ++i) {
      const GgufValue e = at(i);
      s += i ? ", " : ": ";
      s += e.type_ == GgufType::string ? quote(e.bytes_) : e.to_string();
    }
    return s + (count_ > kMaxShownElements ? ", ...]" : "]");
  }
  if (type_ == GgufType::string) return bytes_;
  if (type_ == GgufType::bool_) return bits_ ? "true" : "false";
  if (type_ == GgufType::f32) return shortest(static_cast<float>(as_f64()));
  if (type_ == GgufType::f64) return shortest(as_f64());
  return kind_of(type_).kind == 'i' ? std::to_string(as_i64()) : n_str(as_u64());
}

void GgufValue::encode(std::string& out) const {
  if (const uint64_t n = scalar_size(type_)) {
    store_le(out, bits_, n);
  } else if (type_ == GgufType::string) {
    store_le(out, bytes_.size(), 8);
    out += bytes_;
  } else {
    store_le(out, static_cast<uint32_t>(element_type_), 4);
    store_le(out, count_, 8);
    out += bytes_;  // the elements of an array of scalars
    for (const auto& e : elements_) e.encode(out);
  }
}

bool operator==(const GgufValue& a, const GgufValue& b) {
  return a.type_ == b.type_ && a.bits_ == b.bits_ && a.count_ == b.count_ &&
         (!a.is_array() || a.element_type_ == b.element_type_) && a.bytes_ == b.bytes_ &&
         a.elements_ == b.elements_;
}

// ---- parsing ------------------------------------------------------------------------------------

// Reads a file image front to back; every read is checked against the bytes left, every count against
// what those bytes can hold (so no allocation exceeds a small multiple of the file).
struct GgufParser {
  const uint8_t* data;
  uint64_t size;
  const std::string& where;
  uint64_t pos = 0;

  [[noreturn]] void fail(const std::string& what, uint64_t at,
                         ErrorCode code = ErrorCode::InvalidArgument) const {
    fail_at_file(code, what, where, at_offset(at));
  }
  uint64_t left() const { return size - pos; }
  // `what` names the field in a message: text, or a callable making it (only when it is needed, so
  // the elements of a long array cost no message each).
  template <class What>
  static std::string text(const What& what) {
    if constexpr (std::is_invocable_v<const What&>) {
      return what();
    } else {
      return std::string(what);
    }
  }
  template <class What>
  void need(uint64_t n, const What& what) const {
    if (n > left()) {
      fail("truncated: the " + n_str(n) + "-byte " + text(what) + " passes the end of the file (" +
               n_str(size) + " bytes)",
           pos);
    }
  }
  template <class What>
  uint64_t read(uint64_t n, const What& what) {
    need(n, what);
    const uint64_t v = load_le(data + pos, n);
    pos += n;
    return v;
  }
  // A length-prefixed string; `what` names it ("key", "tensor name").
  template <class What>
  std::string string(const What& what) {
    const uint64_t at = pos;
    const uint64_t n = read(8, [&] { return text(what) + " length"; });
    if (n > left()) {
      fail(text(what) + " length " + n_str(n) + " passes the end of the file (" + n_str(left()) +
               " bytes left)",
           at);
    }
    std::string s(reinterpret_cast<const char*>(data + pos), static_cast<size_t>(n));
    pos += n;
    return s;
  }

  GgufValue value(GgufType type, int depth, const std::string& key) {
    GgufValue v;
    v.type_ = type;
    if (const uint64_t n = scalar_size(type)) {
      v.bits_ =
          read(n, [&] { return std::string(sparsity::io::to_string(type)) + " value of key " + quote(key); });
      v.encoded_size_ = n;
      return v;
    }
    if (type == GgufType::string) {
      v.bytes_ = string([&] { return "string value of key " + quote(key); });
      v.encoded_size_ = 8 + v.bytes_.size();
      return v;
    }
    // An array: element type, count, elements.
    const uint64_t start = pos;
    const uint64_t type_at = pos;
    const auto et = static_cast<uint32_t>(read(4, [&] { return "array element type of key " + quote(key); }));
    if (!valid_type(et))
      fail("unknown GGUF value type " + n_str(et) + " for the elements of key " + quote(key), type_at);
    v.element_type_ = static_cast<GgufType>(et);
    const uint64_t count_at = pos;
    v.count_ = read(8, [&] { return "array length of key " + quote(key); });
    const uint64_t min = min_element_bytes(v.element_type_);
    if (v.count_ > left() / min) {
      fail("array of " + n_str(v.count_) + " " + sparsity::io::to_string(v.element_type_) +
               " elements in key " + quote(key) + " cannot fit in the " + n_str(left()) +
               " bytes left in the file",
           count_at);
    }
    if (v.element_type_ == GgufType::array && depth + 1 > kGgufMaxArrayDepth) {
      fail("arrays in key " + quote(key) + " are nested deeper than " + n_str(kGgufMaxArrayDepth) + " levels",
           type_at);
    }
    if (min == scalar_size(v.element_type_)) {
      v.bytes_.assign(reinterpret_cast<const char*>(data + pos), static_cast<size_t>(v.count_ * min));
      pos += v.count_ * min;
    } else {
      // A count is bounded by the bytes left, not by the elements that follow: reserve a little and
      // grow with what is read (nested arrays would otherwise each reserve for the rest of the file).
      v.elements_.reserve(static_cast<size_t>(std::min<uint64_t>(v.count_, 4096)));
      for (uint64_t i = 0; i < v.count_; ++i) v.elements_.push_back(value(v.element_type_, depth + 1, key));
    }
    v.encoded_size_ = pos - start;
    return v;
  }

  GgufLayout parse() {
    GgufLayout l;
    if (size < kHeaderBytes) {
      fail("file of " + n_str(size) + " bytes is too short for the " + n_str(kHeaderBytes) +
               "-byte GGUF header",
           0);
    }
    if (std::memcmp(data, "GGUF", 4) != 0) fail("not a GGUF file: the first 4 bytes are not \"GGUF\"", 0);
    pos = 4;
    l.version = static_cast<uint32_t>(read(4, "version"));
    if (l.version != 0 && (l.version & 0xffffu) == 0) {
      fail("GGUF version " + n_str(l.version) + ": a big-endian file, which is not supported", 4);
    }
    if (l.version != 2 && l.version != 3) {
      fail("GGUF version " + n_str(l.version) + " is not supported (2 and 3 are)", 4);
    }
    const uint64_t n_tensors = read(8, "tensor count");
    const uint64_t n_kv = read(8, "metadata count");
    if (n_kv > left() / kMinKvBytes) {
      fail(
          "metadata count " + n_str(n_kv) + " cannot fit in the " + n_str(left()) + " bytes after the header",
          16);
    }
    if (n_tensors > left() / kMinInfoBytes) {
      fail("tensor count " + n_str(n_tensors) + " cannot fit in the " + n_str(left()) +
               " bytes after the header",
           8);
    }

    // ---- metadata ----
    std::unordered_map<std::string, size_t> keys;
    keys.reserve(static_cast<size_t>(n_kv));
    l.metadata.reserve(static_cast<size_t>(n_kv));
    uint64_t alignment_at = 0;
    for (uint64_t i = 0; i < n_kv; ++i) {
      const uint64_t key_at = pos;
      std::string key = string("key");
      if (key.empty()) fail("empty key (metadata entry " + n_str(i) + ")", key_at);
      if (!keys.emplace(key, static_cast<size_t>(i)).second)
        fail("key " + quote(key) + " appears twice", key_at);
      const uint64_t type_at = pos;
      const auto t = static_cast<uint32_t>(read(4, [&] { return "value type of key " + quote(key); }));
      if (!valid_type(t)) fail("unknown GGUF value type " + n_str(t) + " for key " + quote(key), type_at);
      if (key == "general.alignment") alignment_at = type_at;
      GgufValue v = value(static_cast<GgufType>(t), 0, key);
      l.metadata.emplace_back(std::move(key), std::move(v));
    }
    if (const auto a = keys.find("general.alignment"); a != keys.end()) {
      const GgufValue& v = l.metadata[a->second].second;
      if (v.type() != GgufType::u32) {
        fail(std::string("general.alignment must be a u32, not a ") + sparsity::io::to_string(v.type()),
             alignment_at);
      }
      const uint64_t n = v.bits();
      if (n == 0 || (n & (n - 1)) != 0)
        fail("general.alignment " + n_str(n) + " is not a power of two", alignment_at + 4);
      l.alignment = static_cast<uint32_t>(n);
    }

    // ---- tensor infos ----
    std::unordered_map<std::string, size_t> names;
    names.reserve(static_cast<size_t>(n_tensors));
    l.tensors.reserve(static_cast<size_t>(n_tensors));
    std::vector<uint64_t> offset_at;
    offset_at.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
      TensorInfo info;
      const uint64_t name_at = pos;
      info.name = string("tensor name");
      if (info.name.empty()) fail("empty tensor name (tensor info " + n_str(i) + ")", name_at);
      if (info.name.size() > kGgufMaxNameBytes) {
        fail("tensor name " + quote(info.name) + " is " + n_str(info.name.size()) + " bytes long (at most " +
                 n_str(kGgufMaxNameBytes) + ")",
             name_at);
      }
      if (!names.emplace(info.name, static_cast<size_t>(i)).second) {
        fail("tensor name " + quote(info.name) + " appears twice", name_at);
      }
      const std::string tn = "tensor " + quote(info.name);
      const uint64_t dims_at = pos;
      const auto n_dims = static_cast<uint32_t>(read(4, "dimension count of " + tn));
      if (n_dims > kGgufMaxDims) {
        fail(tn + " has " + n_str(n_dims) + " dimensions (at most " + n_str(kGgufMaxDims) + ")", dims_at);
      }
      int64_t numel = 1;
      bool overflow = false;
      std::vector<int64_t> ne(n_dims);
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t at = pos;
        const uint64_t n = read(8, "dimension of " + tn);
        if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          fail(tn + " has a negative dimension ne[" + n_str(d) + "]", at);
        }
        ne[d] = static_cast<int64_t>(n);
        overflow = overflow || __builtin_mul_overflow(numel, ne[d], &numel);
      }
      if (std::find(ne.begin(), ne.end(), 0) != ne.end()) {
        overflow = false;
        numel = 0;
      }
      info.shape.assign(ne.rbegin(), ne.rend());
      if (overflow)
        fail(tn + " of shape " + shape_to_string(info.shape) + " has more than 2^63 elements", dims_at);
      const uint64_t type_at = pos;
      const auto type_id = static_cast<uint32_t>(read(4, "type of " + tn));
      const GgmlType* type = find_ggml_type(type_id);
      if (type == nullptr) fail(tn + " has unknown ggml type " + n_str(type_id), type_at);
      const int64_t ne0 = n_dims ? ne[0] : 1;
      if (ne0 % type->block_size != 0) {
        fail(tn + " of type " + type->name + " has rows of " + n_str(static_cast<uint64_t>(ne0)) +
                 " elements, not a multiple of its block size " + n_str(type->block_size),
             type_at);
      }
      if (__builtin_mul_overflow(static_cast<uint64_t>(numel) / type->block_size, uint64_t{type->type_size},
                                 &info.size)) {
        fail(tn + " of shape " + shape_to_string(info.shape) + " has more than 2^64 bytes", type_at);
      }
      info.dtype_name = type->name;
      info.dtype = type->dtype;
      offset_at.push_back(pos);
      info.offset = read(8, "data offset of " + tn);
      if (info.offset % l.alignment != 0) {
        fail(tn + " has data offset " + n_str(info.offset) + ", not a multiple of the alignment " +
                 n_str(l.alignment),
             offset_at.back());
      }
      l.tensors.push_back(std::move(info));
    }
    l.infos_end = pos;
    l.data_begin = align_up(pos, l.alignment);  // pos <= size < 2^63: no overflow

    // ---- data ----
    if (!l.tensors.empty() && l.data_begin > size) {
      fail("the data section (byte offset " + n_str(l.data_begin) + ") starts past the end of the file (" +
               n_str(size) + " bytes)",
           l.infos_end, ErrorCode::OutOfRange);
    }
    const uint64_t data_bytes = l.tensors.empty() ? 0 : size - l.data_begin;
    for (size_t i = 0; i < l.tensors.size(); ++i) {
      TensorInfo& t = l.tensors[i];
      if (t.offset > data_bytes || t.size > data_bytes - t.offset) {
        fail("data of tensor " + quote(t.name) + " (" + n_str(t.size) + " bytes at data offset " +
                 n_str(t.offset) + ") passes the end of the file (" + n_str(data_bytes) + " bytes of data)",
             offset_at[i], ErrorCode::OutOfRange);
      }
      t.offset += l.data_begin;
    }
    std::vector<size_t> order(l.tensors.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const TensorInfo &x = l.tensors[a], &y = l.tensors[b];
      return x.offset != y.offset ? x.offset < y.offset : x.size < y.size;
    });
    const TensorInfo* prev = nullptr;
    for (size_t i : order) {
      const TensorInfo& t = l.tensors[i];
      if (t.size == 0) continue;
      if (prev != nullptr && t.offset < prev->offset + prev->size) {
        fail("data of tensors " + quote(prev->name) + " and " + quote(t.name) + " overlap at byte offset " +
                 n_str(t.offset),
             offset_at[i]);
      }
      prev = &t;
    }
    return l;
  }
};

// ---- the mapped file ------------------------------------------------------------------------------

GgufLayout GgufFile::parse(const uint8_t* data, size_t size, const std::string& where) {
  GgufParser p{data, size, where};
  return p.parse();
}

bool GgufFile::recognises(const uint8_t* head, size_t n, const std::string& path) noexcept {
  const bool gguf_name = path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
  return (n >= 4 && std::memcmp(head, "GGUF", 4) == 0) || gguf_name;
}

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::shared_ptr<GgufFile> f(new GgufFile(path));
  f->layout_ = parse(f->map_, f->size_, path);
  f->tensors_ = f->layout_.tensors;
  std::stable_sort(f->tensors_.begin(), f->tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.size < b.size;
  });
  for (size_t i = 0; i < f->layout_.metadata.size(); ++i) {
    const auto& [key, value] = f->layout_.metadata[i];
    f->metadata_[key] = value.to_string();
    f->metadata_index_[key] = i;
  }
  f->index();
  return f;
}

const GgufValue* GgufFile::find_metadata(const std::string& key) const noexcept {
  const auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &layout_.metadata[it->second].second;
}

const GgmlType& GgufFile::ggml_type_of(const TensorInfo& info) {
  const GgmlType* t = find_ggml_type(info.dtype_name);
  SPARSITY_CHECK(t != nullptr, InvalidArgument, "tensor ", quote(info.name), " has no ggml type (",
                 quote(info.dtype_name), ")");
  return *t;
}

std::unique_ptr<TensorWriter> GgufFile::create_like(const std::string& path) const {
  auto w = std::make_unique<FileLayoutWriter>(path, tensors_, size_);
  // Every byte outside the tensors' data, verbatim: header, metadata, infos, padding, any tail.
  uint64_t cursor = 0;
  for (const auto& t : tensors_) {
    if (t.offset > cursor) w->write_raw(cursor, map_ + cursor, t.offset - cursor);
    cursor = std::max(cursor, t.offset + t.size);
  }
  if (size_ > cursor) w->write_raw(cursor, map_ + cursor, size_ - cursor);
  return w;
}

// ---- writing ------------------------------------------------------------------------------------

struct GgufWriter::Layout {
  std::vector<TensorInfo> entries;  // absolute offsets
  std::string header;               // through the padding before the data section
  uint64_t file_size = 0;
};

namespace {

GgufWriter::Layout layout_of(const std::string& path, std::vector<GgufTensorSpec> specs,
                             const GgufMetadata& metadata) {
  GgufWriter::Layout l;
  std::string& h = l.header;
  h = "GGUF";
  store_le(h, 3, 4);
  store_le(h, specs.size(), 8);
  store_le(h, metadata.size(), 8);
  uint32_t alignment = kGgufDefaultAlignment;
  std::unordered_map<std::string, int> keys;
  for (const auto& [key, value] : metadata) {
    const std::string kw = ::sparsity::detail::at_key(key);
    if (key.empty()) fail_at_file(ErrorCode::InvalidArgument, "empty metadata key", path, kw);
    if (!keys.emplace(key, 0).second)
      fail_at_file(ErrorCode::InvalidArgument, "duplicate metadata key", path, kw);
    if (key == "general.alignment") {
      const uint64_t n = value.bits();
      if (value.type() != GgufType::u32 || n == 0 || (n & (n - 1)) != 0) {
        fail_at_file(ErrorCode::InvalidArgument, "general.alignment must be a u32 power of two", path, kw);
      }
      alignment = static_cast<uint32_t>(n);
    }
    store_le(h, key.size(), 8);
    h += key;
    store_le(h, static_cast<uint32_t>(value.type()), 4);
    value.encode(h);
  }
  std::unordered_map<std::string, int> names;
  uint64_t offset = 0;
  for (auto& s : specs) {
    const std::string tw = at_tensor(s.name);
    if (s.name.empty() || s.name.size() >= kGgufMaxNameBytes) {
      fail_at_file(ErrorCode::InvalidArgument, "tensor names must have 1 to 63 bytes", path, tw);
    }
    if (!names.emplace(s.name, 0).second)
      fail_at_file(ErrorCode::InvalidArgument, "duplicate tensor name", path, tw);
    const GgmlType* type = find_ggml_type(s.type);
    if (type == nullptr)
      fail_at_file(ErrorCode::InvalidArgument, "unknown ggml type " + quote(s.type), path, tw);
    if (s.shape.size() > kGgufMaxDims) {
      fail_at_file(ErrorCode::InvalidArgument, "more than " + n_str(kGgufMaxDims) + " dimensions", path, tw);
    }
    const uint64_t numel = static_cast<uint64_t>(shape_numel(s.shape));
    const int64_t ne0 = s.shape.empty() ? 1 : s.shape.back();
    if (ne0 % type->block_size != 0) {
      fail_at_file(ErrorCode::InvalidArgument,
                   "rows of " + n_str(static_cast<uint64_t>(ne0)) + " elements are not a multiple of the " +
                       type->name + " block size " + n_str(type->block_size),
                   path, tw);
    }
    TensorInfo info;
    info.name = s.name;
    info.dtype_name = type->name;
    info.dtype = type->dtype;
    info.shape = s.shape;
    uint64_t padded = 0;
    if (__builtin_mul_overflow(numel / type->block_size, uint64_t{type->type_size}, &info.size) ||
        __builtin_add_overflow(info.size, uint64_t{alignment - 1}, &padded) ||
        __builtin_add_overflow(offset, padded / alignment * alignment, &padded)) {
      fail_at_file(ErrorCode::OutOfRange, "tensor too large", path, tw);
    }
    store_le(h, s.name.size(), 8);
    h += s.name;
    store_le(h, s.shape.size(), 4);
    for (auto d = s.shape.rbegin(); d != s.shape.rend(); ++d) store_le(h, static_cast<uint64_t>(*d), 8);
    store_le(h, type->id, 4);
    store_le(h, offset, 8);
    info.offset = offset;
    offset = padded;
    l.entries.push_back(std::move(info));
  }
  h.append(static_cast<size_t>(align_up(h.size(), alignment) - h.size()), '\0');
  for (auto& e : l.entries) e.offset += h.size();
  l.file_size = h.size() + offset;
  return l;
}

}  // namespace

GgufWriter::GgufWriter(std::string path, std::vector<GgufTensorSpec> tensors, const GgufMetadata& metadata)
    : GgufWriter(path, layout_of(path, std::move(tensors), metadata)) {}

GgufWriter::GgufWriter(std::string path, Layout layout)
    : FileLayoutWriter(std::move(path), std::move(layout.entries), layout.file_size) {
  // The padding after each tensor's data is left to the reservation, which reads as zeros.
  write_raw(0, layout.header.data(), layout.header.size());
}

}  // namespace sparsity::io

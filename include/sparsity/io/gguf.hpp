// GGUF (llama.cpp / ggml) reading (memory-mapped, zero-copy, fully validated) and writing (atomic).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparsity/core/tensor.hpp"
#include "sparsity/io/tensor_file.hpp"

namespace sparsity::io {

// ---- ggml tensor types ------------------------------------------------------------------------------

/// A ggml tensor type: its number in GGUF files, its name, and its storage in blocks of `block_size`
/// elements taking `type_size` bytes each (1 and the element size for the plain types).
struct GgmlType {
  uint32_t id;
  const char* name;  ///< "F32", "Q4_K", "IQ2_XXS", ... (the names of gguf-py's GGMLQuantizationType)
  uint32_t block_size;
  uint32_t type_size;
  /// Set for F32, F16 and BF16, the types a Tensor holds and the pruner works on; every other type
  /// passes through as bytes.
  std::optional<DType> dtype;
};

/// Every type a GGUF file may hold, by id (F32 = 0 ... Q2_0 = 42); the removed numbers (Q4_2, Q4_3, the
/// repacked Q4_0_x_y and IQ4_NL_x_y types) are absent.
const std::vector<GgmlType>& ggml_types() noexcept;
/// The type numbered `id`; nullptr for a number that names none.
const GgmlType* find_ggml_type(uint32_t id) noexcept;
/// The type called `name` ("Q8_0"); nullptr for an unknown name.
const GgmlType* find_ggml_type(std::string_view name) noexcept;

// ---- metadata values ------------------------------------------------------------------------------

/// The kinds of GGUF metadata values, numbered as in the file.
enum class GgufType : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  bool_ = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};
/// "u8", "i8", ..., "bool", "string", "array", "u64", "i64", "f64".
const char* to_string(GgufType type) noexcept;

/// One metadata value: a scalar, a string, or an array whose elements share one type (scalars,
/// strings, or arrays, which may nest). Values compare equal when their types, lengths and bytes are.
///
///   GgufValue::of(uint32_t{32});                       // general.alignment
///   GgufValue::of("llama");                            // general.architecture
///   GgufValue::array(std::vector<float>{0.f, -1.5f});  // tokenizer.ggml.scores
///   GgufValue::array(std::vector<std::string>{"<s>", "</s>"});
class GgufValue {
 public:
  /// u8 0.
  GgufValue() = default;
  static GgufValue of(uint8_t v) { return scalar(GgufType::u8, v); }
  static GgufValue of(int8_t v) { return scalar(GgufType::i8, static_cast<uint8_t>(v)); }
  static GgufValue of(uint16_t v) { return scalar(GgufType::u16, v); }
  static GgufValue of(int16_t v) { return scalar(GgufType::i16, static_cast<uint16_t>(v)); }
  static GgufValue of(uint32_t v) { return scalar(GgufType::u32, v); }
  static GgufValue of(int32_t v) { return scalar(GgufType::i32, static_cast<uint32_t>(v)); }
  static GgufValue of(uint64_t v) { return scalar(GgufType::u64, v); }
  static GgufValue of(int64_t v) { return scalar(GgufType::i64, static_cast<uint64_t>(v)); }
  static GgufValue of(float v);
  static GgufValue of(double v);
  static GgufValue of(bool v) { return scalar(GgufType::bool_, v ? 1u : 0u); }
  static GgufValue of(std::string v);
  static GgufValue of(const char* v) { return of(std::string(v)); }
  /// A scalar of `type` from its little-endian bits (the low bytes of `bits`); InvalidArgument for
  /// string and array.
  static GgufValue scalar(GgufType type, uint64_t bits);

  /// An array of scalars (any of the C++ types of()'s overloads) or of std::string.
  template <class T>
  static GgufValue array(const std::vector<T>& values) {
    GgufValue a = empty_array(of(T{}).type());
    for (const auto& v : values) a.push_back(of(v));
    return a;
  }
  /// An array of arrays (each element an array); InvalidArgument otherwise.
  static GgufValue array(std::vector<GgufValue> arrays);
  /// An empty array of `element_type`.
  static GgufValue empty_array(GgufType element_type);
  /// Appends to an array; InvalidArgument when the value's type is not the element type.
  void push_back(const GgufValue& element);

  GgufType type() const noexcept { return type_; }
  bool is_array() const noexcept { return type_ == GgufType::array; }
  /// The elements' type (arrays).
  GgufType element_type() const noexcept { return element_type_; }
  /// Element count (arrays; 0 for other values).
  uint64_t size() const noexcept { return count_; }
  /// Element `i` as a value (OutOfRange past the end; InvalidArgument for a non-array).
  GgufValue at(uint64_t i) const;

  /// The bits of a scalar, zero-extended (floats as their IEEE bits).
  uint64_t bits() const noexcept { return bits_; }
  /// Integer and bool scalars as integers, float scalars as doubles; InvalidArgument for other types.
  uint64_t as_u64() const;
  int64_t as_i64() const;
  double as_f64() const;
  /// The text of a string value; InvalidArgument for other types.
  const std::string& as_string() const;

  /// For display (inspect): scalars as text (`32`, `-1.5`, `true`), strings as they are, arrays as
  /// `[u32 x 3: 1, 2, 3]` with at most 8 elements shown, each string quoted.
  std::string to_string() const;
  /// Bytes of the value in a GGUF file, without the leading type of a key-value pair.
  uint64_t encoded_size() const noexcept { return encoded_size_; }
  /// Appends the value's bytes (as encoded_size() counts them).
  void encode(std::string& out) const;

  friend bool operator==(const GgufValue& a, const GgufValue& b);
  friend bool operator!=(const GgufValue& a, const GgufValue& b) { return !(a == b); }

 private:
  friend struct GgufParser;
  GgufType type_ = GgufType::u8;
  GgufType element_type_ = GgufType::u8;
  uint64_t count_ = 0;
  uint64_t bits_ = 0;
  uint64_t encoded_size_ = 1;
  std::string bytes_;                ///< a string's text, or an array of scalars' encoded elements
  std::vector<GgufValue> elements_;  ///< an array of strings or of arrays
};

/// Key-value metadata in file order.
using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

/// Bytes of the data section's alignment when a file does not set `general.alignment`.
inline constexpr uint32_t kGgufDefaultAlignment = 32;
/// Most dimensions a GGUF tensor has (GGML_MAX_DIMS).
inline constexpr uint32_t kGgufMaxDims = 4;
/// Longest tensor name the format allows.
inline constexpr uint64_t kGgufMaxNameBytes = 64;
/// Deepest nesting of arrays in arrays accepted.
inline constexpr int kGgufMaxArrayDepth = 16;

/// What a GGUF file holds besides its tensors' data, as parsed from its bytes.
struct GgufLayout {
  uint32_t version = 3;
  GgufMetadata metadata;
  /// Tensors in the order of their infos in the header; offsets and sizes absolute in the file.
  std::vector<TensorInfo> tensors;
  uint32_t alignment = kGgufDefaultAlignment;
  uint64_t infos_end = 0;   ///< end of the tensor infos (where the padding before the data starts)
  uint64_t data_begin = 0;  ///< the data section: infos_end rounded up to the alignment
};

// ---- reading ------------------------------------------------------------------------------------

/// A GGUF file (versions 2 and 3, little-endian) mapped read-only. Opening validates everything
/// against the file: the header, every count, string length, value type, array (nested arrays
/// included, at most kGgufMaxArrayDepth deep), `general.alignment` (a u32 power of two), each tensor's
/// name (non-empty, unique, at most 64 bytes), dimensions (at most 4, non-negative, element count and
/// byte size without overflow, ne[0] a multiple of the type's block size), type, and data (aligned
/// offset, inside the file, no two tensors overlapping). A malformed file throws sparsity::Error with
/// a one-line message naming the file and the byte offset of the offending field.
///
/// GGUF lists dimensions fastest first (ne[0] is a row's length, a Linear's input width);
/// TensorInfo::shape is reversed into torch's order, so a llama.cpp `blk.0.ffn_up.weight` with
/// ne = [4096, 11008] has shape [11008, 4096], and blocks and N:M groups of width M run along ne[0].
/// Only F32, F16 and BF16 tensors have a DType; the others are bytes (dtype_name names the type).
///
///   auto f = sparsity::io::GgufFile::open("model.gguf");
///   const sparsity::io::GgufValue* arch = f->find_metadata("general.architecture");
///   sparsity::Tensor w = f->tensor("blk.0.ffn_up.weight");   // read-only view, shape [11008, 4096]
class GgufFile : public TensorFile {
 public:
  static std::shared_ptr<GgufFile> open(const std::string& path);
  /// Parses and validates a whole file image held in memory; `where` names it in error messages.
  static GgufLayout parse(const uint8_t* data, size_t size, const std::string& where);
  /// Whether a file starting with `head` (n bytes) at `path` is for this reader: the magic "GGUF", or a
  /// name ending in ".gguf" (so a damaged GGUF file is refused by the reader that knows what is wrong).
  static bool recognises(const uint8_t* head, size_t n, const std::string& path) noexcept;

  std::string_view format() const noexcept override { return "gguf"; }
  uint32_t version() const noexcept { return layout_.version; }
  uint32_t alignment() const noexcept { return layout_.alignment; }
  /// Absolute offset of the data section.
  uint64_t data_begin() const noexcept { return layout_.data_begin; }
  /// Typed key-value metadata in file order (metadata() has them as text).
  const GgufMetadata& gguf_metadata() const noexcept { return layout_.metadata; }
  /// nullptr when absent.
  const GgufValue* find_metadata(const std::string& key) const noexcept;
  /// Tensor infos in header order (tensors() is in data order).
  const std::vector<TensorInfo>& header_tensors() const noexcept { return layout_.tensors; }
  /// The ggml type of an entry.
  static const GgmlType& ggml_type_of(const TensorInfo& info);

  /// Same bytes outside the tensors' data (header, metadata, tensor infos, padding, anything after the
  /// last tensor), the tensors at the same offsets.
  std::unique_ptr<TensorWriter> create_like(const std::string& path) const override;

 private:
  explicit GgufFile(std::string path) : TensorFile(std::move(path)) {}
  GgufLayout layout_;
  std::map<std::string, size_t> metadata_index_;
};

// ---- writing ------------------------------------------------------------------------------------

/// One tensor of a new GGUF file: name, ggml type name ("F32", "Q4_0", ...) and shape in torch order
/// (written reversed, ne[0] = shape.back()).
struct GgufTensorSpec {
  std::string name;
  std::string type;
  Shape shape;
};

/// A new GGUF v3 file of known layout, streamed into a hidden file and published atomically (see
/// FileLayoutWriter). The data section is aligned to `general.alignment` when the metadata sets it (a
/// u32 power of two), else to 32 bytes; each tensor's data is padded with zeros to that alignment, as
/// llama.cpp writes it. Names must be non-empty, unique and at most 63 bytes (llama.cpp's limit); keys
/// non-empty and unique; each ne[0] a multiple of its type's block size.
///
///   io::GgufWriter w("m.gguf", {{"blk.0.ffn_up.weight", "F32", {8, 4}}},
///                    {{"general.architecture", io::GgufValue::of("llama")}});
///   w.write(0, 0, values, 8 * 4 * 4);   // entry 0, byte 0 of its data
///   w.commit();
class GgufWriter : public FileLayoutWriter {
 public:
  GgufWriter(std::string path, std::vector<GgufTensorSpec> tensors, const GgufMetadata& metadata = {});
  struct Layout;  ///< header bytes, entries and padding (gguf.cpp)

 private:
  GgufWriter(std::string path, Layout layout);
};

}  // namespace sparsity::io

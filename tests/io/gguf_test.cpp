// Tests of the GGUF reader (one test per validation rule, on hand-built bytes), the writer, byte-exact
// pass-through of every ggml type, dimension order, alignment, and pruning a GGUF checkpoint.
#include "sparsity/io/gguf.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "sparsity/io/checkpoint.hpp"
#include "sparsity/prune/engine.hpp"
#include "sparsity/prune/inspect.hpp"
#include "temp_dir.hpp"

namespace sparsity::io {
namespace {

std::string temp_dir() { return sparsity::testing::fresh_temp_dir("sparsity_gguf_"); }

using sparsity::testing::file_bytes;
using sparsity::testing::write_bytes;

// A GGUF image written field by field, little-endian, as the format describes it.
struct Image {
  std::string b;
  Image& u8(uint8_t v) { return le(v, 1); }
  Image& u32(uint32_t v) { return le(v, 4); }
  Image& u64(uint64_t v) { return le(v, 8); }
  Image& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  Image& str(const std::string& s) {
    u64(s.size());
    b += s;
    return *this;
  }
  Image& raw(const std::string& s) {
    b += s;
    return *this;
  }
  Image& zeros(size_t n) {
    b.append(n, '\0');
    return *this;
  }
  Image& pad(size_t alignment) { return zeros((alignment - b.size() % alignment) % alignment); }
  // "GGUF", version, tensor count, kv count.
  static Image header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Image i;
    i.raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
    return i;
  }
  // A tensor info: name, dims (ne order: fastest first), ggml type, data offset.
  Image& info(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  size_t size() const { return b.size(); }
};

constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kI32 = 26, kBF16 = 30;
constexpr uint32_t kTypeU8 = 0, kTypeU32 = 4, kTypeF32 = 6, kTypeString = 8, kTypeArray = 9, kTypeI64 = 11;

// One F32 tensor "w" of ne = [2] after the given metadata bytes: a valid file.
Image one_tensor_file() {
  Image i = Image::header(1, 0);
  i.info("w", {2}, kF32, 0).pad(32);
  float v[2] = {1.5f, -2.0f};
  return i.raw(std::string(reinterpret_cast<const char*>(v), 8));
}

// Opening `bytes` must throw an Error of `code` whose one-line message names the file, the byte
// offset `at` and every fragment; GgufFile::parse() on the same image must agree.
void expect_rejected(const std::string& bytes, uint64_t at, const std::vector<std::string>& fragments,
                     ErrorCode code = ErrorCode::InvalidArgument) {
  const std::string path = temp_dir() + "/bad.gguf";
  write_bytes(path, bytes);
  try {
    open_tensor_file(path);
    ADD_FAILURE() << "accepted a malformed file; expected: " << fragments[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("byte offset " + std::to_string(at) + ")"), std::string::npos) << msg;
    for (const auto& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
  }
  EXPECT_THROW(GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x"), Error);
}

// ---- validation, one rule each ----------------------------------------------------------------------

TEST(GgufValidate, AcceptsTheHandBuiltFile) {
  const std::string path = temp_dir() + "/m.gguf";
  write_bytes(path, one_tensor_file().b);
  auto f = open_tensor_file(path);
  EXPECT_EQ(f->format(), "gguf");
  ASSERT_EQ(f->tensors().size(), 1u);
  EXPECT_EQ(f->tensors()[0].offset, 64u);  // 24 header + 8+1+4+8+4+8 info = 57, padded to 64
  EXPECT_EQ(f->tensor("w").to_vector(), (std::vector<double>{1.5, -2.0}));
}

TEST(GgufValidate, FileShorterThanTheHeader) { expect_rejected("GGUF\x03", 0, {"too short", "24-byte"}); }

TEST(GgufValidate, WrongMagic) {
  Image i = one_tensor_file();
  i.b[3] = 'X';
  expect_rejected(i.b, 0, {"not a GGUF file"});
}

TEST(GgufValidate, UnsupportedVersions) {
  for (uint32_t v : {0u, 1u, 4u}) {
    Image i = one_tensor_file();
    std::memcpy(&i.b[4], &v, 4);
    expect_rejected(i.b, 4, {"GGUF version " + std::to_string(v) + " is not supported"});
  }
}

TEST(GgufValidate, BigEndianFile) {
  Image i = one_tensor_file();
  const uint32_t v = 0x03000000u;  // version 3 written big-endian
  std::memcpy(&i.b[4], &v, 4);
  expect_rejected(i.b, 4, {"big-endian"});
}

TEST(GgufValidate, TensorCountThatCannotFit) {
  // 2^62 tensors in a 60-byte file: refused before anything is allocated.
  Image i = Image::header(uint64_t{1} << 62, 0);
  i.zeros(36);
  expect_rejected(i.b, 8, {"tensor count 4611686018427387904 cannot fit"});
}

TEST(GgufValidate, MetadataCountThatCannotFit) {
  Image i = Image::header(0, 3);
  i.str("a").u32(kTypeU8).u8(1);  // one 14-byte pair; three cannot fit in 14 bytes
  expect_rejected(i.b, 16, {"metadata count 3 cannot fit"});
}

TEST(GgufValidate, TruncatedField) {
  Image i = Image::header(0, 1);
  i.str("abcde").u8(0);  // the 4-byte value type has 1 byte
  expect_rejected(i.b, 37,
                  {"truncated: the 4-byte value type of key 'abcde' passes the end of the file (38 bytes)"});
}

TEST(GgufValidate, TensorNameLengthPastTheEnd) {
  Image i = Image::header(1, 0);
  i.u64(30).zeros(17);  // a name of 30 bytes with 17 left
  expect_rejected(i.b, 24, {"tensor name length 30 passes the end of the file (17 bytes left)"});
}

TEST(GgufValidate, KeyLengthPastTheEnd) {
  Image i = Image::header(0, 1);
  i.u64(1000).raw("abc").u32(kTypeU8).zeros(3);
  expect_rejected(i.b, 24, {"key length 1000 passes the end of the file"});
}

TEST(GgufValidate, EmptyKey) {
  Image i = Image::header(0, 1);
  i.str("").u32(kTypeU8).u8(0).zeros(4);
  expect_rejected(i.b, 24, {"empty key"});
}

TEST(GgufValidate, DuplicateKey) {
  Image i = Image::header(0, 2);
  i.str("general.name").u32(kTypeU8).u8(0);
  const size_t second = i.size();
  i.str("general.name").u32(kTypeU8).u8(1);
  expect_rejected(i.b, second, {"key 'general.name' appears twice"});
}

TEST(GgufValidate, UnknownValueType) {
  Image i = Image::header(0, 1);
  i.str("k").u32(13).u64(0);
  expect_rejected(i.b, 24 + 9, {"unknown GGUF value type 13 for key 'k'"});
}

TEST(GgufValidate, TruncatedScalar) {
  Image i = Image::header(0, 1);
  i.str("k").u32(kTypeI64).zeros(5);  // an i64 needs 8 bytes; 5 are left
  expect_rejected(i.b, 24 + 13, {"truncated", "8-byte i64 value of key 'k'"});
}

TEST(GgufValidate, StringValuePastTheEnd) {
  Image i = Image::header(0, 1);
  i.str("k").u32(kTypeString).u64(~uint64_t{0}).raw("abc");
  expect_rejected(i.b, 24 + 13, {"string value of key 'k' length 18446744073709551615 passes the end"});
}

TEST(GgufValidate, UnknownArrayElementType) {
  Image i = Image::header(0, 1);
  i.str("k").u32(kTypeArray).u32(99).u64(0);
  expect_rejected(i.b, 24 + 13, {"unknown GGUF value type 99 for the elements of key 'k'"});
}

TEST(GgufValidate, ArrayLengthThatCannotFit) {
  // 2^61 u32 elements, and 2^61 strings, in a file of a few bytes: refused without allocating.
  for (uint32_t et : {kTypeU32, kTypeString, kTypeArray}) {
    Image i = Image::header(0, 1);
    i.str("k").u32(kTypeArray).u32(et).u64(uint64_t{1} << 61).zeros(16);
    expect_rejected(i.b, 24 + 17, {"array of 2305843009213693952", "in key 'k' cannot fit"});
  }
}

TEST(GgufValidate, ArraysNestedTooDeep) {
  Image i = Image::header(0, 1);
  i.str("k").u32(kTypeArray);
  const int levels = kGgufMaxArrayDepth + 2;
  for (int d = 0; d < levels; ++d) i.u32(kTypeArray).u64(1);
  i.u32(kTypeU8).u64(0);
  // The level past the limit is refused at its element-type field.
  expect_rejected(i.b, 24 + 13 + 12 * static_cast<uint64_t>(kGgufMaxArrayDepth),
                  {"nested deeper than 16 levels"});
}

TEST(GgufValidate, AlignmentOfTheWrongType) {
  Image i = Image::header(0, 1);
  i.str("general.alignment").u32(kTypeI64).u64(32);
  expect_rejected(i.b, 24 + 25, {"general.alignment must be a u32, not a i64"});
}

TEST(GgufValidate, AlignmentNotAPowerOfTwo) {
  for (uint32_t a : {0u, 24u}) {
    Image i = Image::header(0, 1);
    i.str("general.alignment").u32(kTypeU32).u32(a);
    expect_rejected(i.b, 24 + 25 + 4, {"general.alignment " + std::to_string(a) + " is not a power of two"});
  }
}

TEST(GgufValidate, EmptyTensorName) {
  Image i = Image::header(1, 0);
  i.info("", {2}, kF32, 0).pad(32).zeros(8);
  expect_rejected(i.b, 24, {"empty tensor name"});
}

TEST(GgufValidate, TensorNameLongerThan64Bytes) {
  Image i = Image::header(1, 0);
  i.info(std::string(65, 'n'), {2}, kF32, 0).pad(32).zeros(8);
  expect_rejected(i.b, 24, {"is 65 bytes long (at most 64)"});
  // 64 bytes is the limit the format sets.
  Image ok = Image::header(1, 0);
  ok.info(std::string(64, 'n'), {2}, kF32, 0).pad(32).zeros(8);
  EXPECT_NO_THROW(GgufFile::parse(reinterpret_cast<const uint8_t*>(ok.b.data()), ok.size(), "x"));
}

TEST(GgufValidate, DuplicateTensorName) {
  Image i = Image::header(2, 0);
  i.info("w", {2}, kF32, 0);
  const size_t second = i.size();
  i.info("w", {2}, kF32, 32).pad(32).zeros(40);
  expect_rejected(i.b, second, {"tensor name 'w' appears twice"});
}

TEST(GgufValidate, MoreThanFourDimensions) {
  Image i = Image::header(1, 0);
  i.info("w", {1, 1, 1, 1, 1}, kF32, 0).pad(32).zeros(8);
  expect_rejected(i.b, 24 + 9, {"tensor 'w' has 5 dimensions (at most 4)"});
}

TEST(GgufValidate, NegativeDimension) {
  Image i = Image::header(1, 0);
  i.info("w", {2, ~uint64_t{0}}, kF32, 0).pad(32).zeros(8);
  expect_rejected(i.b, 24 + 13 + 8, {"tensor 'w' has a negative dimension ne[1]"});
}

TEST(GgufValidate, ElementCountOverflow) {
  Image i = Image::header(1, 0);
  i.info("w", {uint64_t{1} << 32, uint64_t{1} << 32}, kF32, 0).pad(32).zeros(8);
  expect_rejected(i.b, 24 + 9, {"has more than 2^63 elements"});
}

TEST(GgufValidate, ByteCountOverflow) {
  Image i = Image::header(1, 0);
  i.info("w", {uint64_t{1} << 62}, 28 /* F64 */, 0).pad(32).zeros(8);
  expect_rejected(i.b, 24 + 9 + 4 + 8, {"has more than 2^64 bytes"});
}

TEST(GgufValidate, UnknownOrRemovedGgmlType) {
  for (uint32_t t : {4u, 5u, 31u, 36u, 43u, 1000u}) {
    Image i = Image::header(1, 0);
    i.info("w", {32}, t, 0).pad(32).zeros(64);
    expect_rejected(i.b, 24 + 9 + 4 + 8, {"tensor 'w' has unknown ggml type " + std::to_string(t)});
  }
}

TEST(GgufValidate, RowNotAMultipleOfTheBlockSize) {
  Image i = Image::header(1, 0);
  i.info("w", {48, 2}, kQ4_0, 0).pad(32).zeros(64);
  expect_rejected(i.b, 24 + 9 + 4 + 16,
                  {"type Q4_0 has rows of 48 elements, not a multiple of its block size 32"});
}

TEST(GgufValidate, UnalignedDataOffset) {
  Image i = Image::header(1, 0);
  i.info("w", {2}, kF32, 8).pad(32).zeros(16);
  expect_rejected(i.b, 24 + 9 + 4 + 8 + 4, {"data offset 8, not a multiple of the alignment 32"});
}

TEST(GgufValidate, DataSectionPastTheEnd) {
  // An empty tensor (ne = [0]) and no padding after the infos: the data section lies past the end.
  Image i = Image::header(1, 0);
  i.info("w", {0}, kF32, 0);
  expect_rejected(i.b, i.size(),
                  {"the data section (byte offset 64) starts past the end of the file (57 bytes)"},
                  ErrorCode::OutOfRange);
}

TEST(GgufValidate, TensorDataPastTheEnd) {
  Image i = Image::header(1, 0);
  i.info("w", {4}, kF32, 0).pad(32).zeros(12);  // 16 bytes declared, 12 present
  expect_rejected(
      i.b, 24 + 9 + 4 + 8 + 4,
      {"data of tensor 'w' (16 bytes at data offset 0) passes the end of the file (12 bytes of data)"},
      ErrorCode::OutOfRange);
}

TEST(GgufValidate, OverlappingTensors) {
  Image i = Image::header(2, 0);
  i.info("a", {16}, kF32, 0);  // bytes 0..64 of the data
  const size_t second = i.size();
  i.info("b", {8}, kF32, 32).pad(32).zeros(64);  // bytes 32..64
  expect_rejected(i.b, second + 9 + 4 + 8 + 4, {"data of tensors 'a' and 'b' overlap"});
}

TEST(GgufValidate, ControlCharactersInNamesStayOnOneLine) {
  Image i = Image::header(2, 0);
  i.info("a\nb\x1b[31m", {2}, kF32, 0).info("a\nb\x1b[31m", {2}, kF32, 32).pad(32).zeros(40);
  expect_rejected(i.b, 24 + 40, {"'a\\x0ab\\x1b[31m' appears twice"});
}

TEST(GgufValidate, RefusesFilesThroughTheFormatSeamByExtension) {
  // A .gguf whose magic is damaged goes to the GGUF reader (not the safetensors fallback).
  const std::string path = temp_dir() + "/m.gguf";
  write_bytes(path, std::string(32, 'x'));
  EXPECT_THROW(
      {
        try {
          open_tensor_file(path);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("not a GGUF file"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
}

// ---- reading ------------------------------------------------------------------------------------

TEST(GgufRead, ShapeIsTorchOrderAndRowsRunAlongNe0) {
  // ne = [4, 3]: 3 rows of 4; element (r, c) is value r * 4 + c of the data.
  Image i = Image::header(1, 0);
  i.info("blk.0.ffn_up.weight", {4, 3}, kF32, 0).pad(32);
  for (int k = 0; k < 12; ++k) {
    const float v = static_cast<float>(k);
    i.raw(std::string(reinterpret_cast<const char*>(&v), 4));
  }
  const std::string path = temp_dir() + "/m.gguf";
  write_bytes(path, i.b);
  auto f = GgufFile::open(path);
  const TensorInfo& info = f->info("blk.0.ffn_up.weight");
  EXPECT_EQ(info.shape, (Shape{3, 4}));
  EXPECT_EQ(info.dtype_name, "F32");
  EXPECT_EQ(info.nbytes(), 48u);
  const Tensor t = f->tensor("blk.0.ffn_up.weight");
  EXPECT_EQ(t.get({1, 2}), 6.0);
  EXPECT_EQ(t.get({2, 3}), 11.0);
  EXPECT_TRUE(t.is_read_only());
}

TEST(GgufRead, MetadataRenderedForInspect) {
  Image i = Image::header(0, 7);
  i.str("general.architecture").u32(kTypeString).str("llama");
  i.str("general.alignment").u32(kTypeU32).u32(64);
  i.str("f").u32(kTypeF32).u32(0xbfc00000u);  // -1.5f
  i.str("b").u32(7).u8(1);
  i.str("neg").u32(5).u32(0xfffffffeu);  // i32 -2
  i.str("toks").u32(kTypeArray).u32(kTypeString).u64(10);
  for (int k = 0; k < 10; ++k) i.str("t" + std::to_string(k));
  i.str("nested").u32(kTypeArray).u32(kTypeArray).u64(2);
  i.u32(kTypeU8).u64(2).u8(1).u8(2);
  i.u32(kTypeU8).u64(0);
  const std::string path = temp_dir() + "/m.gguf";
  write_bytes(path, i.b);
  auto f = GgufFile::open(path);
  const auto& m = f->metadata();
  EXPECT_EQ(m.at("general.architecture"), "llama");
  EXPECT_EQ(m.at("general.alignment"), "64");
  EXPECT_EQ(m.at("f"), "-1.5");
  EXPECT_EQ(m.at("b"), "true");
  EXPECT_EQ(m.at("neg"), "-2");
  EXPECT_EQ(m.at("toks"), "[string x 10: 't0', 't1', 't2', 't3', 't4', 't5', 't6', 't7', ...]");
  EXPECT_EQ(m.at("nested"), "[array x 2: [u8 x 2: 1, 2], [u8 x 0]]");
  EXPECT_EQ(f->alignment(), 64u);
  ASSERT_NE(f->find_metadata("neg"), nullptr);
  EXPECT_EQ(f->find_metadata("neg")->as_i64(), -2);
  EXPECT_EQ(f->gguf_metadata()[0].first, "general.architecture");  // file order
  EXPECT_EQ(f->find_metadata("nested")->at(0).at(1).as_u64(), 2u);
}

TEST(GgufRead, EmptyFileOfNoTensorsNeedsNoDataSection) {
  const std::string path = temp_dir() + "/m.gguf";
  write_bytes(path, Image::header(0, 0).b);
  auto f = GgufFile::open(path);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->version(), 3u);
}

TEST(GgufRead, VersionTwoIsRead) {
  Image i = one_tensor_file();
  i.b[4] = 2;
  const std::string path = temp_dir() + "/m.gguf";
  write_bytes(path, i.b);
  EXPECT_EQ(GgufFile::open(path)->version(), 2u);
}

// ---- types --------------------------------------------------------------------------------------

TEST(GgmlTypes, BlockSizesAndBytesFromGgmlCommon) {
  // sizeof(block_<type>) as ggml-common.h's static_asserts spell them out, and QK_<type>.
  const std::vector<std::tuple<const char*, uint32_t, uint32_t, uint32_t>> expected = {
      {"F32", 0, 1, 4},         {"F16", 1, 1, 2},         {"Q4_0", 2, 32, 18},      {"Q4_1", 3, 32, 20},
      {"Q5_0", 6, 32, 22},      {"Q5_1", 7, 32, 24},      {"Q8_0", 8, 32, 34},      {"Q8_1", 9, 32, 36},
      {"Q2_K", 10, 256, 84},    {"Q3_K", 11, 256, 110},   {"Q4_K", 12, 256, 144},   {"Q5_K", 13, 256, 176},
      {"Q6_K", 14, 256, 210},   {"Q8_K", 15, 256, 292},   {"IQ2_XXS", 16, 256, 66}, {"IQ2_XS", 17, 256, 74},
      {"IQ3_XXS", 18, 256, 98}, {"IQ1_S", 19, 256, 50},   {"IQ4_NL", 20, 32, 18},   {"IQ3_S", 21, 256, 110},
      {"IQ2_S", 22, 256, 82},   {"IQ4_XS", 23, 256, 136}, {"I8", 24, 1, 1},         {"I16", 25, 1, 2},
      {"I32", 26, 1, 4},        {"I64", 27, 1, 8},        {"F64", 28, 1, 8},        {"IQ1_M", 29, 256, 56},
      {"BF16", 30, 1, 2},       {"TQ1_0", 34, 256, 54},   {"TQ2_0", 35, 256, 66},   {"MXFP4", 39, 32, 17},
      {"NVFP4", 40, 64, 36},    {"Q1_0", 41, 128, 18},    {"Q2_0", 42, 64, 18},
  };
  ASSERT_EQ(ggml_types().size(), expected.size());
  for (const auto& [name, id, block, bytes] : expected) {
    const GgmlType* t = find_ggml_type(id);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t, find_ggml_type(std::string_view(name)));
    EXPECT_STREQ(t->name, name);
    EXPECT_EQ(t->block_size, block) << name;
    EXPECT_EQ(t->type_size, bytes) << name;
    const bool prunable =
        std::string(name) == "F32" || std::string(name) == "F16" || std::string(name) == "BF16";
    EXPECT_EQ(t->dtype.has_value(), prunable) << name;
  }
  for (uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 43u})
    EXPECT_EQ(find_ggml_type(removed), nullptr);
}

// ---- writing and round trips --------------------------------------------------------------------------

GgufMetadata every_kind_of_metadata() {
  return {
      {"general.architecture", GgufValue::of("llama")},
      {"general.name", GgufValue::of("tiny \xc3\xa9t\xc3\xa9")},
      {"u8", GgufValue::of(uint8_t{200})},
      {"i8", GgufValue::of(int8_t{-100})},
      {"u16", GgufValue::of(uint16_t{60000})},
      {"i16", GgufValue::of(int16_t{-30000})},
      {"u32", GgufValue::of(uint32_t{4000000000u})},
      {"i32", GgufValue::of(int32_t{-2000000000})},
      {"f32", GgufValue::of(0.1f)},
      {"bool", GgufValue::of(true)},
      {"u64", GgufValue::of(uint64_t{18000000000000000000u})},
      {"i64", GgufValue::of(int64_t{-9000000000000000000})},
      {"f64", GgufValue::of(-1e300)},
      {"tokens", GgufValue::array(std::vector<std::string>{"<s>", "</s>", "", "hello"})},
      {"scores", GgufValue::array(std::vector<float>{0.0f, -1.5f, 3.25f})},
      {"types", GgufValue::array(std::vector<int32_t>{1, 2, 3})},
      {"empty", GgufValue::empty_array(GgufType::u64)},
      {"nested", GgufValue::array({GgufValue::array(std::vector<uint16_t>{1, 2}),
                                   GgufValue::array(std::vector<uint16_t>{}),
                                   GgufValue::array(std::vector<uint16_t>{3})})},
  };
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

TEST(GgufWrite, RoundTripOfMetadataTensorsAndData) {
  const std::string path = temp_dir() + "/m.gguf";
  const GgufMetadata md = every_kind_of_metadata();
  std::vector<GgufTensorSpec> specs = {
      {"token_embd.weight", "F16", {5, 8}},
      {"blk.0.attn_norm.weight", "F32", {8}},
      {"blk.0.ffn_up.weight", "Q4_K", {3, 256}},
      {"scalar", "F32", {}},
      {"empty", "BF16", {0, 4}},
  };
  std::vector<std::string> data;
  {
    GgufWriter w(path, specs, md);
    for (size_t k = 0; k < w.entries().size(); ++k) {
      data.push_back(random_bytes(w.entries()[k].nbytes(), k));
      if (!data.back().empty()) w.write(k, 0, data.back().data(), data.back().size());
    }
    w.commit();
  }
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->version(), 3u);
  ASSERT_EQ(f->gguf_metadata().size(), md.size());
  for (size_t k = 0; k < md.size(); ++k) {
    EXPECT_EQ(f->gguf_metadata()[k].first, md[k].first);
    EXPECT_TRUE(f->gguf_metadata()[k].second == md[k].second) << md[k].first;
  }
  ASSERT_EQ(f->header_tensors().size(), specs.size());
  const std::vector<uint64_t> sizes = {5 * 8 * 2, 8 * 4, 3 * 144, 4, 0};
  for (size_t k = 0; k < specs.size(); ++k) {
    const TensorInfo& t = f->header_tensors()[k];
    EXPECT_EQ(t.name, specs[k].name);
    EXPECT_EQ(t.dtype_name, specs[k].type);
    EXPECT_EQ(t.shape, specs[k].shape);
    EXPECT_EQ(t.nbytes(), sizes[k]) << t.name;
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->bytes(t)), t.nbytes()), data[k]) << t.name;
  }
  EXPECT_EQ(f->data_begin() % 32, 0u);
  // Tensors are laid out in order, each padded to the alignment with zeros, including the last.
  const std::string bytes = file_bytes(path);
  EXPECT_EQ(bytes.size() % 32, 0u);
  const TensorInfo& up = f->info("blk.0.ffn_up.weight");
  EXPECT_EQ(up.offset, f->info("blk.0.attn_norm.weight").offset + 32);
  EXPECT_EQ(bytes.substr(up.offset + up.nbytes(), 16), std::string(16, '\0'));  // 432 -> 448
  EXPECT_EQ(f->info("scalar").shape, Shape{});
  EXPECT_EQ(f->info("token_embd.weight").dtype, DType::f16);
  EXPECT_FALSE(f->info("blk.0.ffn_up.weight").dtype.has_value());
}

TEST(GgufWrite, DimensionsAreWrittenFastestFirst) {
  const std::string path = temp_dir() + "/m.gguf";
  {
    GgufWriter w(path, {{"w", "F32", {3, 4}}});
    std::vector<float> v(12, 0.0f);
    w.write(0, 0, v.data(), 48);
    w.commit();
  }
  // header (24), name (8 + 1), n_dims (4), then ne[0] = 4, ne[1] = 3, type F32, offset 0; the data
  // padded to the alignment like every tensor's (llama.cpp reads the padded size of the last one too).
  Image expected = Image::header(1, 0);
  expected.info("w", {4, 3}, kF32, 0).pad(32).zeros(48).pad(32);
  EXPECT_EQ(file_bytes(path), expected.b);
}

TEST(GgufWrite, AlignmentFromTheMetadata) {
  const std::string path = temp_dir() + "/m.gguf";
  {
    GgufWriter w(path, {{"a", "F32", {3}}, {"b", "I8", {5}}},
                 {{"general.alignment", GgufValue::of(uint32_t{64})}});
    w.commit();
  }
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_begin() % 64, 0u);
  EXPECT_EQ(f->info("b").offset, f->info("a").offset + 64);
  EXPECT_EQ(file_bytes(path).size(), f->info("b").offset + 64);
}

TEST(GgufWrite, RefusesBadSpecs) {
  const std::string dir = temp_dir();
  EXPECT_THROW(GgufWriter(dir + "/a.gguf", {{"w", "Q4_0", {2, 48}}}), Error);  // row not of whole blocks
  EXPECT_THROW(GgufWriter(dir + "/a.gguf", {{"w", "Q9", {2}}}), Error);        // unknown type
  EXPECT_THROW(GgufWriter(dir + "/a.gguf", {{"w", "F32", {1}}, {"w", "F32", {1}}}), Error);
  EXPECT_THROW(GgufWriter(dir + "/a.gguf", {{std::string(64, 'n'), "F32", {1}}}), Error);  // llama.cpp: < 64
  EXPECT_THROW(GgufWriter(dir + "/a.gguf", {{"w", "F32", {1, 1, 1, 1, 1}}}), Error);
  EXPECT_THROW(GgufWriter(dir + "/a.gguf", {}, {{"general.alignment", GgufValue::of(uint64_t{32})}}), Error);
  EXPECT_THROW(GgufWriter(dir + "/a.gguf", {}, {{"k", GgufValue::of(1)}, {"k", GgufValue::of(2)}}), Error);
  EXPECT_THROW(GgufValue::array(std::vector<GgufValue>{GgufValue::of(1)}), Error);  // not an array
}

TEST(GgufRoundTrip, EveryGgmlTypePassesThroughByteForByte) {
  // One tensor of each type (2 rows of 2 blocks, random bytes); a file made like it and written from the
  // source by copy_from equals the source.
  const std::string dir = temp_dir();
  std::vector<GgufTensorSpec> specs;
  for (const auto& t : ggml_types()) {
    specs.push_back({std::string("t.") + t.name, t.name, {2, 2 * static_cast<int64_t>(t.block_size)}});
  }
  {
    GgufWriter w(dir + "/in.gguf", specs, {{"general.alignment", GgufValue::of(uint32_t{16})}});
    for (size_t k = 0; k < w.entries().size(); ++k) {
      const std::string b = random_bytes(w.entries()[k].nbytes(), 100 + k);
      EXPECT_EQ(b.size(), 4u * ggml_types()[k].type_size);
      w.write(k, 0, b.data(), b.size());
    }
    w.commit();
  }
  auto in = GgufFile::open(dir + "/in.gguf");
  auto out = in->create_like(dir + "/out.gguf");
  for (size_t k = 0; k < in->tensors().size(); ++k) out->copy_from(k, *in, in->tensors()[k]);
  out->commit();
  EXPECT_EQ(file_bytes(dir + "/out.gguf"), file_bytes(dir + "/in.gguf"));
}

TEST(GgufRoundTrip, CreateLikeKeepsGapsAndTrailingBytes) {
  // A hand-built file with junk in the padding, a gap between tensors and bytes after the last one:
  // every byte outside the tensors' data is kept.
  Image i = Image::header(2, 1);
  i.str("general.name").u32(kTypeString).str("x");
  i.info("a", {2}, kF32, 32).info("b", {4}, kI32, 96);
  while (i.size() % 32) i.u8(0xab);
  const size_t data = i.size();
  i.raw(random_bytes(160, 7)).raw("tail");
  const std::string dir = temp_dir();
  write_bytes(dir + "/in.gguf", i.b);
  auto in = GgufFile::open(dir + "/in.gguf");
  EXPECT_EQ(in->tensors()[0].offset, data + 32);
  auto out = in->create_like(dir + "/out.gguf");
  const std::string zeros(16, '\0');
  out->write(out->index_of("b"), 0, zeros.data(), 16);
  out->write(out->index_of("a"), 0, zeros.data(), 8);
  out->commit();
  std::string expected = i.b;
  std::memset(&expected[data + 32], 0, 8);
  std::memset(&expected[data + 96], 0, 16);
  EXPECT_EQ(file_bytes(dir + "/out.gguf"), expected);
}

// ---- pruning a GGUF checkpoint --------------------------------------------------------------------

// A llama.cpp-like model: float weights of each prunable type, a quantized one, norms and an I32 table.
struct TinyModel {
  std::string path;
  std::vector<float> up, gate;  // F32 and BF16 (stored rounded) values, torch order
  std::vector<float> down;      // F16
};

TinyModel make_tiny_model(const std::string& dir) {
  TinyModel m;
  m.path = dir + "/model.gguf";
  const std::vector<GgufTensorSpec> specs = {
      {"token_embd.weight", "F32", {6, 8}},     {"blk.0.attn_norm.weight", "F32", {8}},
      {"blk.0.ffn_up.weight", "F32", {4, 8}},   {"blk.0.ffn_gate.weight", "BF16", {4, 8}},
      {"blk.0.ffn_down.weight", "F16", {8, 4}}, {"blk.0.attn_q.weight", "Q8_0", {8, 32}},
      {"blk.0.pos.weight", "I32", {2, 4}},
  };
  GgufWriter w(m.path, specs, every_kind_of_metadata());
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t k = 0; k < specs.size(); ++k) {
    const TensorInfo& e = w.entries()[k];
    std::string bytes;
    if (e.dtype_name == "F32") {
      std::vector<float> v(e.numel());
      for (auto& x : v) x = u(rng);
      if (e.name == "blk.0.ffn_up.weight") m.up = v;
      bytes.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
    } else if (e.dtype_name == "BF16" || e.dtype_name == "F16") {
      std::vector<uint16_t> v(e.numel());
      std::vector<float> f(e.numel());
      for (size_t i = 0; i < v.size(); ++i) {
        const float x = u(rng);
        v[i] = e.dtype_name == "BF16" ? BFloat16::from_float(x) : Half::from_float(x);
        f[i] = e.dtype_name == "BF16" ? BFloat16::to_float(v[i]) : Half::to_float(v[i]);
      }
      (e.dtype_name == "BF16" ? m.gate : m.down) = f;
      bytes.assign(reinterpret_cast<const char*>(v.data()), v.size() * 2);
    } else {
      bytes = random_bytes(e.nbytes(), k);
    }
    w.write(k, 0, bytes.data(), bytes.size());
  }
  w.commit();
  return m;
}

PruneConfig config_of(std::string_view json) { return parse_prune_config(json, "inline"); }

// The tensors a run pruned, sorted.
std::vector<std::string> pruned_names(const prune::Report& r) {
  std::vector<std::string> names;
  for (const auto& l : r.layers) names.push_back(l.fqn);
  std::sort(names.begin(), names.end());
  return names;
}

// 2:4 along each row (ne[0]): in every 4 consecutive elements of a row, the 2 of largest magnitude kept.
std::vector<uint8_t> two_of_four(const std::vector<float>& w) {
  std::vector<uint8_t> mask(w.size(), 0);
  for (size_t g = 0; g < w.size(); g += 4) {
    std::vector<size_t> idx = {g, g + 1, g + 2, g + 3};
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return std::fabs(w[a]) > std::fabs(w[b]); });
    mask[idx[0]] = mask[idx[1]] = 1;
  }
  return mask;
}

TEST(GgufPrune, OutputDiffersOnlyInsideThePrunedTensors) {
  const std::string dir = temp_dir();
  const TinyModel m = make_tiny_model(dir);
  prune::Options o;
  o.model = m.path;
  o.config = config_of(
      R"({"sparsifier": "WeightNormSparsifier",
          "defaults": {"sparsity_level": 1.0, "sparse_block_shape": [1, 4], "zeros_per_block": 2},
          "config": [{"tensor_fqn": "blk.0.ffn_up.weight"}, {"tensor_fqn": "blk.0.ffn_gate.weight"},
                     {"tensor_fqn": "blk.0.ffn_down.weight"}]})");
  o.output = dir + "/pruned.gguf";
  o.masks = dir + "/masks.safetensors";
  o.threads = 2;
  const prune::Report r = prune::run(o);
  ASSERT_EQ(r.layers.size(), 3u);

  const std::string in = file_bytes(m.path), out = file_bytes(o.output);
  ASSERT_EQ(in.size(), out.size());
  auto src = GgufFile::open(m.path);
  std::vector<bool> inside(in.size(), false);
  for (const char* name : {"blk.0.ffn_up.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_down.weight"}) {
    const TensorInfo& t = src->info(name);
    for (uint64_t b = t.offset; b < t.offset + t.size; ++b) inside[b] = true;
  }
  size_t outside_differences = 0;
  for (size_t b = 0; b < in.size(); ++b) outside_differences += !inside[b] && in[b] != out[b];
  EXPECT_EQ(outside_differences, 0u);

  // Inside: the input where the 2:4 mask (groups along ne[0]) keeps, +-0 elsewhere.
  auto pruned = GgufFile::open(o.output);
  const auto check = [&](const char* name, const std::vector<float>& w) {
    const std::vector<uint8_t> keep = two_of_four(w);
    const std::vector<double> got = pruned->tensor(name).to_vector();
    ASSERT_EQ(got.size(), w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      EXPECT_EQ(got[i], keep[i] ? static_cast<double>(w[i]) : 0.0) << name << " element " << i;
    }
  };
  check("blk.0.ffn_up.weight", m.up);
  check("blk.0.ffn_gate.weight", m.gate);
  check("blk.0.ffn_down.weight", m.down);
  // inspect reads the pruned GGUF (shape [4, 8] in torch order) as 2:4.
}

TEST(GgufPrune, AutoConfigPicksTheTwoDimensionalFloatWeights) {
  const std::string dir = temp_dir();
  const TinyModel m = make_tiny_model(dir);
  prune::Options o;
  o.model = m.path;
  o.config = config_of(R"({"sparsifier": "WeightNormSparsifier",
      "defaults": {"sparsity_level": 0.5, "sparse_block_shape": [1, 4], "zeros_per_block": 2}})");
  o.output = dir + "/pruned.gguf";
  const prune::Report r = prune::run(o);
  // Not the 1-D norm, the Q8_0 tensor nor the I32 table.
  EXPECT_EQ(pruned_names(r), (std::vector<std::string>{"blk.0.ffn_down.weight", "blk.0.ffn_gate.weight",
                                             "blk.0.ffn_up.weight", "token_embd.weight"}));
  // The token embedding is left alone by naming the tensors to prune.
  o.config = config_of(R"({"sparsifier": "WeightNormSparsifier",
      "config": [{"tensor_fqn": "blk.0.ffn_up.weight"}]})");
  o.output = dir + "/pruned2.gguf";
  prune::run(o);
  auto in = GgufFile::open(m.path), out = GgufFile::open(o.output);
  const TensorInfo& e = in->info("token_embd.weight");
  EXPECT_EQ(std::memcmp(in->bytes(e), out->bytes(out->info("token_embd.weight")), e.nbytes()), 0);
}

// "ignore" (a name or a "re:" pattern over tensor and module names) keeps auto-config off the token
// embedding, which is reported as ignored and copied byte for byte.
TEST(GgufPrune, IgnoreLeavesTheTokenEmbedding) {
  const std::string dir = temp_dir();
  const TinyModel m = make_tiny_model(dir);
  for (const char* ignore : {R"(["token_embd.weight"])", R"(["re:token_.*"])"}) {
    prune::Options o;
    o.model = m.path;
    o.config = config_of(std::string(R"({"sparsifier": "WeightNormSparsifier", "ignore": )") + ignore +
                         R"(, "defaults": {"sparsity_level": 0.5}})");
    o.output = dir + "/pruned.gguf";
    const prune::Report r = prune::run(o);
    EXPECT_EQ(pruned_names(r), (std::vector<std::string>{"blk.0.ffn_down.weight", "blk.0.ffn_gate.weight",
                                               "blk.0.ffn_up.weight"}))
        << ignore;
    uint64_t ignored = 0;
    for (const auto& s : r.skipped) ignored += s.reason == "ignored" ? s.tensors : 0;
    EXPECT_EQ(ignored, 1u) << ignore;
    auto in = GgufFile::open(m.path), out = GgufFile::open(o.output);
    const TensorInfo& e = in->info("token_embd.weight");
    EXPECT_EQ(std::memcmp(in->bytes(e), out->bytes(out->info("token_embd.weight")), e.nbytes()), 0) << ignore;
  }
}

TEST(GgufPrune, InspectReportsThePatternAlongNe0) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/m.gguf";
  {
    // Rows of 8 along ne[0]: zeros at positions 0 and 1 of every group of 4 (2:4 along ne[0]).
    GgufWriter w(path, {{"blk.0.ffn_up.weight", "F32", {3, 8}}, {"output_norm.weight", "F32", {8}}});
    std::vector<float> v(24);
    for (size_t i = 0; i < v.size(); ++i) v[i] = i % 4 < 2 ? 0.0f : 1.0f + static_cast<float>(i);
    w.write(0, 0, v.data(), 96);
    std::vector<float> n(8, 1.0f);
    w.write(1, 0, n.data(), 32);
    w.commit();
  }
  const prune::CheckpointStats s = prune::inspect_checkpoint(path);
  ASSERT_EQ(s.tensors.size(), 2u);
  EXPECT_EQ(s.tensors[0].name, "blk.0.ffn_up.weight");
  EXPECT_EQ(s.tensors[0].shape, (Shape{3, 8}));
  EXPECT_EQ(s.tensors[0].zeros, 12u);
  EXPECT_EQ(s.tensors[0].pattern, "2:4");
  EXPECT_EQ(s.tensors[1].pattern, "dense");
}

}  // namespace
}  // namespace sparsity::io

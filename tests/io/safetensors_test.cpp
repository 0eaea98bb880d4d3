// Tests of the safetensors reader (validation rules, zero-copy views) and the atomic writer.
#include "sparsity/io/safetensors.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include "temp_dir.hpp"

namespace sparsity::io {
namespace {

std::string temp_dir() { return sparsity::testing::fresh_temp_dir("sparsity_io_"); }

using sparsity::testing::file_bytes;
using sparsity::testing::write_bytes;

// 8-byte LE length + header + data.
std::string raw_file(const std::string& header, const std::string& data, int64_t length_override = -1) {
  std::string out(8, '\0');
  const uint64_t n = length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  return names;
}

// Opening `bytes` as a file must throw an Error whose message contains every fragment.
void expect_rejected(const std::string& bytes, const std::vector<std::string>& fragments) {
  const std::string path = temp_dir() + "/bad.safetensors";
  write_bytes(path, bytes);
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "accepted a malformed file; expected: " << fragments[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
  }
  // parse_header on the same image gives the same verdict.
  EXPECT_THROW(SafetensorsFile::parse_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x"), Error);
}

TEST(SafetensorsRead, HandWrittenFileGivesViewsOfItsBytes) {
  // Two F32 values 1.5, -2 and one U16 value 7 (a dtype no Tensor holds), written by hand.
  std::string data;
  const float f[2] = {1.5f, -2.0f};
  data.append(reinterpret_cast<const char*>(f), 8);
  data.append("\x07\x00", 2);
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"U16","shape":[1],"data_offsets":[8,10]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string path = temp_dir() + "/m.safetensors";
  write_bytes(path, raw_file(header, data));
  auto file = SafetensorsFile::open(path);
  ASSERT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->tensors()[0].name, "a");  // file order = data order
  EXPECT_EQ(file->tensors()[1].name, "b");
  EXPECT_EQ(file->tensors()[1].dtype_name, "U16");
  EXPECT_FALSE(file->tensors()[1].dtype.has_value());
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->data_begin(), 8 + header.size());
  Tensor a = file->tensor("a");
  // This header leaves the data unaligned for F32: the view falls back to an owned copy.
  ASSERT_NE(file->data_begin() % 4, 0u);
  EXPECT_FALSE(a.is_read_only());
  EXPECT_EQ(a.shape(), (Shape{2}));
  EXPECT_EQ(a.get_flat(0), 1.5);
  EXPECT_EQ(a.get_flat(1), -2.0);
  EXPECT_EQ(file->bytes(file->info("b"))[0], 7);
  EXPECT_THROW(file->tensor("b"), Error);
  EXPECT_THROW(file->info("missing"), Error);
}

TEST(SafetensorsRead, AlignedViewsAreZeroCopyAndReadOnly) {
  const std::string path = temp_dir() + "/z.safetensors";
  save_safetensors(path, {{"w", Tensor::arange(16, DType::f32)}});
  auto file = SafetensorsFile::open(path);
  Tensor w = file->tensor("w");
  EXPECT_EQ(w.data_ptr(), static_cast<const void*>(file->bytes(file->info("w"))));
  EXPECT_TRUE(w.is_read_only());
  EXPECT_THROW(w.mutable_data_ptr(), Error);
  file.reset();  // the view keeps the mapping alive
  EXPECT_EQ(w.get_flat(15), 15.0);
}

TEST(SafetensorsRoundTrip, EveryTensorDtype) {
  const std::string path = temp_dir() + "/all.safetensors";
  NamedList<Tensor> in;
  const std::vector<double> v = {0, 1, -2, 3, 4, -5};
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::bool_, DType::u8, DType::i8,
                  DType::i16, DType::i32, DType::i64}) {
    std::vector<double> vals = v;
    if (t == DType::u8 || t == DType::bool_) for (auto& x : vals) x = x < 0 ? -x : x;
    in.emplace_back(std::string("t_") + to_string(t), Tensor::from_values(vals, {2, 3}, t));
  }
  in.emplace_back("empty", Tensor::zeros({0, 3}, DType::f32));
  in.emplace_back("scalar", Tensor::from_values({42}, Shape{}, DType::i64));
  save_safetensors(path, in, {{"k", "v"}});
  std::map<std::string, std::string> meta;
  auto out = load_safetensors(path, &meta);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"k", "v"}}));
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].first, in[i].first);
    EXPECT_TRUE(bitwise_equal(out[i].second, in[i].second)) << in[i].first;
  }
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->info("t_bf16").dtype_name, "BF16");
  EXPECT_EQ(file->info("t_bool").dtype_name, "BOOL");
  EXPECT_EQ(file->info("t_i16").dtype_name, "I16");
  // Two-byte little-endian integers: -5 is 0xfffb.
  const uint8_t* i16 = file->bytes(file->info("t_i16"));
  EXPECT_EQ(i16[10], 0xfb);
  EXPECT_EQ(i16[11], 0xff);
  EXPECT_EQ(file->data_begin() % 8, 0u);  // header padded
}

TEST(SafetensorsRoundTrip, PassThroughDtypesKeepTheirBytes) {
  const std::string path = temp_dir() + "/raw.safetensors";
  const std::vector<std::pair<std::string, size_t>> kinds = {{"I16", 2}, {"U16", 2}, {"U32", 4},
                                                             {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  std::vector<TensorSpec> specs;
  for (const auto& [name, size] : kinds) specs.push_back({"x_" + name, name, {3}});
  {
    SafetensorsWriter w(path, specs);
    for (size_t i = 0; i < kinds.size(); ++i) {
      std::string bytes(3 * kinds[i].second, '\0');
      for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = static_cast<char>(17 * i + j + 1);
      w.write(i, 0, bytes.data(), bytes.size());
    }
    w.commit();
  }
  auto file = SafetensorsFile::open(path);
  for (size_t i = 0; i < kinds.size(); ++i) {
    const auto& info = file->info("x_" + kinds[i].first);
    EXPECT_EQ(info.dtype_name, kinds[i].first);
    ASSERT_EQ(info.nbytes(), 3 * kinds[i].second);
    for (size_t j = 0; j < info.nbytes(); ++j) EXPECT_EQ(file->bytes(info)[j], static_cast<uint8_t>(17 * i + j + 1));
  }
}

TEST(SafetensorsWrite, UncommittedWriterLeavesNothing) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/out.safetensors";
  {
    SafetensorsWriter w(path, {{"a", "F32", {4}}});
    const float x[4] = {1, 2, 3, 4};
    w.write(0, 0, x, sizeof x);
    w.finish();
  }
  EXPECT_TRUE(list_dir(dir).empty());
}

TEST(SafetensorsWrite, ExistingFileUnchangedUntilPublish) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/out.safetensors";
  write_bytes(path, "old contents");
  SafetensorsWriter w(path, {{"a", "U8", {2}}});
  w.write(0, 0, "\x01\x02", 2);
  w.finish();
  EXPECT_EQ(file_bytes(path), "old contents");
  w.publish();
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"out.safetensors"});
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->bytes(f->info("a"))[1], 2);
}

TEST(SafetensorsWrite, RejectsBadSpecsAndWritesPastTheEnd) {
  const std::string path = temp_dir() + "/o.safetensors";
  EXPECT_THROW(SafetensorsWriter(path, {{"a", "F32", {1}}, {"a", "F32", {1}}}), Error);
  EXPECT_THROW(SafetensorsWriter(path, {{"a", "F33", {1}}}), Error);
  EXPECT_THROW(SafetensorsWriter(path, {{"", "F32", {1}}}), Error);
  SafetensorsWriter w(path, {{"a", "F32", {1}}});
  const float x[2] = {0, 0};
  EXPECT_THROW(w.write(0, 0, x, 8), Error);
  EXPECT_THROW(w.write(1, 0, x, 4), Error);
}

// ---- one test per validation rule -----------------------------------------------------------------

const std::string kOk = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(SafetensorsValidate, AcceptsTheReferenceFile) {
  const std::string path = temp_dir() + "/ok.safetensors";
  write_bytes(path, raw_file(kOk, std::string(8, '\0')));
  EXPECT_NO_THROW(SafetensorsFile::open(path));
}

TEST(SafetensorsValidate, FileShorterThanTheLengthField) {
  expect_rejected("\x01\x02\x03", {"too short", "byte offset 0"});
  expect_rejected("", {"too short"});
}

TEST(SafetensorsValidate, HeaderLengthBeyondTheFile) {
  expect_rejected(raw_file(kOk, std::string(8, '\0'), 1000), {"header length 1000 exceeds the file size", "byte offset 0"});
}

TEST(SafetensorsValidate, HeaderLengthBeyondOneHundredMegabytes) {
  expect_rejected(raw_file(kOk, "", int64_t{1} << 40), {"100 MB", "byte offset 0"});
}

TEST(SafetensorsValidate, HeaderLengthHugeDoesNotWrap) {
  expect_rejected(raw_file(kOk, "", -1) .replace(0, 8, std::string(8, '\xff')), {"100 MB"});
}

TEST(SafetensorsValidate, InvalidJson) {
  expect_rejected(raw_file(R"({"a":{"dtype":"F32",)", ""), {"not valid JSON", "byte offset"});
  expect_rejected(raw_file("\x80\x81", ""), {"not valid JSON"});
}

TEST(SafetensorsValidate, HeaderNotAnObject) {
  expect_rejected(raw_file("[1,2]", ""), {"not a JSON object", "byte offset 8"});
}

TEST(SafetensorsValidate, DeepNesting) {
  expect_rejected(raw_file(std::string(5000, '[') + std::string(5000, ']'), ""), {"nested deeper"});
}

TEST(SafetensorsValidate, UnknownDtype) {
  expect_rejected(raw_file(R"({"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')),
                  {"unknown dtype 'F12'", "tensor 'a'"});
}

TEST(SafetensorsValidate, MissingOrMistypedFields) {
  expect_rejected(raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')), {"'dtype'", "tensor 'a'"});
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", std::string(8, '\0')), {"'shape'"});
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0')),
                  {"non-negative integer", "tensor 'a'"});
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", std::string(8, '\0')),
                  {"non-negative integer"});
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", std::string(8, '\0')),
                  {"'data_offsets'"});
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", std::string(8, '\0')),
                  {"unknown key 'x'"});
  expect_rejected(raw_file(R"({"a":[1]})", ""), {"not a JSON object", "tensor 'a'"});
  expect_rejected(raw_file(R"({"__metadata__":{"k":1}})", ""), {"__metadata__", "not a string"});
  expect_rejected(raw_file(R"({"__metadata__":[1]})", ""), {"__metadata__"});
}

TEST(SafetensorsValidate, OffsetsOutOfRange) {
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0')),
                  {"past the data buffer of 4 bytes", "tensor 'a'"});
}

TEST(SafetensorsValidate, BeginAfterEnd) {
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", std::string(8, '\0')),
                  {"begin 8 > end 0", "tensor 'a'"});
}

TEST(SafetensorsValidate, Overlap) {
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           std::string(8, '\0')),
                  {"overlap", "tensor 'b'"});
}

TEST(SafetensorsValidate, GapAndUncoveredTail) {
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')),
                  {"bytes 0..4 belong to no tensor", "byte offset"});
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(8, '\0')),
                  {"bytes 4..8 belong to no tensor"});
}

TEST(SafetensorsValidate, SizeMismatch) {
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
                  {"size mismatch", "needs 12 bytes", "tensor 'a'"});
}

TEST(SafetensorsValidate, ShapeProductOverflow) {
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                           std::string(8, '\0')),
                  {"overflows", "tensor 'a'"});
  // A zero dimension makes the product 0 even after an overflowing pair.
  const std::string path = temp_dir() + "/zero.safetensors";
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", ""));
  EXPECT_NO_THROW(SafetensorsFile::open(path));
}

TEST(SafetensorsValidate, DuplicateNames) {
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           std::string(8, '\0')),
                  {"duplicate key 'a'"});
}

TEST(SafetensorsValidate, ControlCharactersInNamesStayOnOneLine) {
  expect_rejected(raw_file("{\"a\\nb\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", ""),
                  {"unknown dtype", "a\\x0ab"});
}

TEST(SafetensorsValidate, NotARegularFile) {
  const std::string dir = temp_dir();
  EXPECT_THROW(SafetensorsFile::open(dir), Error);
  EXPECT_THROW(SafetensorsFile::open(dir + "/missing.safetensors"), Error);
}

}  // namespace
}  // namespace sparsity::io

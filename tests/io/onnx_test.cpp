// Tests of the ONNX reader (entries, weight roles, external data, validation) and its writer.
#include "sparsity/io/onnx.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io/paths.hpp"
#include "temp_dir.hpp"
#include "test_util.hpp"

#ifdef SPARSITY_HAVE_ONNX
#include "onnx/checker.h"
#include "onnx/onnx_pb.h"
#endif

namespace sparsity::io {
namespace {

std::string temp_dir() { return sparsity::testing::fresh_temp_dir("sparsity_onnx_"); }

using sparsity::testing::file_bytes;
using sparsity::testing::write_bytes;

#ifndef SPARSITY_HAVE_ONNX

TEST(OnnxUnavailable, OpeningSaysSo) {
  const std::string path = temp_dir() + "/m.onnx";
  write_bytes(path, "\x08\x08");
  EXPECT_FALSE(onnx_available());
  EXPECT_SPARSITY_ERROR(open_tensor_file(path), FailedPrecondition, "ONNX is unavailable in this build",
                        path);
}

#else

// ---- building models with ONNX's own classes (protobuf serialises them, not the code under test) ----

std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<float> iota(size_t n, float start) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + 0.25f * static_cast<float>(i);
  return v;
}

onnx::TensorProto raw_tensor(const std::string& name, int type, const std::vector<int64_t>& dims,
                             const std::string& bytes) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(bytes);
  return t;
}

onnx::TensorProto f32_tensor(const std::string& name, const std::vector<int64_t>& dims, float start) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return raw_tensor(name, onnx::TensorProto::FLOAT, dims, f32_bytes(iota(static_cast<size_t>(n), start)));
}

onnx::NodeProto node(const std::string& op, const std::vector<std::string>& in,
                     const std::vector<std::string>& out) {
  onnx::NodeProto n;
  n.set_op_type(op);
  for (const auto& s : in) n.add_input(s);
  for (const auto& s : out) n.add_output(s);
  return n;
}

void set_int(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void value_info(onnx::ValueInfoProto* vi, const std::string& name, const std::vector<int64_t>& dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
}

onnx::ModelProto empty_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("tests");
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(13);
  m.mutable_graph()->set_name("g");
  return m;
}

// X[2, 3] -> MatMul(W1[3, 4]) -> Gemm(W2[5, 4], transB=1) -> Gemm(W3[5, 6]) -> MatMul(C[6, 2]) -> Add(b) -> Y
// plus a DOUBLE and an INT64 initializer, a FLOAT16 tensor held in int32_data and a STRING tensor.
onnx::ModelProto mlp_model() {
  onnx::ModelProto m = empty_model();
  auto* g = m.mutable_graph();
  *g->add_initializer() = f32_tensor("fc1.weight", {3, 4}, 1.0f);
  *g->add_initializer() = f32_tensor("fc2.weight", {5, 4}, 2.0f);
  *g->add_initializer() = f32_tensor("fc3.weight", {5, 6}, 3.0f);
  *g->add_initializer() = f32_tensor("bias", {2}, -1.0f);
  const double dv[2] = {0.5, -0.5};
  *g->add_initializer() =
      raw_tensor("dbl", onnx::TensorProto::DOUBLE, {2}, std::string(reinterpret_cast<const char*>(dv), 16));
  const int64_t iv[2] = {-1, 2};
  *g->add_initializer() =
      raw_tensor("shape", onnx::TensorProto::INT64, {2}, std::string(reinterpret_cast<const char*>(iv), 16));
  onnx::TensorProto half;
  half.set_name("half");
  half.set_data_type(onnx::TensorProto::FLOAT16);
  half.add_dims(2);
  half.add_int32_data(0x3c00);
  half.add_int32_data(0xbc00);
  *g->add_initializer() = half;
  onnx::TensorProto str;
  str.set_name("labels");
  str.set_data_type(onnx::TensorProto::STRING);
  str.add_dims(1);
  str.add_string_data("a");
  *g->add_initializer() = str;

  // Constant with its tensor in float_data.
  onnx::NodeProto c = node("Constant", {}, {"fc4.weight"});
  auto* a = c.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  auto* t = a->mutable_t();
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(6);
  t->add_dims(2);
  for (float v : iota(12, 4.0f)) t->add_float_data(v);
  *g->add_node() = c;
  *g->add_node() = node("MatMul", {"X", "fc1.weight"}, {"h1"});
  onnx::NodeProto g2 = node("Gemm", {"h1", "fc2.weight"}, {"h2"});
  set_int(g2, "transB", 1);
  *g->add_node() = g2;
  *g->add_node() = node("Gemm", {"h2", "fc3.weight"}, {"h3"});
  *g->add_node() = node("MatMul", {"h3", "fc4.weight"}, {"h4"});
  *g->add_node() = node("Add", {"h4", "bias"}, {"Y"});
  value_info(g->add_input(), "X", {2, 3});
  value_info(g->add_output(), "Y", {2, 2});
  return m;
}

std::string save(const onnx::ModelProto& m, const std::string& path) {
  std::string bytes;
  EXPECT_TRUE(m.SerializeToString(&bytes));
  write_bytes(path, bytes);
  return bytes;
}

const TensorInfo& entry(const TensorFile& f, const std::string& name) { return f.info(name); }

std::vector<float> floats_of(const TensorFile& f, const std::string& name) {
  const TensorInfo& i = f.info(name);
  std::vector<float> v(i.size / 4);
  std::memcpy(v.data(), f.bytes(i), i.size);
  return v;
}

// ---- reading ------------------------------------------------------------------------------------------

TEST(OnnxRead, EntriesAreTheBytesOfInitializersAndConstants) {
  const std::string dir = temp_dir();
  const std::string bytes = save(mlp_model(), dir + "/m.onnx");
  auto opened = open_tensor_file(dir + "/m.onnx");
  ASSERT_EQ(opened->format(), "onnx");
  auto f = std::dynamic_pointer_cast<OnnxFile>(opened);
  ASSERT_NE(f, nullptr);
  std::vector<std::string> names;
  for (const auto& i : f->tensors()) names.push_back(i.name);
  // File order: initializers first (the graph's field 5 precedes nothing else here), the Constant in its
  // node.
  EXPECT_EQ(names.size(), 7u);
  for (const char* n : {"fc1.weight", "fc2.weight", "fc3.weight", "bias", "dbl", "shape", "fc4.weight"}) {
    EXPECT_TRUE(f->contains(n)) << n;
  }
  // Offsets point at the payload protobuf wrote (found independently in the serialised bytes).
  for (const char* n : {"fc1.weight", "fc2.weight", "fc3.weight", "bias"}) {
    const TensorInfo& i = entry(*f, n);
    const std::string want = f32_bytes(floats_of(*f, n));
    EXPECT_EQ(bytes.find(want), i.offset) << n;
    EXPECT_EQ(i.dtype_name, "FLOAT");
    EXPECT_EQ(i.dtype, DType::f32);
  }
  EXPECT_EQ(floats_of(*f, "fc1.weight"), iota(12, 1.0f));
  EXPECT_EQ(floats_of(*f, "fc4.weight"), iota(12, 4.0f));  // packed float_data is read in place
  EXPECT_EQ(bytes.find(f32_bytes(iota(12, 4.0f))), entry(*f, "fc4.weight").offset);
  EXPECT_EQ(entry(*f, "fc4.weight").shape, (Shape{6, 2}));
  const Tensor w = f->tensor("fc3.weight");
  EXPECT_EQ(w.shape(), (Shape{5, 6}));
  EXPECT_EQ(w.get({1, 2}), 3.0 + 0.25 * 8);

  // DOUBLE is readable but not prunable; INT64 passes through with its DType.
  EXPECT_EQ(entry(*f, "dbl").dtype_name, "DOUBLE");
  EXPECT_FALSE(entry(*f, "dbl").dtype.has_value());
  EXPECT_EQ(entry(*f, "shape").dtype, DType::i64);
  EXPECT_EQ(f->tensor("shape").get({0}), -1.0);

  // Varint and string tensors are left as bytes, with the reason.
  ASSERT_EQ(f->skipped().size(), 2u);
  EXPECT_EQ(f->skipped()[0].name, "half");
  EXPECT_EQ(f->skipped()[0].reason, "FLOAT16 stored as varints in int32_data");
  EXPECT_EQ(f->skipped()[1].name, "labels");
  EXPECT_EQ(f->skipped()[1].reason, "STRING stored as strings in string_data");

  EXPECT_EQ(f->metadata().at("ir_version"), "8");
  EXPECT_EQ(f->metadata().at("producer_name"), "tests");
  EXPECT_EQ(f->metadata().at("opset.ai.onnx"), "13");
  EXPECT_TRUE(f->external_locations().empty());
}

TEST(OnnxRead, WeightsAndTheirStoredOrientationComeFromTheGraph) {
  const std::string dir = temp_dir();
  save(mlp_model(), dir + "/m.onnx");
  auto f = OnnxFile::open(dir + "/m.onnx");
  struct Want {
    const char* name;
    const char* module_type;
    bool transposed;
  };
  for (const Want& w :
       {Want{"fc1.weight", "Linear", true},   // MatMul's B: (in, out)
        Want{"fc2.weight", "Linear", false},  // Gemm's B with transB=1: (out, in)
        Want{"fc3.weight", "Linear", true},   // Gemm's B without transB: (in, out)
        Want{"fc4.weight", "Linear", true},   // a Constant used as MatMul's B
        Want{"bias", "Module", false}, Want{"dbl", "Module", false}, Want{"shape", "Module", false}}) {
    EXPECT_EQ(f->info(w.name).module_type, w.module_type) << w.name;
    EXPECT_EQ(f->info(w.name).transposed, w.transposed) << w.name;
  }
}

TEST(OnnxRead, OnlyTensorsUsedSolelyAsWeightsAreWeights) {
  onnx::ModelProto m = empty_model();
  auto* g = m.mutable_graph();
  const std::vector<std::string> names = {"two_matmuls",  "matmul_and_add", "matmul_and_gemm_t",
                                          "matmul_a",     "in_subgraph",    "custom_domain",
                                          "graph_output", "unused",         "conv"};
  for (const auto& n : names) *g->add_initializer() = f32_tensor(n, {2, 2}, 0.0f);
  *g->add_initializer() = f32_tensor("conv4d", {2, 1, 3, 3}, 0.0f);
  *g->add_initializer() = f32_tensor("matmul_3d", {2, 2, 2}, 0.0f);
  *g->add_node() = node("MatMul", {"X", "two_matmuls"}, {"a"});
  *g->add_node() = node("MatMul", {"a", "two_matmuls"}, {"b"});
  *g->add_node() = node("MatMul", {"b", "matmul_and_add"}, {"c"});
  *g->add_node() = node("Add", {"c", "matmul_and_add"}, {"d"});
  *g->add_node() = node("MatMul", {"d", "matmul_and_gemm_t"}, {"e"});
  onnx::NodeProto gt = node("Gemm", {"e", "matmul_and_gemm_t"}, {"f"});
  set_int(gt, "transB", 1);
  *g->add_node() = gt;
  *g->add_node() = node("MatMul", {"matmul_a", "f"}, {"h"});
  *g->add_node() = node("MatMul", {"h", "in_subgraph"}, {"i"});
  onnx::NodeProto iff = node("If", {"cond"}, {"j"});
  auto* branch = iff.add_attribute();
  branch->set_name("then_branch");
  branch->set_type(onnx::AttributeProto::GRAPH);
  *branch->mutable_g()->add_node() = node("Identity", {"in_subgraph"}, {"k"});
  *g->add_node() = iff;
  onnx::NodeProto custom = node("MatMul", {"i", "custom_domain"}, {"l"});
  custom.set_domain("com.example");
  *g->add_node() = custom;
  *g->add_node() = node("MatMul", {"l", "graph_output"}, {"m"});
  *g->add_node() = node("Conv", {"img", "conv4d"}, {"n"});
  *g->add_node() = node("Conv", {"img", "conv"}, {"o"});
  *g->add_node() = node("MatMul", {"m", "matmul_3d"}, {"p"});
  g->add_output()->set_name("graph_output");
  const std::string path = temp_dir() + "/roles.onnx";
  save(m, path);
  auto f = OnnxFile::open(path);
  EXPECT_EQ(f->info("two_matmuls").module_type, "Linear");
  EXPECT_TRUE(f->info("two_matmuls").transposed);
  for (const char* n : {"matmul_and_add", "matmul_and_gemm_t", "matmul_a", "in_subgraph", "custom_domain",
                        "graph_output", "unused", "conv", "matmul_3d"}) {
    EXPECT_EQ(f->info(n).module_type, "Module") << n;
    EXPECT_FALSE(f->info(n).transposed) << n;
  }
  EXPECT_EQ(f->info("conv4d").module_type, "Conv2d");
}

TEST(OnnxRead, ExternalDataIsReadThroughTheSameMapping) {
  const std::string dir = temp_dir();
  // weights.bin: 8 unrelated bytes, w1 (3x4 floats), 4 bytes of padding, w2 (2 floats).
  const std::string w1 = f32_bytes(iota(12, 1.0f)), w2 = f32_bytes({7.0f, 8.0f});
  write_bytes(dir + "/weights.bin", std::string(8, 'x') + w1 + std::string(4, 'p') + w2);
  onnx::ModelProto m = empty_model();
  auto* g = m.mutable_graph();
  auto external = [&](const std::string& name, std::vector<int64_t> dims, const std::string& loc,
                      uint64_t off, std::optional<uint64_t> len) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* e = t->add_external_data();
    e->set_key("location");
    e->set_value(loc);
    e = t->add_external_data();
    e->set_key("offset");
    e->set_value(std::to_string(off));
    if (len) {
      e = t->add_external_data();
      e->set_key("length");
      e->set_value(std::to_string(*len));
    }
  };
  external("w1", {3, 4}, "weights.bin", 8, 48);
  external("w2", {2}, "./weights.bin", 60,
           std::nullopt);  // the same file, another spelling; length from the shape
  *g->add_initializer() = f32_tensor("inline", {2}, 5.0f);
  *g->add_node() = node("MatMul", {"X", "w1"}, {"Y"});
  save(m, dir + "/m.onnx");
  auto f = OnnxFile::open(dir + "/m.onnx");
  EXPECT_EQ(f->external_locations(), std::vector<std::string>{"weights.bin"});
  EXPECT_EQ(floats_of(*f, "w1"), iota(12, 1.0f));
  EXPECT_EQ(floats_of(*f, "w2"), (std::vector<float>{7.0f, 8.0f}));
  EXPECT_EQ(floats_of(*f, "inline"), iota(2, 5.0f));
  EXPECT_EQ(f->tensor("w1").get({2, 3}), 1.0 + 0.25 * 11);
  EXPECT_EQ(f->info("w1").module_type, "Linear");
  EXPECT_EQ(f->file_size(), file_bytes(dir + "/m.onnx").size());
  // Entries in file order: the model's own first, then the external file's.
  EXPECT_EQ(f->tensors().front().name, "inline");
  f->prefetch(f->info("w1"));
  f->release(f->info("w1"));
  EXPECT_EQ(floats_of(*f, "w1"), iota(12, 1.0f));
}

// ---- validation -------------------------------------------------------------------------------------

// Opening `bytes` as dir/bad.onnx must throw `code` with a one-line message naming the file and
// containing every fragment.
void expect_rejected(const std::string& bytes, ErrorCode code, const std::vector<std::string>& fragments,
                     const std::string& dir = temp_dir()) {
  const std::string path = dir + "/bad.onnx";
  write_bytes(path, bytes);
  try {
    open_tensor_file(path);
    ADD_FAILURE() << "accepted a malformed model; expected: " << fragments[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
  }
}

std::string serialised(const onnx::ModelProto& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

// A model whose graph is `graph_bytes` (a hand-made GraphProto payload).
std::string model_with_graph(const std::string& graph_bytes) {
  std::string s = "\x08\x08";  // ir_version 8
  s += '\x3a';                 // field 7 (graph), length-delimited
  // graph_bytes stays below 128 bytes in these tests: a one-byte length.
  s += static_cast<char>(graph_bytes.size());
  return s + graph_bytes;
}

// An initializer field of a GraphProto (field 5) holding `tensor_bytes`.
std::string initializer(const std::string& tensor_bytes) {
  return std::string("\x2a") + static_cast<char>(tensor_bytes.size()) + tensor_bytes;
}

TEST(OnnxValidation, MalformedWireFormatNamesTheByteOffset) {
  // Field number 0 right after ir_version.
  expect_rejected(std::string("\x08\x08\x00\x01", 4), ErrorCode::InvalidArgument,
                  {"field number 0", "byte offset 2"});
  // A tag cut short.
  expect_rejected(std::string("\x08\x08\x80", 3), ErrorCode::InvalidArgument,
                  {"malformed or truncated field tag", "byte offset 2"});
  // The graph declares 100 bytes; 3 follow.
  expect_rejected(std::string("\x08\x08\x3a\x64\x0a\x01\x61", 7), ErrorCode::InvalidArgument,
                  {"graph declares 100 bytes but 3 remain", "byte offset 3"});
  // A length of 2^63.
  expect_rejected(std::string("\x3a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11), ErrorCode::InvalidArgument,
                  {"graph declares 9223372036854775808 bytes", "byte offset 1"});
  // No graph at all; two graphs.
  expect_rejected(std::string("\x08\x08", 2), ErrorCode::InvalidArgument,
                  {"the model has no graph", "byte offset 2"});
  expect_rejected(std::string("\x3a\x00\x3a\x00", 4), ErrorCode::InvalidArgument,
                  {"second graph", "byte offset 2"});
  // The graph as a varint.
  expect_rejected(std::string("\x38\x01", 2), ErrorCode::InvalidArgument,
                  {"graph has wire type 0, expected 2", "byte offset 0"});
  // A malformed opset_import (field 8): a truncated submessage inside.
  expect_rejected(std::string("\x42\x02\x0a\x05\x3a\x00", 6), ErrorCode::InvalidArgument,
                  {"model field 8 is malformed", "byte offset 0"});
  // A malformed node.
  expect_rejected(model_with_graph(std::string("\x0a\x02\x0a\x09", 4)), ErrorCode::InvalidArgument,
                  {"malformed node", "byte offset 6"});
  // An end-group tag where a field should be.
  expect_rejected(std::string("\x0c", 1), ErrorCode::InvalidArgument,
                  {"malformed field 1 (wire type 4)", "byte offset 0"});
}

TEST(OnnxValidation, TensorFaultsNameTheTensorAndOffset) {
  // name 'w' (field 8), data_type FLOAT (field 2), dims 2 (field 1), raw_data of 4 bytes (field 9).
  const std::string name = std::string("\x42\x01w", 3);
  const std::string type = std::string("\x10\x01", 2);
  const std::string dims = std::string("\x08\x02", 2);
  const std::string raw4 = std::string("\x4a\x04\x00\x00\x80\x3f", 6);
  // raw_data of 4 bytes for 2 floats: the offset is the raw_data payload's (6 + 2 + 3 + 2 + 2 + 2).
  expect_rejected(model_with_graph(initializer(name + type + dims + raw4)), ErrorCode::InvalidArgument,
                  {"initializer 'w': raw_data holds 4 bytes, shape [2] of FLOAT needs 8", "byte offset 15"});
  expect_rejected(model_with_graph(initializer(name + dims + raw4)), ErrorCode::InvalidArgument,
                  {"initializer 'w': data_type is missing or UNDEFINED", "byte offset 6"});
  expect_rejected(model_with_graph(initializer(
                      name + type + std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11) + raw4)),
                  ErrorCode::InvalidArgument, {"negative dimension -1"});
  expect_rejected(model_with_graph(initializer(name + type + type + dims + raw4)), ErrorCode::InvalidArgument,
                  {"data_type appears twice in a tensor", "byte offset 11"});
  expect_rejected(model_with_graph(initializer(name + type + std::string("\x08\x01", 2) + raw4 + raw4)),
                  ErrorCode::InvalidArgument, {"raw_data appears twice"});
  expect_rejected(model_with_graph(initializer(name + type + std::string("\x48\x01", 2))),
                  ErrorCode::InvalidArgument, {"raw_data has wire type 0, expected 2"});
  expect_rejected(model_with_graph(initializer(name + type + dims)), ErrorCode::InvalidArgument,
                  {"initializer 'w': holds no data for its shape [2]"});
  expect_rejected(model_with_graph(initializer(type + dims + raw4)), ErrorCode::InvalidArgument,
                  {"initializer without a name"});
  // raw_data and float_data at once.
  expect_rejected(model_with_graph(initializer(name + type + std::string("\x08\x01", 2) + raw4 +
                                               std::string("\x22\x04\x00\x00\x00\x00", 6))),
                  ErrorCode::InvalidArgument, {"holds its data in more than one field"});
  // A shape whose element count overflows 64 bits: dims 2^62 twice.
  const std::string big = std::string("\x08\x80\x80\x80\x80\x80\x80\x80\x80\x40", 10);
  expect_rejected(model_with_graph(initializer(name + type + big + big + raw4)), ErrorCode::InvalidArgument,
                  {"overflows a 64-bit element count"});
  // 2^61 FLOATs: the element count fits, the byte count does not.
  expect_rejected(model_with_graph(initializer(
                      name + type + std::string("\x08\x80\x80\x80\x80\x80\x80\x80\x80\x20", 10) + raw4)),
                  ErrorCode::InvalidArgument, {"of FLOAT overflows a 64-bit byte count"});
  // Segmented tensors.
  expect_rejected(model_with_graph(initializer(name + type + dims + std::string("\x1a\x00", 2))),
                  ErrorCode::InvalidArgument, {"segmented tensors are not supported"});
  // The same name twice (an initializer and a Constant's output).
  onnx::ModelProto m = empty_model();
  *m.mutable_graph()->add_initializer() = f32_tensor("w", {1}, 0.0f);
  onnx::NodeProto c = node("Constant", {}, {"w"});
  auto* a = c.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = f32_tensor("", {1}, 1.0f);
  *m.mutable_graph()->add_node() = c;
  expect_rejected(serialised(m), ErrorCode::InvalidArgument, {"tensor name 'w' appears twice"});
}

TEST(OnnxValidation, UnknownAndUnusualTensorsPassThrough) {
  onnx::ModelProto m = empty_model();
  auto* g = m.mutable_graph();
  *g->add_initializer() = raw_tensor("int4", 22, {3}, std::string(2, '\x12'));    // INT4: 2 bytes for 3
  *g->add_initializer() = raw_tensor("future", 99, {3}, std::string(5, '\x01'));  // a type from a later ONNX
  *g->add_initializer() = f32_tensor("empty", {0, 3}, 0.0f);
  std::string bytes = serialised(m);
  // A FLOAT tensor whose one float_data element is not packed (wire type 5), written byte by byte.
  const std::string t = std::string("\x42\x02up\x10\x01\x08\x01\x25\x00\x00\x80\x3f", 13);
  // graph is field 7: find its length byte (small model: one byte) and grow it.
  const size_t gpos = bytes.find('\x3a');
  ASSERT_NE(gpos, std::string::npos);
  ASSERT_LT(static_cast<unsigned char>(bytes[gpos + 1]) + initializer(t).size(), 0x80u);
  bytes[gpos + 1] = static_cast<char>(bytes[gpos + 1] + initializer(t).size());
  bytes.insert(gpos + 2, initializer(t));
  const std::string path = temp_dir() + "/odd.onnx";
  write_bytes(path, bytes);
  auto f = OnnxFile::open(path);
  std::vector<std::string> skipped;
  for (const auto& s : f->skipped()) skipped.push_back(s.name + ": " + s.reason);
  EXPECT_EQ(skipped, (std::vector<std::string>{"up: float_data not stored as one packed run",
                                               "int4: INT4 (4-bit) data", "future: unknown data_type 99"}));
  EXPECT_EQ(f->tensors().size(), 1u);
  EXPECT_EQ(f->info("empty").size, 0u);
  EXPECT_EQ(f->info("empty").shape, (Shape{0, 3}));
}

// Every prefix of a valid model is either a valid model or refused with a one-line error naming the file.
TEST(OnnxValidation, EveryTruncationIsRefusedOrValid) {
  const std::string bytes = serialised(mlp_model());
  const std::string dir = temp_dir();
  const std::string path = dir + "/cut.onnx";
  size_t refused = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_bytes(path, bytes.substr(0, n));
    try {
      OnnxFile::open(path);
    } catch (const Error& e) {
      ++refused;
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
    }
  }
  // Only cuts between the graph's last byte and the end (opset_import) leave a valid model.
  EXPECT_GT(refused, bytes.size() - 16);
}

// ---- external data validation ------------------------------------------------------------------------

struct ExternalCase {
  std::string location = "w.bin";
  std::string offset = "0";
  std::optional<std::string> length;
  std::vector<int64_t> dims = {2};
};

std::string external_model(const std::vector<ExternalCase>& cases) {
  onnx::ModelProto m = empty_model();
  for (size_t i = 0; i < cases.size(); ++i) {
    onnx::TensorProto* t = m.mutable_graph()->add_initializer();
    t->set_name("t" + std::to_string(i));
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : cases[i].dims) t->add_dims(d);
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [&](const std::string& k, const std::string& v) {
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    add("location", cases[i].location);
    add("offset", cases[i].offset);
    if (cases[i].length) add("length", *cases[i].length);
  }
  return serialised(m);
}

TEST(OnnxValidation, ExternalDataLocationsAndRanges) {
  auto dir_with_data = [] {
    const std::string d = temp_dir();
    write_bytes(d + "/w.bin", std::string(16, '\0'));
    return d;
  };
  expect_rejected(external_model({{"../w.bin"}}), ErrorCode::InvalidArgument,
                  {"initializer 't0': external data location '../w.bin' is not a relative path"},
                  dir_with_data());
  expect_rejected(external_model({{"/etc/passwd"}}), ErrorCode::InvalidArgument, {"is not a relative path"},
                  dir_with_data());
  expect_rejected(external_model({{"./"}}), ErrorCode::InvalidArgument, {"is not a relative path"},
                  dir_with_data());
  expect_rejected(external_model({{"missing.bin"}}), ErrorCode::NotFound,
                  {"cannot open external data file 'missing.bin'"});
  expect_rejected(
      external_model({{"w.bin", "12"}}), ErrorCode::OutOfRange,
      {"data of 't0' (8 bytes at offset 12) lies past the end of external data file 'w.bin' (16 bytes)"},
      dir_with_data());
  expect_rejected(external_model({{"w.bin", "18446744073709551615"}}), ErrorCode::OutOfRange,
                  {"lies past the end"}, dir_with_data());
  expect_rejected(external_model({{"w.bin", "18446744073709551616"}}), ErrorCode::InvalidArgument,
                  {"external_data offset '18446744073709551616' is not an unsigned decimal integer"},
                  dir_with_data());
  expect_rejected(external_model({{"w.bin", "-4"}}), ErrorCode::InvalidArgument,
                  {"is not an unsigned decimal"}, dir_with_data());
  expect_rejected(external_model({{"w.bin", "0", std::string("12")}}), ErrorCode::InvalidArgument,
                  {"external_data length 12 differs from the 8 bytes shape [2] of FLOAT needs"},
                  dir_with_data());
  expect_rejected(external_model({{"w.bin", "0"}, {"w.bin", "4"}}), ErrorCode::InvalidArgument,
                  {"data of tensors 't0' and 't1' overlap in external data file 'w.bin'"}, dir_with_data());
  expect_rejected(external_model({{"bad.onnx"}}), ErrorCode::InvalidArgument, {"names the model file"},
                  dir_with_data());
  {
    const std::string d = dir_with_data();
    ASSERT_EQ(::symlink("w.bin", (d + "/alias.bin").c_str()), 0);
    expect_rejected(external_model({{"w.bin", "0"}, {"alias.bin", "8"}}), ErrorCode::InvalidArgument,
                    {"external data locations 'w.bin' and 'alias.bin' name the same file"}, d);
  }
  {
    const std::string d = dir_with_data();
    ASSERT_EQ(::mkdir((d + "/sub.bin").c_str(), 0755), 0);
    expect_rejected(external_model({{"sub.bin"}}), ErrorCode::InvalidArgument,
                    {"'sub.bin' is not a regular file"}, d);
  }
  // Two spellings of one file, adjacent ranges: accepted.
  const std::string d = dir_with_data();
  write_bytes(d + "/ok.onnx", external_model({{"w.bin", "0"}, {"./w.bin", "8"}}));
  EXPECT_EQ(OnnxFile::open(d + "/ok.onnx")->tensors().size(), 2u);
}

// ---- writing -----------------------------------------------------------------------------------------

// Writes `zeros` zero bytes at the start of `name`'s data and copies every other entry; returns the
// output's path.
void prune_like(const TensorFile& f, const std::string& out, const std::string& name, size_t zeros) {
  auto w = f.create_like(out);
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const TensorInfo& info = f.tensors()[i];
    const size_t k = w->index_of(info.name);
    if (info.name == name) {
      std::string data(reinterpret_cast<const char*>(f.bytes(info)), info.size);
      std::memset(data.data(), 0, zeros);
      w->write(k, 0, data.data(), data.size());
    } else {
      w->copy_from(k, f, info);
    }
  }
  w->commit();
}

// Byte positions where two equally long strings differ.
std::vector<size_t> differences(const std::string& a, const std::string& b) {
  std::vector<size_t> d;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) d.push_back(i);
  }
  return d;
}

TEST(OnnxWrite, OutputDiffersFromTheInputOnlyInTheWrittenData) {
  const std::string dir = temp_dir();
  const std::string in = save(mlp_model(), dir + "/m.onnx");
  auto f = OnnxFile::open(dir + "/m.onnx");
  for (const char* name : {"fc2.weight", "fc4.weight"}) {  // raw_data, and a Constant's float_data
    const std::string out = dir + "/" + name + ".onnx";
    prune_like(*f, out, name, 8);  // the first two floats
    const std::string bytes = file_bytes(out);
    ASSERT_EQ(bytes.size(), in.size());
    const uint64_t at = in.find(f32_bytes(floats_of(*f, name)));
    // 1.0f's and 2.0f's... : the first two values are non-zero, so all 8 bytes may differ but no other.
    for (size_t d : differences(in, bytes)) {
      EXPECT_GE(d, at) << name;
      EXPECT_LT(d, at + 8) << name;
    }
    EXPECT_FALSE(differences(in, bytes).empty());
    // protobuf parses it, ONNX's checker accepts it, and the values read back are the ones written.
    onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(bytes));
    EXPECT_NO_THROW(onnx::checker::check_model(m));
    auto back = OnnxFile::open(out);
    std::vector<float> want = floats_of(*f, name);
    want[0] = want[1] = 0.0f;
    EXPECT_EQ(floats_of(*back, name), want);
  }
}

// An external-data model: w1 and the Constant's tensor in "data/../w.bin"-free plain "w.bin", inline bias.
std::string external_mlp(const std::string& dir) {
  const std::string w1 = f32_bytes(iota(12, 1.0f)), c = f32_bytes(iota(6, 9.0f));
  write_bytes(dir + "/w.bin", std::string(4, 'h') + w1 + c + std::string(3, 't'));
  onnx::ModelProto m = empty_model();
  auto* g = m.mutable_graph();
  auto external = [](onnx::TensorProto* t, const std::string& name, std::vector<int64_t> dims, uint64_t off) {
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    for (auto [k, v] :
         {std::pair<std::string, std::string>{"location", "w.bin"}, {"offset", std::to_string(off)}}) {
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    }
  };
  external(g->add_initializer(), "w1", {3, 4}, 4);
  *g->add_initializer() = f32_tensor("b", {2}, 0.5f);
  onnx::NodeProto cn = node("Constant", {}, {"c"});
  auto* a = cn.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  external(a->mutable_t(), "", {4, 2}, 0);  // replaced below: 6 floats at 52
  a->mutable_t()->clear_dims();
  a->mutable_t()->add_dims(2);
  a->mutable_t()->add_dims(3);
  a->mutable_t()->mutable_external_data(1)->set_value("52");
  *g->add_node() = cn;
  *g->add_node() = node("MatMul", {"X", "w1"}, {"h"});
  *g->add_node() = node("MatMul", {"h", "c"}, {"h2"});
  *g->add_node() = node("Add", {"h2", "b"}, {"Y"});
  value_info(g->add_input(), "X", {2, 3});
  value_info(g->add_output(), "Y", {2, 3});
  return save(m, dir + "/m.onnx");
}

TEST(OnnxWrite, ExternalDataGoesBesideTheOutputUnderItsLocation) {
  const std::string dir = temp_dir();
  const std::string model = external_mlp(dir);
  const std::string data = file_bytes(dir + "/w.bin");
  auto f = OnnxFile::open(dir + "/m.onnx");
  EXPECT_EQ(floats_of(*f, "c"), iota(6, 9.0f));
  EXPECT_EQ(f->info("c").module_type, "Linear");

  // Same directory: the output's w.bin would be the input's.
  EXPECT_SPARSITY_ERROR(f->create_like(dir + "/out.onnx"), InvalidArgument,
                        "the output's external data file 'w.bin' would replace a file of the input model");
  EXPECT_FALSE(file_id(dir + "/out.onnx").has_value());

  const std::string out_dir = temp_dir();
  prune_like(*f, out_dir + "/p.onnx", "c", 4);
  EXPECT_EQ(file_bytes(out_dir + "/p.onnx"), model);  // the model file itself does not change
  const std::string out_data = file_bytes(out_dir + "/w.bin");
  ASSERT_EQ(out_data.size(), data.size());
  for (size_t d : differences(data, out_data)) {
    EXPECT_GE(d, 52u);
    EXPECT_LT(d, 56u);
  }
  EXPECT_NO_THROW(onnx::checker::check_model(out_dir + "/p.onnx"));
  auto back = OnnxFile::open(out_dir + "/p.onnx");
  std::vector<float> want = iota(6, 9.0f);
  want[0] = 0.0f;
  EXPECT_EQ(floats_of(*back, "c"), want);
  EXPECT_EQ(floats_of(*back, "w1"), iota(12, 1.0f));

  // In place: the model and its data are replaced (the open file keeps reading the old bytes).
  prune_like(*f, dir + "/m.onnx", "w1", 48);
  EXPECT_EQ(floats_of(*f, "w1"), iota(12, 1.0f));
  EXPECT_EQ(floats_of(*OnnxFile::open(dir + "/m.onnx"), "w1"), std::vector<float>(12, 0.0f));
  EXPECT_EQ(file_bytes(dir + "/m.onnx"), model);
}

TEST(OnnxWrite, ExternalFilesOfTensorsOutsideTheEntriesAreCarriedOver) {
  const std::string dir = temp_dir();
  write_bytes(dir + "/sub.bin", "subgraph data");
  onnx::ModelProto m = empty_model();
  auto* g = m.mutable_graph();
  *g->add_initializer() = f32_tensor("w", {2, 2}, 1.0f);
  onnx::NodeProto iff = node("If", {"cond"}, {"Y"});
  auto* branch = iff.add_attribute();
  branch->set_name("then_branch");
  branch->set_type(onnx::AttributeProto::GRAPH);
  onnx::TensorProto* t = branch->mutable_g()->add_initializer();
  t->set_name("inner");
  t->set_data_type(onnx::TensorProto::UINT8);
  t->add_dims(13);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = t->add_external_data();
  e->set_key("location");
  e->set_value("sub.bin");
  *g->add_node() = iff;
  const std::string model = save(m, dir + "/m.onnx");
  auto f = OnnxFile::open(dir + "/m.onnx");
  EXPECT_EQ(f->tensors().size(), 1u);  // the subgraph's tensor is not an entry...
  EXPECT_EQ(f->external_locations(), std::vector<std::string>{"sub.bin"});
  const std::string out = temp_dir();
  prune_like(*f, out + "/m.onnx", "w", 4);
  EXPECT_EQ(file_bytes(out + "/sub.bin"), "subgraph data");  // ...but its file goes with the output

  // Such a location is validated like any other.
  m.mutable_graph()
      ->mutable_node(0)
      ->mutable_attribute(0)
      ->mutable_g()
      ->mutable_initializer(0)
      ->mutable_external_data(0)
      ->set_value("../sub.bin");
  expect_rejected(serialised(m), ErrorCode::InvalidArgument,
                  {"a tensor outside the main graph's initializers: external data location '../sub.bin'"});
}

TEST(OnnxWrite, UnpublishedOutputLeavesNothingBehind) {
  const std::string dir = temp_dir();
  external_mlp(dir);
  auto f = OnnxFile::open(dir + "/m.onnx");
  const std::string out_dir = temp_dir();
  {
    auto w = f->create_like(out_dir + "/p.onnx");
    w->write(w->index_of("w1"), 0, "\0\0\0\0", 4);
    EXPECT_SPARSITY_ERROR(w->write(w->index_of("w1"), 46, "\0\0\0\0", 4), OutOfRange, "w1");
  }
  EXPECT_FALSE(file_id(out_dir + "/p.onnx").has_value());
  EXPECT_FALSE(file_id(out_dir + "/w.bin").has_value());
}

TEST(OnnxRead, OpenTensorFileChoosesOnnxByExtension) {
  const std::string dir = temp_dir();
  save(mlp_model(), dir + "/m.onnx");
  EXPECT_TRUE(onnx_available());
  EXPECT_EQ(open_tensor_file(dir + "/m.onnx")->format(), "onnx");
  // Not a model at all: refused as ONNX, naming the offset.
  write_bytes(dir + "/text.onnx", "hello, world");
  EXPECT_SPARSITY_ERROR(open_tensor_file(dir + "/text.onnx"), InvalidArgument, "text.onnx", "byte offset");
}

#endif  // SPARSITY_HAVE_ONNX

}  // namespace
}  // namespace sparsity::io

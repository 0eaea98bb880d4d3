// ONNX models: a validated walk of the ModelProto wire format that locates each tensor's bytes, the weights'
// roles from the graph, external data files in one mapping, and the writer that rewrites only tensor data.
#include "sparsity/io/onnx.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "base/text.hpp"
#include "io/paths.hpp"

#ifdef SPARSITY_HAVE_ONNX
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "onnx/onnx_pb.h"
#endif

namespace sparsity::io {

/// Where the entries and the external data files live.
struct OnnxFile::Layout {
  struct External {
    std::string location;  ///< normalised, relative to the model's directory
    std::string path;      ///< the input file
    FileId id;
    uint64_t size = 0;
    uint64_t view_offset = 0;  ///< where the file begins in the mapping
  };
  uint64_t model_size = 0;
  std::vector<External> external;
  /// Per entry, in tensors() order: 0 for the model file, k + 1 for external[k]; and the data's offset in
  /// that file.
  std::vector<std::pair<size_t, uint64_t>> place;
};

namespace {

using ::sparsity::detail::at_file;
using ::sparsity::detail::at_offset;
using ::sparsity::detail::at_tensor;
using ::sparsity::detail::quote;

}  // namespace

OnnxFile::OnnxFile(std::string path) : TensorFile(std::move(path)) {}

OnnxFile::~OnnxFile() {
  if (tail_ != nullptr) ::munmap(tail_, tail_size_);
}

#ifndef SPARSITY_HAVE_ONNX

namespace {
[[noreturn]] void unavailable(const std::string& path) {
  throw Error(ErrorCode::FailedPrecondition,
              "ONNX is unavailable in this build (configure it with Debian's libonnx-dev and libprotobuf-dev "
              "installed)",
              {at_file(path)});
}
}  // namespace

bool onnx_available() noexcept { return false; }
std::shared_ptr<OnnxFile> OnnxFile::open(const std::string& path) { unavailable(path); }
void OnnxFile::map_external_files() {}
std::unique_ptr<TensorWriter> OnnxFile::create_like(const std::string&) const { unavailable(this->path()); }

#else  // SPARSITY_HAVE_ONNX

bool onnx_available() noexcept { return true; }

namespace {

namespace pb = google::protobuf;
using WireFormat = pb::internal::WireFormatLite;

/// protobuf parses one message of at most 2 GiB - 1 bytes; larger models keep their weights outside.
constexpr uint64_t kMaxModelBytes = static_cast<uint64_t>(std::numeric_limits<int>::max());
constexpr size_t kMaxDims = 64;

enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLength = 2, kFixed32 = 5 };

// ---- element types ---------------------------------------------------------------------------------

struct ElementType {
  int32_t code;
  const char* name;
  uint32_t bits;  ///< per element; 0 when the size is not fixed (STRING)
  std::optional<DType> dtype;
};
// TensorProto.DataType, onnx.proto. DOUBLE gets no DType so that it is never a pruning target (only FLOAT,
// FLOAT16 and BFLOAT16 are); the integer types keep theirs (they are never prunable anyway).
const ElementType kElementTypes[] = {
    {1, "FLOAT", 32, DType::f32}, {2, "UINT8", 8, DType::u8},
    {3, "INT8", 8, DType::i8},    {4, "UINT16", 16, {}},
    {5, "INT16", 16, {}},         {6, "INT32", 32, DType::i32},
    {7, "INT64", 64, DType::i64}, {8, "STRING", 0, {}},
    {9, "BOOL", 8, DType::bool_}, {10, "FLOAT16", 16, DType::f16},
    {11, "DOUBLE", 64, {}},       {12, "UINT32", 32, {}},
    {13, "UINT64", 64, {}},       {14, "COMPLEX64", 64, {}},
    {15, "COMPLEX128", 128, {}},  {16, "BFLOAT16", 16, DType::bf16},
    {17, "FLOAT8E4M3FN", 8, {}},  {18, "FLOAT8E4M3FNUZ", 8, {}},
    {19, "FLOAT8E5M2", 8, {}},    {20, "FLOAT8E5M2FNUZ", 8, {}},
    {21, "UINT4", 4, {}},         {22, "INT4", 4, {}},
    {23, "FLOAT4E2M1", 4, {}},
};

const ElementType* element_type(int64_t code) {
  for (const auto& t : kElementTypes) {
    if (t.code == code) return &t;
  }
  return nullptr;
}

bool prunable(const ElementType* t) {
  return t != nullptr && (t->code == 1 || t->code == 10 || t->code == 16);
}

// ---- the wire format -------------------------------------------------------------------------------

// One message's bytes walked field by field with protobuf's CodedInputStream, for the byte offsets the
// generated classes do not give: protobuf's own decoding of varints (up to 10 bytes), 32-bit tags and
// skipped fields (groups included, under its recursion limit), rather than a second decoder that could
// read some edge case differently from the parser that validates the rest of the file (merge_into).
// Every length is checked against the bytes left in the enclosing message before it is used; positions
// are absolute file offsets.
class Walker {
 public:
  Walker(const uint8_t* file, uint64_t begin, uint64_t size, const std::string& path)
      : in_(file + begin, static_cast<int>(size)), file_(file), begin_(begin), path_(path) {}

  uint64_t pos() const { return begin_ + static_cast<uint64_t>(in_.CurrentPosition()); }
  const uint8_t* file() const { return file_; }

  [[noreturn]] void fail(const std::string& what, uint64_t at) const {
    throw Error(ErrorCode::InvalidArgument, what, {at_file(path_), at_offset(at)});
  }

  /// The next field's number and wire type; false at the end of the message.
  bool next(uint32_t* field, uint32_t* wire) {
    at_ = pos();
    if (in_.BytesUntilLimit() == 0) return false;
    tag_ = in_.ReadTag();
    if (tag_ == 0) fail(file_[at_] == 0 ? "field number 0" : "malformed or truncated field tag", at_);
    *field = tag_ >> 3;
    *wire = tag_ & 7;
    if (*field == 0) fail("field number 0", at_);
    return true;
  }
  /// Offset of the current field's tag.
  uint64_t field_at() const { return at_; }

  uint64_t varint(std::string_view what) {
    uint64_t v = 0;
    if (!in_.ReadVarint64(&v)) fail("malformed or truncated varint in " + std::string(what), at_);
    return v;
  }
  /// A length-delimited payload: (offset, size), checked against the bytes left in this message.
  std::pair<uint64_t, uint64_t> payload(std::string_view what) {
    const uint64_t at = pos();
    uint64_t n = 0;
    if (!in_.ReadVarint64(&n)) fail("malformed or truncated length of " + std::string(what), at);
    const uint64_t left = static_cast<uint64_t>(in_.BytesUntilLimit());
    if (n > left) {
      fail(std::string(what) + " declares " + std::to_string(n) + " bytes but " + std::to_string(left) +
               " remain in its message",
           at);
    }
    const uint64_t off = pos();
    in_.Skip(static_cast<int>(n));
    return {off, n};
  }
  void skip_fixed(uint32_t wire, std::string_view what) {
    if (!in_.Skip(wire == kFixed32 ? 4 : 8)) fail("truncated " + std::string(what), at_);
  }
  /// Skips the current field (any wire type), as protobuf skips an unknown field.
  void skip() {
    if (!WireFormat::SkipField(&in_, tag_)) {
      fail("malformed field " + std::to_string(tag_ >> 3) + " (wire type " + std::to_string(tag_ & 7) + ")",
           at_);
    }
  }
  void expect(uint32_t wire, uint32_t want, std::string_view what) const {
    if (wire != want) {
      fail(
          std::string(what) + " has wire type " + std::to_string(wire) + ", expected " + std::to_string(want),
          at_);
    }
  }

 private:
  pb::io::CodedInputStream in_;
  const uint8_t* file_;
  uint64_t begin_;
  const std::string& path_;
  uint64_t at_ = 0;
  uint32_t tag_ = 0;
};

// Parses bytes [off, off + n) of the file into (merged with) a protobuf message.
bool merge_into(pb::MessageLite& msg, const uint8_t* file, uint64_t off, uint64_t n) {
  pb::io::CodedInputStream in(file + off, static_cast<int>(n));
  return msg.MergePartialFromCodedStream(&in) && in.ConsumedEntireMessage();
}

// ---- tensors -----------------------------------------------------------------------------------------

struct Chunk {
  uint64_t offset = 0, size = 0;
};

// What the wire format says about one TensorProto.
struct TensorRecord {
  std::string name;
  uint64_t at = 0;  ///< the TensorProto's first byte
  int64_t data_type = -1;
  Shape dims;
  std::optional<Chunk> raw;
  std::vector<Chunk> float_chunks, double_chunks;
  bool float_unpacked = false, double_unpacked = false;
  std::vector<std::string> varint_fields;  ///< data held as varints or strings: "int32_data", ...
  bool segment = false;
  int64_t data_location = 0;
  std::vector<std::pair<std::string, std::string>> external;
};

std::string tensor_label(const TensorRecord& r, bool constant) {
  return (constant ? "Constant " : "initializer ") + quote(r.name);
}

void parse_external_entry(Walker& outer, uint64_t off, uint64_t n, const std::string& path, TensorRecord& r) {
  Walker w(outer.file(), off, n, path);
  std::optional<std::string> key, value;
  uint32_t field, wire;
  while (w.next(&field, &wire)) {
    if (field == 1 || field == 2) {
      w.expect(wire, kLength, field == 1 ? "external_data key" : "external_data value");
      auto& slot = field == 1 ? key : value;
      if (slot) {
        w.fail(std::string("external_data entry holds two ") + (field == 1 ? "keys" : "values"),
               w.field_at());
      }
      const auto [o, len] = w.payload("external_data string");
      slot.emplace(reinterpret_cast<const char*>(w.file() + o), len);
    } else {
      w.skip();
    }
  }
  r.external.emplace_back(key.value_or(""), value.value_or(""));
}

// Walks a TensorProto at [off, off + n) of the file into `r` (r.name is kept when the message has none).
void parse_tensor(const uint8_t* file, uint64_t off, uint64_t n, const std::string& path, TensorRecord& r) {
  Walker w(file, off, n, path);
  r.at = off;
  uint32_t seen = 0;  // singular fields met so far, by field number bit
  auto once = [&](uint32_t field, const char* what) {
    if (seen & (1u << field)) w.fail(std::string(what) + " appears twice in a tensor", w.field_at());
    seen |= 1u << field;
  };
  auto dim = [&](uint64_t v) {
    if (static_cast<int64_t>(v) < 0) {
      w.fail("negative dimension " + std::to_string(static_cast<int64_t>(v)), w.field_at());
    }
    if (r.dims.size() == kMaxDims) {
      w.fail("tensor has more than " + std::to_string(kMaxDims) + " dimensions", w.field_at());
    }
    r.dims.push_back(static_cast<int64_t>(v));
  };
  uint32_t field, wire;
  while (w.next(&field, &wire)) {
    switch (field) {
      case 1:  // dims: repeated int64, packed or not
        if (wire == kVarint) {
          dim(w.varint("dims"));
        } else {
          w.expect(wire, kLength, "dims");
          const auto [o, len] = w.payload("dims");
          Walker p(file, o, len, path);
          while (p.pos() < o + len) dim(p.varint("packed dims"));
        }
        break;
      case 2:
        w.expect(wire, kVarint, "data_type");
        once(2, "data_type");
        r.data_type = static_cast<int32_t>(w.varint("data_type"));
        break;
      case 3:
        w.expect(wire, kLength, "segment");
        r.segment = true;
        w.payload("segment");
        break;
      case 4:     // float_data
      case 10: {  // double_data
        auto& chunks = field == 4 ? r.float_chunks : r.double_chunks;
        const uint32_t element_wire = field == 4 ? kFixed32 : kFixed64;
        if (wire == element_wire) {
          (field == 4 ? r.float_unpacked : r.double_unpacked) = true;
          w.skip_fixed(wire, field == 4 ? "float_data" : "double_data");
        } else {
          w.expect(wire, kLength, field == 4 ? "float_data" : "double_data");
          const auto [o, len] = w.payload(field == 4 ? "float_data" : "double_data");
          chunks.push_back({o, len});
        }
        break;
      }
      case 5:
      case 6:
      case 7:
      case 11: {
        const char* names[] = {"int32_data", "string_data", "int64_data"};
        const char* what = field == 11 ? "uint64_data" : names[field - 5];
        if (field == 6) w.expect(wire, kLength, what);
        if (wire != kVarint) w.expect(wire, kLength, what);
        if (std::find(r.varint_fields.begin(), r.varint_fields.end(), what) == r.varint_fields.end()) {
          r.varint_fields.push_back(what);
        }
        if (wire == kVarint) {
          w.varint(what);
        } else {
          w.payload(what);
        }
        break;
      }
      case 8: {
        w.expect(wire, kLength, "name");
        once(8, "name");
        const auto [o, len] = w.payload("name");
        r.name.assign(reinterpret_cast<const char*>(file + o), len);
        break;
      }
      case 9: {
        w.expect(wire, kLength, "raw_data");
        once(9, "raw_data");
        const auto [o, len] = w.payload("raw_data");
        r.raw = Chunk{o, len};
        break;
      }
      case 13: {
        w.expect(wire, kLength, "external_data");
        const auto [o, len] = w.payload("external_data");
        parse_external_entry(w, o, len, path, r);
        break;
      }
      case 14:
        w.expect(wire, kVarint, "data_location");
        once(14, "data_location");
        r.data_location = static_cast<int32_t>(w.varint("data_location"));
        break;
      default:  // doc_string and fields newer than this reader
        w.skip();
    }
  }
}

// An unsigned decimal of external_data ("offset", "length"): digits only, no overflow.
std::optional<uint64_t> parse_decimal(const std::string& s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, static_cast<uint64_t>(c - '0'), &v)) {
      return std::nullopt;
    }
  }
  return v;
}

// A location relative to the model's directory, normalised ("./a//b" -> "a/b"); nullopt when it is
// empty, absolute, holds a NUL byte or climbs out with "..".
std::optional<std::string> normalise_location(const std::string& loc) {
  if (loc.empty() || loc[0] == '/' || loc.find('\0') != std::string::npos) return std::nullopt;
  std::string out;
  size_t start = 0;
  while (start <= loc.size()) {
    size_t slash = loc.find('/', start);
    if (slash == std::string::npos) slash = loc.size();
    const std::string part = loc.substr(start, slash - start);
    start = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return std::nullopt;
    out += (out.empty() ? "" : "/") + part;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

// ---- the graph: which tensors are weights, and how they are stored --------------------------------

enum UseBit : uint8_t { kMatMulB = 1, kGemmB = 2, kGemmBt = 4, kConvW = 8, kOther = 16 };

bool standard_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

void mark_subgraph_uses(const onnx::GraphProto& g, std::unordered_map<std::string, uint8_t>& uses);

void mark_attribute_graphs(const onnx::NodeProto& node, std::unordered_map<std::string, uint8_t>& uses) {
  for (const auto& a : node.attribute()) {
    if (a.has_g()) mark_subgraph_uses(a.g(), uses);
    for (const auto& g : a.graphs()) mark_subgraph_uses(g, uses);
  }
}

// Names read inside a subgraph (If, Loop, Scan bodies) may be the outer graph's tensors: any such use is
// one auto-config does not understand.
void mark_subgraph_uses(const onnx::GraphProto& g, std::unordered_map<std::string, uint8_t>& uses) {
  for (const auto& node : g.node()) {
    for (const auto& in : node.input()) {
      if (!in.empty()) uses[in] |= kOther;
    }
    mark_attribute_graphs(node, uses);
  }
  for (const auto& out : g.output()) uses[out.name()] |= kOther;
}

int64_t int_attribute(const onnx::NodeProto& node, const std::string& name, int64_t fallback) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return a.i();
  }
  return fallback;
}

std::unordered_map<std::string, uint8_t> uses_of(const onnx::GraphProto& graph) {
  std::unordered_map<std::string, uint8_t> uses;
  for (const auto& node : graph.node()) {
    const bool std_op = standard_domain(node.domain());
    for (int k = 0; k < node.input_size(); ++k) {
      const std::string& in = node.input(k);
      if (in.empty()) continue;
      uint8_t bit = kOther;
      if (std_op && k == 1) {
        if (node.op_type() == "MatMul") bit = kMatMulB;
        if (node.op_type() == "Gemm") bit = int_attribute(node, "transB", 0) != 0 ? kGemmBt : kGemmB;
        if (node.op_type() == "Conv") bit = kConvW;
      }
      uses[in] |= bit;
    }
    mark_attribute_graphs(node, uses);
  }
  for (const auto& out : graph.output()) uses[out.name()] |= kOther;
  return uses;
}

// ---- external references anywhere in the model ----------------------------------------------------

// Every TensorProto the walk does not cover (subgraphs, sparse tensors, training graphs, functions) may
// keep its data in an external file too; the output needs those files beside it as well.
struct ExternalRefs {
  std::vector<std::string> locations;  // raw strings, in order met
  void tensor(const onnx::TensorProto& t) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) return;
    for (const auto& e : t.external_data()) {
      if (e.key() == "location") locations.push_back(e.value());
    }
  }
  void sparse(const onnx::SparseTensorProto& s) {
    tensor(s.values());
    tensor(s.indices());
  }
  void node(const onnx::NodeProto& n) {
    for (const auto& a : n.attribute()) {
      if (a.has_t()) tensor(a.t());
      for (const auto& t : a.tensors()) tensor(t);
      if (a.has_sparse_tensor()) sparse(a.sparse_tensor());
      for (const auto& s : a.sparse_tensors()) sparse(s);
      if (a.has_g()) graph(a.g());
      for (const auto& g : a.graphs()) graph(g);
    }
  }
  void graph(const onnx::GraphProto& g) {
    for (const auto& t : g.initializer()) tensor(t);
    for (const auto& s : g.sparse_initializer()) sparse(s);
    for (const auto& n : g.node()) node(n);
  }
};

// ---- the model ---------------------------------------------------------------------------------------

struct Parsed {
  std::vector<std::pair<TensorRecord, bool>> tensors;  // record, is a Constant's value
  onnx::ModelProto model;                              // every field but the graph
  onnx::GraphProto graph;                              // every field but the initializers
  ExternalRefs other_external;
};

void parse_model(const uint8_t* file, uint64_t size, const std::string& path, Parsed& out) {
  if (size > kMaxModelBytes) {
    throw Error(
        ErrorCode::InvalidArgument,
        "model file of " + std::to_string(size) +
            " bytes exceeds protobuf's 2 GiB limit (larger models keep their weights in external data)",
        {at_file(path)});
  }
  Walker top(file, 0, size, path);
  std::optional<Chunk> graph;
  uint32_t field, wire;
  while (top.next(&field, &wire)) {
    const uint64_t at = top.field_at();
    if (field == 7) {
      top.expect(wire, kLength, "graph");
      if (graph) top.fail("the model holds a second graph", at);
      const auto [o, n] = top.payload("graph");
      graph = Chunk{o, n};
      continue;
    }
    top.skip();
    if (!merge_into(out.model, file, at, top.pos() - at)) {
      top.fail("model field " + std::to_string(field) + " is malformed", at);
    }
  }
  if (!graph) top.fail("the model has no graph", size);

  // Each initializer's header lies next to tensor data, and the kernel may map whole large folios of
  // it when the header is read: unmap what lies behind the walk as it goes (the pages stay in the page
  // cache), so opening a model keeps a small resident set. `file` is the page-aligned mapping.
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t dropped = 0;
  auto drop_behind = [&](uint64_t pos) {
    const uint64_t upto = pos / page * page;
    if (upto - dropped < (uint64_t{1} << 20)) return;
    ::madvise(const_cast<uint8_t*>(file) + dropped, upto - dropped, MADV_DONTNEED);
    dropped = upto;
  };
  Walker g(file, graph->offset, graph->size, path);
  std::vector<Chunk> nodes;
  while (g.next(&field, &wire)) {
    const uint64_t at = g.field_at();
    if (field == 5) {
      g.expect(wire, kLength, "initializer");
      const auto [o, n] = g.payload("initializer");
      TensorRecord r;
      parse_tensor(file, o, n, path, r);
      out.tensors.emplace_back(std::move(r), false);
      drop_behind(o + n);
      continue;
    }
    if (field == 1) {
      g.expect(wire, kLength, "node");
      const auto [o, n] = g.payload("node");
      if (!merge_into(*out.graph.add_node(), file, o, n)) g.fail("malformed node", o);
      nodes.push_back({o, n});
      continue;
    }
    g.skip();
    if (!merge_into(out.graph, file, at, g.pos() - at)) {
      g.fail("graph field " + std::to_string(field) + " is malformed", at);
    }
  }

  // Constant nodes: the `value` attribute's tensor, found again in the node's bytes. Every other tensor
  // of a node (and of its subgraphs) is not an entry, but may name an external data file.
  for (int i = 0; i < out.graph.node_size(); ++i) {
    const onnx::NodeProto& node = out.graph.node(i);
    const bool constant = node.op_type() == "Constant" && standard_domain(node.domain()) &&
                          node.output_size() >= 1 && !node.output(0).empty();
    std::optional<Chunk> value;
    if (constant) {
      Walker nw(file, nodes[i].offset, nodes[i].size, path);
      while (nw.next(&field, &wire)) {
        if (field != 5 || wire != kLength) {
          nw.skip();
          continue;
        }
        const auto [o, n] = nw.payload("attribute");
        Walker aw(file, o, n, path);
        bool is_value = false;
        std::optional<Chunk> t;
        uint32_t af, awire;
        while (aw.next(&af, &awire)) {
          if (af == 1 && awire == kLength) {
            const auto [so, sn] = aw.payload("attribute name");
            is_value = sn == 5 && std::memcmp(file + so, "value", 5) == 0;
          } else if (af == 5 && awire == kLength) {
            if (t) aw.fail("attribute holds two tensors", aw.field_at());
            const auto [to, tn] = aw.payload("attribute tensor");
            t = Chunk{to, tn};
          } else {
            aw.skip();
          }
        }
        if (!is_value || !t) continue;
        if (value) nw.fail("Constant node " + quote(node.output(0)) + " has two 'value' attributes", o);
        value = t;
      }
    }
    if (!value) {
      out.other_external.node(node);
      continue;
    }
    TensorRecord r;
    parse_tensor(file, value->offset, value->size, path, r);
    r.name = node.output(0);
    out.tensors.emplace_back(std::move(r), true);
    onnx::NodeProto rest(node);
    for (auto& a : *rest.mutable_attribute()) {
      if (a.name() == "value") a.clear_t();
    }
    out.other_external.node(rest);
  }
  for (const auto& s : out.graph.sparse_initializer()) out.other_external.sparse(s);
  for (const auto& ti : out.model.training_info()) {
    out.other_external.graph(ti.initialization());
    out.other_external.graph(ti.algorithm());
  }
  for (const auto& f : out.model.functions()) {
    for (const auto& n : f.node()) out.other_external.node(n);
  }
}

// ---- the writer --------------------------------------------------------------------------------------

// The model file and each external data file through their own FileLayoutWriter; an entry's data is
// routed to the file that holds it.
class OnnxWriter final : public TensorWriter {
 public:
  explicit OnnxWriter(std::vector<TensorInfo> entries) : entries_(std::move(entries)) {}

  void add_file(std::unique_ptr<FileLayoutWriter> w) { files_.push_back(std::move(w)); }
  FileLayoutWriter& file(size_t i) { return *files_[i]; }
  void route(size_t file, size_t index) { route_.emplace_back(file, index); }

  const std::string& path() const noexcept override { return files_.front()->path(); }
  const std::vector<TensorInfo>& entries() const noexcept override { return entries_; }
  void write(size_t index, uint64_t offset, const void* data, size_t n) override {
    SPARSITY_CHECK_AT(index < route_.size(), OutOfRange, {at_file(path())}, "entry index ", index,
                      " out of range");
    files_[route_[index].first]->write(route_[index].second, offset, data, n);
  }
  void set_durable(bool on) noexcept override {
    durable_ = on;
    for (auto& f : files_) f->set_durable(on);
  }
  void start_writeback() noexcept override {
    for (auto& f : files_) f->start_writeback();
  }
  void finish() override {
    for (auto& f : files_) f->finish();
  }
  void stage() override {
    for (auto& f : files_) f->stage();
  }
  // The external data first, the model last: a reader that sees the new model finds its data.
  void publish(bool sync_dir) override {
    for (size_t i = 1; i < files_.size(); ++i) files_[i]->publish(/*sync_dir=*/false);
    files_.front()->publish(/*sync_dir=*/false);
    if (sync_dir && durable_) sync_directories(directories());
  }
  std::vector<std::string> paths() const override {
    std::vector<std::string> out;
    for (const auto& f : files_) out.push_back(f->path());
    return out;
  }

 private:
  std::vector<TensorInfo> entries_;
  std::vector<std::unique_ptr<FileLayoutWriter>> files_;  // [0] the model, [k + 1] external file k
  std::vector<std::pair<size_t, size_t>> route_;          // entry -> (file, index in its writer)
  bool durable_ = true;
};

}  // namespace

std::shared_ptr<OnnxFile> OnnxFile::open(const std::string& path) {
  std::shared_ptr<OnnxFile> f(new OnnxFile(path));
  Parsed parsed;
  // The walk reads a few bytes before each tensor's data: no read-ahead around them.
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t mapped = (f->size_ + page - 1) / page * page;
  if (mapped) ::madvise(const_cast<uint8_t*>(f->map_), mapped, MADV_RANDOM);
  parse_model(f->map_, f->size_, path, parsed);
  if (mapped) ::madvise(const_cast<uint8_t*>(f->map_), mapped, MADV_NORMAL);
  auto layout = std::make_shared<Layout>();
  layout->model_size = f->size_;

  // Metadata: what the model says about itself.
  const onnx::ModelProto& m = parsed.model;
  if (m.has_ir_version()) f->metadata_["ir_version"] = std::to_string(m.ir_version());
  if (m.has_producer_name()) f->metadata_["producer_name"] = m.producer_name();
  if (m.has_producer_version()) f->metadata_["producer_version"] = m.producer_version();
  for (const auto& op : m.opset_import()) {
    f->metadata_["opset." + (op.domain().empty() ? std::string("ai.onnx") : op.domain())] =
        std::to_string(op.version());
  }
  for (const auto& p : m.metadata_props()) f->metadata_[p.key()] = p.value();

  // External files by normalised location, in order of first use.
  std::map<std::string, size_t> file_of;
  auto external_file = [&](const std::string& raw, const std::string& who,
                           std::optional<uint64_t> at) -> size_t {
    const auto loc = normalise_location(raw);
    if (!loc) {
      std::vector<std::string> where = {at_file(path)};
      if (at) where.push_back(at_offset(*at));
      throw Error(ErrorCode::InvalidArgument,
                  who + ": external data location " + quote(raw) +
                      " is not a relative path inside the model's directory",
                  std::move(where));
    }
    auto it = file_of.find(*loc);
    if (it != file_of.end()) return it->second;
    Layout::External e;
    e.location = *loc;
    e.path = parent_dir(path) + "/" + *loc;
    layout->external.push_back(std::move(e));
    f->locations_.push_back(raw);
    return file_of.emplace(*loc, layout->external.size() - 1).first->second;
  };

  const auto uses = uses_of(parsed.graph);
  struct Pending {
    TensorInfo info;
    size_t file = 0;      // 0: the model, k + 1: external file k
    uint64_t offset = 0;  // in that file
    uint64_t at = 0;      // the TensorProto, for messages
  };
  std::vector<Pending> entries;
  for (auto& [r, constant] : parsed.tensors) {
    const std::string label = tensor_label(r, constant);
    auto fail = [&](const std::string& what, uint64_t at) -> void {
      throw Error(ErrorCode::InvalidArgument, label + ": " + what, {at_file(path), at_offset(at)});
    };
    if (!constant && r.name.empty()) fail("initializer without a name", r.at);
    if (r.segment) fail("segmented tensors are not supported", r.at);
    if (r.data_type <= 0) fail("data_type is missing or UNDEFINED", r.at);
    if (r.data_location != 0 && r.data_location != 1) {
      fail("unknown data_location " + std::to_string(r.data_location), r.at);
    }
    const ElementType* type = element_type(r.data_type);
    const std::string type_name = type ? type->name : "data_type " + std::to_string(r.data_type);

    uint64_t numel = 1;
    bool overflow = false;
    for (int64_t d : r.dims) overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel);
    if (std::find(r.dims.begin(), r.dims.end(), 0) != r.dims.end()) numel = 0, overflow = false;
    if (overflow) fail("shape " + shape_to_string(r.dims) + " overflows a 64-bit element count", r.at);
    // Bytes the shape needs; nullopt when the type's size is unknown or not fixed.
    std::optional<uint64_t> need;
    if (type != nullptr && type->bits != 0) {
      uint64_t bits = 0;
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(type->bits), &bits)) {
        fail("shape " + shape_to_string(r.dims) + " of " + type_name + " overflows a 64-bit byte count",
             r.at);
      }
      need = bits / 8 + (bits % 8 != 0);
    }

    const int kinds = (r.raw ? 1 : 0) + (!r.float_chunks.empty() || r.float_unpacked) +
                      (!r.double_chunks.empty() || r.double_unpacked) +
                      static_cast<int>(r.varint_fields.size());
    if (kinds > 1) fail("holds its data in more than one field", r.at);

    Pending p;
    p.at = r.at;
    std::string skip_reason;
    if (r.data_location == 1) {
      if (kinds != 0) fail("data_location is EXTERNAL but the tensor also holds data", r.at);
      std::optional<std::string> location;
      std::optional<uint64_t> offset, length;
      std::set<std::string> keys;
      for (const auto& [k, v] : r.external) {
        if (!keys.insert(k).second) fail("external_data key " + quote(k) + " appears twice", r.at);
        if (k == "location") location = v;
        if (k == "offset" || k == "length") {
          const auto n = parse_decimal(v);
          if (!n) fail("external_data " + k + " " + quote(v) + " is not an unsigned decimal integer", r.at);
          (k == "offset" ? offset : length) = n;
        }
      }
      if (!location) fail("data_location is EXTERNAL but external_data has no location", r.at);
      p.file = external_file(*location, label, r.at) + 1;
      p.offset = offset.value_or(0);
      if (need && length && *length != *need) {
        fail("external_data length " + std::to_string(*length) + " differs from the " +
                 std::to_string(*need) + " bytes shape " + shape_to_string(r.dims) + " of " + type_name +
                 " needs",
             r.at);
      }
      p.info.size = need.value_or(length.value_or(0));
      if (!need) skip_reason = type_name + " data";
    } else if (r.raw) {
      if (need && r.raw->size != *need) {
        fail("raw_data holds " + std::to_string(r.raw->size) + " bytes, shape " + shape_to_string(r.dims) +
                 " of " + type_name + " needs " + std::to_string(*need),
             r.raw->offset);
      }
      if (!need) skip_reason = type_name + " data";
      p.offset = r.raw->offset;
      p.info.size = r.raw->size;
    } else if (!r.float_chunks.empty() || r.float_unpacked || !r.double_chunks.empty() || r.double_unpacked) {
      const bool is_float = !r.float_chunks.empty() || r.float_unpacked;
      const auto& chunks = is_float ? r.float_chunks : r.double_chunks;
      const char* field = is_float ? "float_data" : "double_data";
      if (r.data_type != (is_float ? 1 : 11)) {
        skip_reason = type_name + " stored in " + field;
      } else if (chunks.size() != 1 || (is_float ? r.float_unpacked : r.double_unpacked)) {
        skip_reason = std::string(field) + " not stored as one packed run";
      } else if (chunks[0].size != *need) {
        fail(std::string(field) + " holds " + std::to_string(chunks[0].size) + " bytes, shape " +
                 shape_to_string(r.dims) + " of " + type_name + " needs " + std::to_string(*need),
             chunks[0].offset);
      } else {
        p.offset = chunks[0].offset;
        p.info.size = chunks[0].size;
      }
    } else if (!r.varint_fields.empty()) {
      skip_reason = type_name + " stored as " +
                    (r.varint_fields[0] == "string_data" ? "strings" : "varints") + " in " +
                    r.varint_fields[0];
    } else {
      if (!need || *need != 0) fail("holds no data for its shape " + shape_to_string(r.dims), r.at);
      p.offset = r.at;  // an empty tensor: no bytes
    }
    // Types a TensorInfo cannot describe element by element pass through as bytes.
    if (type == nullptr) {
      skip_reason = "unknown data_type " + std::to_string(r.data_type);
    } else if (skip_reason.empty() && type->bits % 8 != 0) {
      skip_reason = type_name + " (4-bit) data";
    }
    if (!skip_reason.empty()) {
      f->skipped_.push_back({r.name, skip_reason});
      continue;
    }

    TensorInfo& info = p.info;
    info.name = r.name;
    info.dtype_name = type->name;
    if (type->code != 11) info.dtype = type->dtype;
    info.shape = r.dims;
    info.module_type = "Module";
    const auto u = uses.find(r.name);
    const uint8_t bits = u == uses.end() ? 0 : u->second;
    if (prunable(type) && r.dims.size() == 2 && bits != 0) {
      if ((bits & ~(kMatMulB | kGemmB)) == 0) {
        info.module_type = "Linear";
        info.transposed = true;  // (in, out)
      } else if (bits == kGemmBt) {
        info.module_type = "Linear";
      }
    } else if (prunable(type) && r.dims.size() == 4 && bits == kConvW) {
      info.module_type = "Conv2d";
    }
    entries.push_back(std::move(p));
  }

  // Every other external reference must be found beside the output as well.
  for (const auto& loc : parsed.other_external.locations) {
    external_file(loc, "a tensor outside the main graph's initializers", std::nullopt);
  }

  // External files: regular, distinct, ranges inside them; then one mapping after the model's.
  std::map<FileId, size_t> by_id;
  for (size_t k = 0; k < layout->external.size(); ++k) {
    auto& e = layout->external[k];
    const int fd = ::open(e.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      throw Error(errno == ENOENT ? ErrorCode::NotFound : ErrorCode::Io,
                  "cannot open external data file " + quote(e.location) + ": " + std::strerror(errno),
                  {at_file(path)});
    }
    struct stat st {};
    const bool ok = ::fstat(fd, &st) == 0;
    ::close(fd);
    if (!ok || !S_ISREG(st.st_mode)) {
      throw Error(ErrorCode::InvalidArgument,
                  "external data file " + quote(e.location) + " is not a regular file", {at_file(path)});
    }
    e.size = static_cast<uint64_t>(st.st_size);
    e.id = {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
    const auto model_id = file_id(path);
    if (model_id && *model_id == e.id) {
      throw Error(ErrorCode::InvalidArgument,
                  "external data location " + quote(e.location) + " names the model file", {at_file(path)});
    }
    if (auto [it, fresh] = by_id.emplace(e.id, k); !fresh) {
      throw Error(ErrorCode::InvalidArgument,
                  "external data locations " + quote(layout->external[it->second].location) + " and " +
                      quote(e.location) + " name the same file",
                  {at_file(path)});
    }
  }
  for (const auto& p : entries) {
    if (p.file == 0) continue;
    const auto& e = layout->external[p.file - 1];
    if (p.offset > e.size || p.info.size > e.size - p.offset) {
      throw Error(ErrorCode::OutOfRange,
                  "data of " + quote(p.info.name) + " (" + std::to_string(p.info.size) + " bytes at offset " +
                      std::to_string(p.offset) + ") lies past the end of external data file " +
                      quote(e.location) + " (" + std::to_string(e.size) + " bytes)",
                  {at_file(path), at_offset(p.at)});
    }
  }
  // Entries of one file must not share bytes: each is written on its own.
  std::vector<const Pending*> order;
  for (const auto& p : entries) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(), [](const Pending* a, const Pending* b) {
    return a->file != b->file ? a->file < b->file : a->offset < b->offset;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const Pending& a = *order[i - 1];
    const Pending& b = *order[i];
    if (a.file == b.file && a.info.size != 0 && b.info.size != 0 && b.offset < a.offset + a.info.size) {
      throw Error(
          ErrorCode::InvalidArgument,
          "data of tensors " + quote(a.info.name) + " and " + quote(b.info.name) + " overlap" +
              (a.file ? " in external data file " + quote(layout->external[a.file - 1].location) : ""),
          {at_file(path), at_offset(b.at)});
    }
  }

  f->layout_ = layout;
  f->map_external_files();
  for (const Pending* p : order) {
    TensorInfo info = p->info;
    info.offset = p->file == 0 ? p->offset : layout->external[p->file - 1].view_offset + p->offset;
    f->tensors_.push_back(std::move(info));
    layout->place.emplace_back(p->file, p->offset);
  }
  f->index();
  // What the walk still has mapped (see parse_model) is dropped too.
  TensorInfo whole;
  whole.size = f->size_;
  f->release(whole);
  return f;
}

void OnnxFile::map_external_files() {
  auto& ext = layout_->external;
  if (ext.empty()) return;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  auto round_up = [&](uint64_t n, uint64_t* out) {
    return !__builtin_add_overflow(n, page - 1, out) && ((*out &= ~(page - 1)), true);
  };
  uint64_t model_span = 0, total = 0;
  if (!round_up(size_, &model_span)) {
    throw Error(ErrorCode::OutOfRange, "model too large to map", {at_file(path())});
  }
  total = model_span;
  for (auto& e : ext) {
    e.view_offset = total;
    uint64_t span = 0;
    if (!round_up(e.size, &span) || __builtin_add_overflow(total, span, &total) ||
        total > std::numeric_limits<size_t>::max()) {
      throw Error(ErrorCode::OutOfRange, "external data too large to map", {at_file(path())});
    }
  }
  // Reserve the whole range, move the model's mapping to its start, map each file after it.
  void* base = ::mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    throw Error(ErrorCode::Io, std::string("cannot map external data: ") + std::strerror(errno),
                {at_file(path())});
  }
  uint8_t* view = static_cast<uint8_t*>(base);
  tail_ = view + model_span;  // owned from here on, unmapped by the destructor
  tail_size_ = total - model_span;
  if (size_ > 0) {
    void* moved = ::mremap(const_cast<uint8_t*>(map_), size_, size_, MREMAP_MAYMOVE | MREMAP_FIXED, view);
    if (moved == MAP_FAILED) {
      const std::string e = std::strerror(errno);
      ::munmap(view, model_span);
      throw Error(ErrorCode::Io, "cannot map external data: " + e, {at_file(path())});
    }
    map_ = view;
  } else {
    ::munmap(view, model_span);
  }
  for (const auto& e : ext) {
    if (e.size == 0) continue;
    const int fd = ::open(e.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st {};
    const bool same = fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                      static_cast<uint64_t>(st.st_size) == e.size &&
                      static_cast<uint64_t>(st.st_dev) == e.id.first &&
                      static_cast<uint64_t>(st.st_ino) == e.id.second;
    void* m =
        same ? ::mmap(view + e.view_offset, e.size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) : MAP_FAILED;
    const std::string err = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    if (!same) {
      throw Error(ErrorCode::Io, "external data file " + quote(e.location) + " changed while opened",
                  {at_file(path())});
    }
    if (m == MAP_FAILED) {
      throw Error(ErrorCode::Io, "cannot map external data file " + quote(e.location) + ": " + err,
                  {at_file(path())});
    }
  }
}

std::unique_ptr<TensorWriter> OnnxFile::create_like(const std::string& out) const {
  const Layout& l = *layout_;
  const std::string dir = parent_dir(out);
  const auto out_id = file_id(out);
  const auto model_id = file_id(path());
  const bool in_place = out_id && model_id == out_id;
  std::set<FileId> inputs;
  if (model_id) inputs.insert(*model_id);
  for (const auto& e : l.external) inputs.insert(e.id);
  // Output files: the model, then each external file under its location beside it.
  std::vector<std::string> paths = {out};
  for (const auto& e : l.external) {
    const std::string p = dir + "/" + e.location;
    if (!in_place) {
      const auto id = file_id(p);
      if (id && inputs.count(*id)) {
        throw Error(ErrorCode::InvalidArgument,
                    "the output's external data file " + quote(e.location) +
                        " would replace a file of the input model; write the output into another directory",
                    {at_file(p)});
      }
      if (id && id == out_id) {
        throw Error(ErrorCode::InvalidArgument, "the output's external data file is the output model",
                    {at_file(p)});
      }
    }
    paths.push_back(p);
  }

  std::vector<std::vector<TensorInfo>> per_file(paths.size());
  auto w = std::make_unique<OnnxWriter>(tensors_);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto [file, offset] = l.place[i];
    TensorInfo e = tensors_[i];
    e.offset = offset;
    w->route(file, per_file[file].size());
    per_file[file].push_back(std::move(e));
  }
  for (size_t k = 0; k < paths.size(); ++k) {
    const uint64_t size = k == 0 ? l.model_size : l.external[k - 1].size;
    const uint64_t view = k == 0 ? 0 : l.external[k - 1].view_offset;
    std::vector<TensorInfo> sorted = per_file[k];
    w->add_file(std::make_unique<FileLayoutWriter>(paths[k], std::move(per_file[k]), size));
    // Bytes of no entry come from the input, in slices whose source pages are dropped once written.
    std::sort(sorted.begin(), sorted.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.offset < b.offset; });
    uint64_t cursor = 0;
    auto copy = [&](uint64_t begin, uint64_t end) {
      constexpr uint64_t kSlice = 8u << 20;
      for (uint64_t at = begin; at < end; at += kSlice) {
        const uint64_t n = std::min(kSlice, end - at);
        w->file(k).write_raw(at, map_ + view + at, n);
        TensorInfo part;
        part.offset = view + at;
        part.size = n;
        release(part);
      }
    };
    for (const auto& e : sorted) {
      if (e.offset > cursor) copy(cursor, e.offset);
      cursor = std::max(cursor, e.offset + e.size);
    }
    copy(cursor, size);
  }
  return w;
}

#endif  // SPARSITY_HAVE_ONNX

}  // namespace sparsity::io

// ONNX models: initializers and Constant-node tensors read in place (inline or external data), written around
// them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sparsity/io/tensor_file.hpp"

namespace sparsity::io {

/// Whether this build reads ONNX models (configured with Debian's libonnx-dev and libprotobuf-dev).
bool onnx_available() noexcept;

/// A tensor of an ONNX model that is not a TensorInfo entry: its bytes stay in the output as they are.
struct OnnxSkippedTensor {
  std::string name;
  std::string reason;  ///< e.g. "FLOAT16 stored as varints in int32_data"
};

/// An ONNX model (a serialized ModelProto) mapped read-only, with its external data files.
///
/// The entries are the main graph's initializers and the `value` tensors of its Constant nodes (named by
/// the node's output), whose bytes lie contiguous in little-endian element order: `raw_data`, a packed
/// `float_data` (FLOAT) or `double_data` (DOUBLE), or a range of an external data file
/// (`data_location: EXTERNAL`, keys `location`, `offset`, `length`). The mapping covers the model and,
/// after it, each external data file (page-aligned), so bytes(), tensor(), prefetch() and release()
/// work alike for every entry; file_size() is the model file's size. Tensors held as varints
/// (`int32_data`, `int64_data`, ...), strings, 4-bit types and data types this reader does not know are
/// listed in skipped() and pass through unchanged.
///
/// FLOAT (F32), FLOAT16 (F16) and BFLOAT16 (BF16) entries can be pruned; DOUBLE and the integer types
/// are readable and copied byte for byte. `module_type` is "Linear" for a 2-D floating initializer used
/// only as the B input of MatMul or Gemm (`transposed` when stored (in, out): MatMul's B, Gemm's B
/// without transB), "Conv2d" for a 4-D floating tensor used only as Conv's weight, and "Module" for
/// everything else, so auto-config picks weights only.
///
/// Opening validates the whole file (wire format, every field the reader uses, sizes against shapes
/// and data types with overflow-checked arithmetic, external files, locations and ranges) and throws
/// sparsity::Error naming the file and the byte offset (or the tensor) on the first fault.
///
///   auto f = sparsity::io::OnnxFile::open("model.onnx");
///   for (const auto& info : f->tensors()) std::cout << info.name << (info.transposed ? " (in, out)\n" :
///   "\n"); sparsity::Tensor w = f->tensor("fc1.weight");   // read-only view of the mapping
class OnnxFile : public TensorFile {
 public:
  /// FailedPrecondition naming the path when the build has no ONNX support.
  static std::shared_ptr<OnnxFile> open(const std::string& path);
  ~OnnxFile() override;

  std::string_view format() const noexcept override { return "onnx"; }
  /// The external data files' locations as the model writes them (relative to the model's directory),
  /// in order of first use.
  const std::vector<std::string>& external_locations() const noexcept { return locations_; }
  /// Tensors left as bytes, in file order.
  const std::vector<OnnxSkippedTensor>& skipped() const noexcept { return skipped_; }

  /// The output model is the input's bytes with only the entries' data rewritten; each external data
  /// file is written beside it under the same relative location (same size, same layout, bytes outside
  /// the entries copied). Everything appears at publish(): the external files first, the model last.
  /// InvalidArgument naming the path when an output external data file would replace one of the
  /// input's files (unless `path` is the input model itself, which is then replaced whole).
  std::unique_ptr<TensorWriter> create_like(const std::string& path) const override;

  struct Layout;  ///< where each entry lives (onnx.cpp)

 private:
  explicit OnnxFile(std::string path);
  void map_external_files();

  std::vector<std::string> locations_;
  std::vector<OnnxSkippedTensor> skipped_;
  std::shared_ptr<Layout> layout_;
  uint8_t* tail_ = nullptr;  ///< the external files' part of the mapping, unmapped by the destructor
  size_t tail_size_ = 0;
};

}  // namespace sparsity::io

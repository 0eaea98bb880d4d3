// The list of tensor file formats open_tensor_file() knows, in the order it tries them.
#include "sparsity/io/gguf.hpp"
#include "sparsity/io/onnx.hpp"
#include "sparsity/io/safetensors.hpp"
#include "sparsity/io/tensor_file.hpp"

namespace sparsity::io {
namespace {

// safetensors has no magic: an 8-byte little-endian header length, then a JSON object. It is the
// fallback format, so it claims everything the formats before it did not.
bool looks_like_safetensors(const uint8_t*, size_t, const std::string&) { return true; }

std::shared_ptr<TensorFile> open_safetensors(const std::string& path) { return SafetensorsFile::open(path); }

// ONNX has no magic (a ModelProto's first bytes are any field): a path ending in ".onnx" is one. A
// build without ONNX support claims it too, to say so.
bool looks_like_onnx(const uint8_t*, size_t, const std::string& path) {
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
}
std::shared_ptr<TensorFile> open_onnx(const std::string& path) { return OnnxFile::open(path); }

std::shared_ptr<TensorFile> open_gguf(const std::string& path) { return GgufFile::open(path); }

}  // namespace

const std::vector<TensorFormat>& tensor_formats() {
  static const std::vector<TensorFormat> formats = {
      {"gguf", GgufFile::recognises, open_gguf},
      {"onnx", looks_like_onnx, open_onnx},
      {"safetensors", looks_like_safetensors, open_safetensors},
  };
  return formats;
}

}  // namespace sparsity::io

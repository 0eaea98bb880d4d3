// The list of tensor file formats open_tensor_file() knows, in the order it tries them.
#include "sparsity/io/gguf.hpp"
#include "sparsity/io/safetensors.hpp"
#include "sparsity/io/tensor_file.hpp"

namespace sparsity::io {
namespace {

// safetensors has no magic: an 8-byte little-endian header length, then a JSON object. It is the
// fallback format, so it claims everything the formats before it did not.
bool looks_like_safetensors(const uint8_t*, size_t, const std::string&) { return true; }

std::shared_ptr<TensorFile> open_safetensors(const std::string& path) { return SafetensorsFile::open(path); }

}  // namespace

const std::vector<TensorFormat>& tensor_formats() {
  static const std::vector<TensorFormat> formats = {
      {"gguf", GgufFile::recognises,
       [](const std::string& p) -> std::shared_ptr<TensorFile> { return GgufFile::open(p); }},
      {"safetensors", looks_like_safetensors, open_safetensors},
  };
  return formats;
}

}  // namespace sparsity::io

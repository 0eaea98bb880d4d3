// libFuzzer target: the safetensors header parser must accept or reject any byte string with an Error.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "sparsity/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto infos = sparsity::io::SafetensorsFile::parse_header(data, size, "fuzz");
    // Accepted headers describe in-range, non-overlapping data: touch every entry's bytes.
    const uint64_t header = size >= 8 ? data[0] | (uint64_t{data[1]} << 8) | (uint64_t{data[2]} << 16) |
                                            (uint64_t{data[3]} << 24) | (uint64_t{data[4]} << 32) |
                                            (uint64_t{data[5]} << 40) | (uint64_t{data[6]} << 48) |
                                            (uint64_t{data[7]} << 56)
                                      : 0;
    volatile uint8_t sink = 0;
    for (const auto& info : infos) {
      // parse_header gives offsets into the data buffer.
      if (info.offset > size - 8 - header || info.size > size - 8 - header - info.offset) __builtin_trap();
      for (uint64_t i = info.offset; i < info.offset + info.size; ++i) sink = sink + data[8 + header + i];
    }
  } catch (const sparsity::Error& e) {
    if (std::strchr(e.what(), '\n') != nullptr) __builtin_trap();  // messages are one line
  }
  return 0;
}

// libFuzzer target: the GGUF reader must accept or refuse any byte string with a one-line Error, and
// what it accepts must describe the bytes exactly.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "sparsity/io/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sparsity::io::GgufFile;
  try {
    const sparsity::io::GgufLayout l = GgufFile::parse(data, size, "fuzz");
    // The metadata re-encodes to the very bytes it was read from.
    std::string encoded;
    for (const auto& [key, value] : l.metadata) {
      for (int i = 0; i < 8; ++i) encoded.push_back(static_cast<char>((key.size() >> (8 * i)) & 0xff));
      encoded += key;
      const auto t = static_cast<uint32_t>(value.type());
      for (int i = 0; i < 4; ++i) encoded.push_back(static_cast<char>((t >> (8 * i)) & 0xff));
      const size_t before = encoded.size();
      value.encode(encoded);
      if (encoded.size() - before != value.encoded_size()) __builtin_trap();
      (void)value.to_string();
    }
    if (24 + encoded.size() > size || std::memcmp(data + 24, encoded.data(), encoded.size()) != 0)
      __builtin_trap();
    // Accepted tensors lie inside the file, aligned, after the infos: touch every byte of each.
    volatile uint8_t sink = 0;
    for (const auto& t : l.tensors) {
      if (t.offset > size || t.size > size - t.offset || t.offset < l.data_begin) __builtin_trap();
      if ((t.offset - l.data_begin) % l.alignment != 0) __builtin_trap();
      if (t.dtype && t.size != t.numel() * sparsity::size_of(*t.dtype)) __builtin_trap();
      for (uint64_t i = 0; i < t.size; ++i) sink = sink + data[t.offset + i];
    }
  } catch (const sparsity::Error& e) {
    if (std::strchr(e.what(), '\n') != nullptr) __builtin_trap();  // messages are one line
  }
  return 0;
}

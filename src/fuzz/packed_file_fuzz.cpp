// libFuzzer target: reading a packed file (the list in __metadata__ and every weight's parts) accepts
// or refuses any bytes with a one-line Error; what the full check accepts packs back to the same bits,
// and what only the shapes check accepts still unpacks inside its parts.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "sparsity/core/packed.hpp"
#include "sparsity/io/safetensors.hpp"
#include "sparsity/prune/pack.hpp"

namespace {

// The input as a file the reader can map (no disk involved).
int memory_file(const uint8_t* data, size_t size) {
  const int fd = ::memfd_create("packed_fuzz", MFD_CLOEXEC);
  if (fd < 0) __builtin_trap();
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) __builtin_trap();
    done += static_cast<size_t>(n);
  }
  return fd;
}

void one_line(const sparsity::Error& e) {
  if (std::strchr(e.what(), '\n') != nullptr) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sparsity::PackedTensor;
  const int fd = memory_file(data, size);
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const auto file = sparsity::io::SafetensorsFile::open(path);
    const auto weights = sparsity::prune::packed_weights(*file);
    for (const auto& w : weights) {
      PackedTensor p;
      try {
        const PackedTensor loose = sparsity::prune::read_packed(*file, w, PackedTensor::Check::shapes);
        // A few bytes may declare a dense weight of gigabytes (unpack would allocate it): only small ones.
        if (loose.rows() * loose.cols() > (int64_t{1} << 22)) continue;
        (void)loose.unpack();  // meaningless numbers at worst, never a read outside the parts
        p = sparsity::prune::read_packed(*file, w);
      } catch (const sparsity::Error& e) {
        one_line(e);
        continue;
      }
      // Checked parts describe a weight their own format packs, to the same bits.
      try {
        const sparsity::Tensor dense = p.unpack();
        const PackedTensor again = sparsity::pack(dense, p.format());
        if (!sparsity::bitwise_equal(again.unpack(), dense) || again.shape() != p.shape()) __builtin_trap();
      } catch (const sparsity::Error&) {
        __builtin_trap();
      }
    }
  } catch (const sparsity::Error& e) {
    one_line(e);
  }
  ::close(fd);
  return 0;
}

// libFuzzer target: any bytes opened as an ONNX model are accepted, with entries inside the files and a
// writer laid out around them, or rejected with a one-line Error.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "sparsity/io/onnx.hpp"

namespace {

// A directory holding the model (rewritten for every input) and "w.bin", an external data file the
// inputs may name (256 bytes: 0, 1, 2, ...). In memory when /dev/shm exists.
struct Scratch {
  std::string dir, model;
  Scratch() {
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (const char* t = std::getenv("SPARSITY_FUZZ_DIR")) base = t;
    std::string templ = base + "/sparsity_onnx_fuzz_XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) __builtin_trap();
    dir = templ;
    model = dir + "/m.onnx";
    if (::mkdir((dir + "/out").c_str(), 0755) != 0) __builtin_trap();
    uint8_t w[256];
    for (int i = 0; i < 256; ++i) w[i] = static_cast<uint8_t>(i);
    put(dir + "/w.bin", w, sizeof w);
  }
  ~Scratch() {
    for (const char* f : {"/m.onnx", "/w.bin"}) ::unlink((dir + f).c_str());
    ::rmdir((dir + "/out").c_str());
    ::rmdir(dir.c_str());
  }
  static void put(const std::string& path, const uint8_t* data, size_t size) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) __builtin_trap();
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n <= 0) __builtin_trap();
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Scratch scratch;
  Scratch::put(scratch.model, data, size);
  std::shared_ptr<sparsity::io::OnnxFile> f;
  try {
    f = sparsity::io::OnnxFile::open(scratch.model);
  } catch (const sparsity::Error& e) {
    if (std::strchr(e.what(), '\n') != nullptr) __builtin_trap();                   // messages are one line
    if (std::strstr(e.what(), scratch.model.c_str()) == nullptr) __builtin_trap();  // and name the file
    return 0;
  }
  // Accepted: every entry lies inside the mapping (the model, then the external files) and reads.
  volatile uint8_t sink = 0;
  for (const auto& info : f->tensors()) {
    const uint8_t* p = f->bytes(info);
    for (uint64_t i = 0; i < info.size; ++i) sink = sink + p[i];
    if (info.dtype && info.size) (void)f->tensor(info.name);
  }
  // The writer's layout (the bytes around the entries copied from the input); never published. It may
  // refuse (e.g. an external location in a directory the output's does not have).
  try {
    auto w = f->create_like(scratch.dir + "/out/m.onnx");
    w->set_durable(false);
  } catch (const sparsity::Error& e) {
    if (std::strchr(e.what(), '\n') != nullptr) __builtin_trap();
  }
  return 0;
}

// read_small_file: open, check and read a small regular file.
#include "io/small_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "base/text.hpp"
#include "sparsity/base/error.hpp"

namespace sparsity::io {


std::string read_small_file(const std::string& path, size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) ::sparsity::detail::fail_at_file(errno == ENOENT ? ErrorCode::NotFound : ErrorCode::Io, std::string("cannot open: ") + std::strerror(errno), path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    ::sparsity::detail::fail_at_file(ErrorCode::InvalidArgument, "not a regular file", path);
  }
  if (static_cast<uint64_t>(st.st_size) > limit) {
    ::close(fd);
    ::sparsity::detail::fail_at_file(ErrorCode::InvalidArgument, "file is larger than " + std::to_string(limit) + " bytes", path);
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t r = ::read(fd, &text[got], text.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  text.resize(got);
  return text;
}


}  // namespace sparsity::io

// AtomicFile: hidden file (O_TMPFILE or a registered dot-file), fsync, publication by link or rename.
#include "sparsity/io/atomic_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "base/text.hpp"
#include "io/paths.hpp"
#include "sparsity/base/error.hpp"

namespace sparsity::io {
namespace {

using ::sparsity::detail::at_file;
using ::sparsity::detail::at_offset;
using ::sparsity::detail::printable;

std::string sys_error() { return std::strerror(errno); }

[[noreturn]] void io_fail(const std::string& what, const std::string& path) {
  throw Error(ErrorCode::Io, what, {at_file(path)});
}

// ---- hidden temporary names, removable from a signal handler ------------------------------------
// A slot is free (0), being written (1) or holds a live temporary path (2). The handler only reads
// slots in state 2 and only calls unlink(), which is async-signal-safe.
constexpr int kSlots = 64;
std::atomic<int> g_slot_state[kSlots];
char g_slot_path[kSlots][PATH_MAX];

int register_temp(const std::string& path) noexcept {
  if (path.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (g_slot_state[i].compare_exchange_strong(expected, 1)) {
      std::memcpy(g_slot_path[i], path.c_str(), path.size() + 1);
      g_slot_state[i].store(2);
      return i;
    }
  }
  return -1;  // more live temporaries than slots: the next run's sweep still removes a leftover
}

void unregister_temp(int slot) noexcept {
  if (slot >= 0) g_slot_state[slot].store(0);
}

std::atomic<int> g_next_temp{0};

std::string temp_name(const std::string& dir, const std::string& base) {
  return dir + "/." + base + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(g_next_temp++);
}

// Removes `.<base>.tmp-<pid>-<n>` files in `dir` left by processes that no longer exist.
void sweep_dead_temporaries(const std::string& dir, const std::string& base) noexcept {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  const std::string prefix = "." + base + ".tmp-";
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const size_t dash = rest.find('-');
    if (dash == 0 || dash == std::string::npos || dash + 1 == rest.size()) continue;
    const std::string pid_text = rest.substr(0, dash), n_text = rest.substr(dash + 1);
    const auto digits = [](const std::string& s) {
      return s.size() <= 18 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!digits(pid_text) || !digits(n_text)) continue;
    const long pid = std::stol(pid_text);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) ::unlinkat(::dirfd(d), name.c_str(), 0);
  }
  ::closedir(d);
}

void fsync_dir(const std::string& dir) noexcept {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

extern "C" void cleanup_and_reraise(int sig) {
  remove_temporary_files();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

AtomicFile::AtomicFile(std::string path, bool durable)
    : path_(std::move(path)), dir_(parent_dir(path_)), durable_(durable) {
  const std::string base = base_name(path_);
  SPARSITY_CHECK_AT(!base.empty() && base != "." && base != "..", InvalidArgument, {at_file(path_)},
                    "not a file path");
  sweep_dead_temporaries(dir_, base);
#ifdef O_TMPFILE
  static const bool unnamed_allowed = std::getenv("SPARSITY_NO_O_TMPFILE") == nullptr;
  if (unnamed_allowed) fd_ = ::open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
#endif
  if (fd_ < 0) {
    // No unnamed files here (NFS, FUSE, vfat, ...): a hidden name, registered for signal cleanup.
    for (int attempt = 0; fd_ < 0; ++attempt) {
      std::string name = temp_name(dir_, base);
      fd_ = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ >= 0) {
        temp_path_ = std::move(name);
      } else if (errno != EEXIST || attempt > 100) {
        io_fail("cannot create a temporary file in " + printable(dir_) + ": " + sys_error(), path_);
      }
    }
    slot_ = register_temp(temp_path_);
  }
}

AtomicFile::~AtomicFile() {
  if (!published_) discard();
  if (fd_ >= 0) ::close(fd_);
}

void AtomicFile::discard() noexcept {
  if (!temp_path_.empty()) {
    ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }
  unregister_temp(slot_);
  slot_ = -1;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void AtomicFile::write(const void* data, size_t n, uint64_t offset) {
  SPARSITY_CHECK_AT(fd_ >= 0 && !finished_, FailedPrecondition, {at_file(path_)}, "the file is closed");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t w = ::pwrite(fd_, p, chunk, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::Io, "cannot write: " + sys_error(), {at_file(path_), at_offset(offset)});
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

void AtomicFile::reserve(uint64_t size) {
  SPARSITY_CHECK_AT(fd_ >= 0 && !finished_, FailedPrecondition, {at_file(path_)}, "the file is closed");
  // File systems without fallocate get a sparse file of the right size.
  if (::fallocate(fd_, 0, 0, static_cast<off_t>(size)) != 0) {
    if (errno == ENOSPC) io_fail("cannot size the output: " + sys_error(), path_);
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) io_fail("cannot size the output: " + sys_error(), path_);
  }
}

void AtomicFile::start_writeback() noexcept {
  if (fd_ >= 0 && durable_ && !finished_) ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
}

void AtomicFile::finish() {
  SPARSITY_CHECK_AT(fd_ >= 0, FailedPrecondition, {at_file(path_)}, "the file is closed");
  if (finished_) return;
  if (durable_ && ::fsync(fd_) != 0) io_fail("cannot flush to disk: " + sys_error(), path_);
  finished_ = true;
}

void AtomicFile::stage() {
  SPARSITY_CHECK_AT(finished_ && fd_ >= 0 && !published_, FailedPrecondition, {at_file(path_)},
                    "publishing needs a finished, unpublished file");
  if (!temp_path_.empty()) return;
  struct stat st {};
  if (::lstat(path_.c_str(), &st) != 0 && errno == ENOENT) return;  // publish() links it straight there
  // The target exists and linkat cannot replace it: a hidden name now, a rename over the target later.
  const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
  for (int attempt = 0;; ++attempt) {
    std::string name = temp_name(dir_, base_name(path_));
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0) {
      temp_path_ = std::move(name);
      slot_ = register_temp(temp_path_);
      return;
    }
    if (errno != EEXIST || attempt > 100) io_fail("cannot link the output: " + sys_error(), path_);
  }
}

void AtomicFile::publish(bool sync_dir) {
  stage();
  if (temp_path_.empty()) {
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path_.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      if (errno != EEXIST) io_fail("cannot link the output into place: " + sys_error(), path_);
      stage();  // the target appeared meanwhile: replace it by a rename like any existing target
    }
  }
  if (!temp_path_.empty()) {
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) io_fail("cannot rename into place: " + sys_error(), path_);
    temp_path_.clear();
    unregister_temp(slot_);
    slot_ = -1;
  }
  published_ = true;
  if (durable_ && sync_dir) fsync_dir(dir_);
}

void sync_directories(const std::vector<std::string>& dirs) noexcept {
  for (const auto& d : dirs) fsync_dir(d);
}

void install_cleanup_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction sa {};
      sa.sa_handler = cleanup_and_reraise;
      sigemptyset(&sa.sa_mask);
      ::sigaction(sig, &sa, nullptr);
    }
  });
}

void remove_temporary_files() noexcept {
  for (int i = 0; i < kSlots; ++i) {
    if (g_slot_state[i].load() == 2) ::unlink(g_slot_path[i]);
  }
}

}  // namespace sparsity::io

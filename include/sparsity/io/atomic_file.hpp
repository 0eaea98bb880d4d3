// AtomicFile: an output that appears at its path whole or not at all (every file sparsity writes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sparsity::io {

/// A file written in a hidden place and published at `path` in one step.
///
/// The data goes to an unnamed file in the target directory (O_TMPFILE) where the file system allows it,
/// else to a hidden temporary `.<name>.tmp-<pid>-<n>` beside the target. finish() flushes it to disk
/// (unless not durable), publish() makes it appear at `path`: by linking the unnamed file there when
/// nothing is at `path` yet (no temporary name ever exists), else by a rename over the old file.
/// Destroying an unpublished file removes everything it created. A killed process leaves nothing behind
/// in the unnamed case; hidden temporaries of processes that died (SIGKILL, power loss) are removed by
/// the next AtomicFile made for the same path, and SIGINT/SIGTERM/SIGHUP remove them at once when
/// install_cleanup_handlers() was called (the command line does). The environment variable
/// SPARSITY_NO_O_TMPFILE (any value) turns unnamed files off, for file systems that claim O_TMPFILE but
/// fail to link such files, and to test the named path.
///
///   sparsity::io::AtomicFile f("out.bin");
///   f.write(data, n, /*offset=*/0);
///   f.commit();                               // fsync, then appears at out.bin
class AtomicFile {
 public:
  /// Creates the hidden file. Io naming the path when the directory is not writable.
  explicit AtomicFile(std::string path, bool durable = true);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& path() const noexcept { return path_; }
  bool durable() const noexcept { return durable_; }
  /// Whether finish() and publish() fsync. Without it a killed process still leaves no partial file,
  /// but a power loss may lose the published file's contents.
  void set_durable(bool on) noexcept { durable_ = on; }

  /// Writes all `n` bytes at `offset` (Io naming the path and offset on failure). Not serialised: callers
  /// that write from several threads serialise themselves.
  void write(const void* data, size_t n, uint64_t offset);
  /// Sets the file's size, reserving its blocks where the file system can (a full disk fails here).
  void reserve(uint64_t size);
  /// Starts writing back the data written so far (non-blocking; durable files only).
  void start_writeback() noexcept;
  /// Flushes the data to disk (durable files); the file is complete but still hidden.
  void finish();
  /// Prepares the finished file for publish(): an unnamed file whose target exists gets its hidden
  /// name now. Calling stage() on several files first keeps the window between their publications short.
  void stage();
  /// Makes the finished file appear at path(); with `sync_dir` (and durability) syncs the directory.
  void publish(bool sync_dir = true);
  /// finish() + publish().
  void commit() {
    finish();
    publish();
  }
  bool published() const noexcept { return published_; }

 private:
  void discard() noexcept;
  std::string path_;
  std::string dir_;
  std::string temp_path_;  ///< named hidden file (fallback, or an unnamed file staged over a target)
  int fd_ = -1;
  int slot_ = -1;  ///< signal-cleanup slot of temp_path_, -1 when none
  bool durable_ = true;
  bool finished_ = false;
  bool published_ = false;
};

/// fsync of each directory (after several publish(/*sync_dir=*/false)); errors are ignored.
void sync_directories(const std::vector<std::string>& dirs) noexcept;

/// Installs SIGINT, SIGTERM and SIGHUP handlers that remove every hidden temporary file of a live
/// AtomicFile, then end the process with the signal's default action. For programs; a library user
/// with handlers of its own calls remove_temporary_files() from them instead.
void install_cleanup_handlers();
/// Removes the hidden temporary files of every live AtomicFile (async-signal-safe).
void remove_temporary_files() noexcept;

}  // namespace sparsity::io

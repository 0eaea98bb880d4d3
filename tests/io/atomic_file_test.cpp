// AtomicFile: nothing visible before publish, replacement in one step, cleanup of dead runs' debris.
#include "sparsity/io/atomic_file.hpp"

#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>

#include "temp_dir.hpp"
#include "test_util.hpp"

namespace sparsity::io {
namespace {

std::set<std::string> list_dir(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  while (auto* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.insert(n);
  }
  ::closedir(d);
  return names;
}

using sparsity::testing::file_bytes;

TEST(AtomicFile, AppearsOnlyWhenPublishedAndReplacesInOneStep) {
  const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_atomic_");
  {
    AtomicFile f(dir + "/a.bin");
    f.write("hello", 5, 0);
    f.finish();
    f.stage();
    EXPECT_TRUE(list_dir(dir).empty());  // a new target: no name until publish links it
    f.publish();
  }
  EXPECT_EQ(file_bytes(dir + "/a.bin"), "hello");
  {
    AtomicFile f(dir + "/a.bin", /*durable=*/false);
    f.reserve(3);
    f.write("bye", 3, 0);
    f.finish();
    EXPECT_EQ(file_bytes(dir + "/a.bin"), "hello");  // the old file until publish
    f.publish();
  }
  EXPECT_EQ(file_bytes(dir + "/a.bin"), "bye");
  EXPECT_EQ(list_dir(dir), std::set<std::string>{"a.bin"});
  {
    AtomicFile f(dir + "/b.bin");
    f.write("x", 1, 0);
  }  // never published
  EXPECT_EQ(list_dir(dir), std::set<std::string>{"a.bin"});
}

TEST(AtomicFile, MisuseAndUnwritableDirectoriesAreErrors) {
  const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_atomic_");
  EXPECT_SPARSITY_ERROR(AtomicFile(dir + "/no/such/dir/x"), Io, "cannot create a temporary file");
  EXPECT_SPARSITY_ERROR(AtomicFile(dir + "/"), InvalidArgument, "not a file path");
  AtomicFile f(dir + "/x");
  EXPECT_SPARSITY_ERROR(f.publish(), FailedPrecondition, "finished");
  f.finish();
  EXPECT_SPARSITY_ERROR(f.write("a", 1, 0), FailedPrecondition, "closed");
}

TEST(AtomicFile, TemporariesOfDeadProcessesAreRemovedByTheNextWriterOfThatPath) {
  const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_atomic_");
  // A pid that no longer exists: a child that has exited and been reaped.
  const pid_t child = ::fork();
  if (child == 0) _exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  const std::string dead = "/.out.bin.tmp-" + std::to_string(child) + "-0";
  const std::string live = "/.out.bin.tmp-" + std::to_string(::getppid()) + "-0";
  const std::string other = "/.other.bin.tmp-" + std::to_string(child) + "-0";
  for (const auto& n : {dead, live, other}) std::ofstream(dir + n) << "debris";
  AtomicFile f(dir + "/out.bin");
  const auto names = list_dir(dir);
  EXPECT_EQ(names.count(dead.substr(1)), 0u);
  EXPECT_EQ(names.count(live.substr(1)), 1u) << "a running process's file is kept";
  EXPECT_EQ(names.count(other.substr(1)), 1u) << "another output's file is kept";
}

}  // namespace
}  // namespace sparsity::io

// Files for tests: a new, empty temporary directory per call, and whole files read and written as bytes.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace sparsity::testing {

/// A new, empty directory under the test temporary directory (mkdtemp: unique even when a later test
/// process gets the PID of an earlier one whose files are still there).
inline std::string fresh_temp_dir(const std::string& prefix) {
  const std::string templ = ::testing::TempDir() + "/" + prefix + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) ADD_FAILURE() << "cannot create a directory from " << templ;
  return buf.data();
}

/// The whole file as bytes ("" when it cannot be opened).
inline std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/// Creates or replaces `path` with exactly `bytes`.
inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace sparsity::testing

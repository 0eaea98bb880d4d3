// A new, empty directory under the test temporary directory for each call (mkdtemp: unique even when a
// later test process gets the PID of an earlier one whose files are still there).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

namespace sparsity::testing {

inline std::string fresh_temp_dir(const std::string& prefix) {
  const std::string templ = ::testing::TempDir() + "/" + prefix + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) ADD_FAILURE() << "cannot create a directory from " << templ;
  return buf.data();
}

}  // namespace sparsity::testing

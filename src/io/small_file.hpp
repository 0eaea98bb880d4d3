// Reading a small text file (an index or CONFIG.json) whole, with a size limit.
#pragma once

#include <cstddef>
#include <string>

namespace sparsity::io {

/// Whole contents of a regular file of at most `limit` bytes; throws sparsity::Error naming the path
/// when it is missing, not a regular file, or larger.
std::string read_small_file(const std::string& path, size_t limit);

}  // namespace sparsity::io

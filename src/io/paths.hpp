// Path helpers for outputs: directory and base name of a path, and file identity (device, inode).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace sparsity::io {

/// Directory part of a path ("." when there is none, "/" for a file in the root).
std::string parent_dir(const std::string& path);
/// The part after the last '/'.
std::string base_name(const std::string& path);

/// What a path names on disk, following symbolic links: (device, inode), or nullopt when it names
/// nothing (yet).
using FileId = std::pair<uint64_t, uint64_t>;
std::optional<FileId> file_id(const std::string& path);

}  // namespace sparsity::io

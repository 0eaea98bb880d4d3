// Checkpoint: opening single-file and sharded safetensors checkpoints as one set of tensors.
#include "sparsity/io/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/json_strict.hpp"
#include "base/text.hpp"
#include "io/paths.hpp"
#include "io/small_file.hpp"

namespace sparsity::io {
namespace {

using ::sparsity::detail::fail_at_file;
using ::sparsity::detail::printable;
using ::sparsity::detail::quote;



}  // namespace


bool is_index_path(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  c.path_ = path;
  if (!is_index_path(path)) {
    c.shards_.push_back(open_tensor_file(path));
    const auto slash = path.find_last_of('/');
    c.shard_names_.push_back(slash == std::string::npos ? path : path.substr(slash + 1));
  } else {
    c.sharded_ = true;
    c.index_text_ = read_small_file(path, 64u << 20);
    Json index;
    ::sparsity::detail::StrictJsonError err;
    if (!::sparsity::detail::parse_strict(c.index_text_.data(), c.index_text_.data() + c.index_text_.size(), index, err)) {
      if (err.kind == 1) fail_at_file(ErrorCode::InvalidArgument, "duplicate key " + quote(err.key) + " in the index", path, "tensor " + quote(err.key));
      fail_at_file(ErrorCode::InvalidArgument, "index is not valid JSON", path, "byte offset " + std::to_string(err.offset));
    }
    if (!index.is_object()) fail_at_file(ErrorCode::InvalidArgument, "index is not a JSON object", path, "byte offset 0");
    auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object()) {
      fail_at_file(ErrorCode::InvalidArgument, "index has no \"weight_map\" object", path, "key weight_map");
    }
    std::map<std::string, size_t> shard_of_name;
    const std::string dir = parent_dir(path);
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string()) {
        fail_at_file(ErrorCode::InvalidArgument, "weight_map value is not a file name", path, "key weight_map." + printable(it.key()));
      }
      const std::string shard = it.value().get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
        fail_at_file(ErrorCode::InvalidArgument, "shard " + quote(shard) + " is not a plain file name beside the index", path,
            "key weight_map." + printable(it.key()));
      }
      if (!shard_of_name.count(shard)) {
        shard_of_name[shard] = c.shards_.size();
        c.shard_names_.push_back(shard);
        c.shards_.push_back(open_tensor_file(dir + "/" + shard));
      }
      const auto& file = c.shards_[shard_of_name[shard]];
      if (!file->contains(it.key())) {
        fail_at_file(ErrorCode::InvalidArgument, "the index maps tensor " + quote(it.key()) + " to a shard that lacks it",
            dir + "/" + shard, "tensor " + quote(it.key()));
      }
    }
    if (c.shards_.empty()) fail_at_file(ErrorCode::InvalidArgument, "index names no shard", path, "key weight_map");
    for (size_t s = 0; s < c.shards_.size(); ++s) {
      for (const auto& info : c.shards_[s]->tensors()) {
        auto m = wm->find(info.name);
        if (m == wm->end() || m->get<std::string>() != c.shard_names_[s]) {
          fail_at_file(ErrorCode::InvalidArgument, "tensor " + quote(info.name) + " is not mapped to this shard by the index",
              c.shards_[s]->path(), "tensor " + quote(info.name));
        }
      }
    }
  }
  for (size_t s = 0; s < c.shards_.size(); ++s) {
    for (const auto& info : c.shards_[s]->tensors()) {
      if (!c.index_.emplace(info.name, c.entries_.size()).second) {
        fail_at_file(ErrorCode::InvalidArgument, "tensor " + quote(info.name) + " appears in two shards", c.shards_[s]->path(),
            "tensor " + quote(info.name));
      }
      c.entries_.push_back({c.shards_[s], &info, s});
      c.data_bytes_ += info.nbytes();
    }
  }
  return c;
}

const CheckpointEntry* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

}  // namespace sparsity::io

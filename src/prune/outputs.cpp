// Outputs: identity checks of every path, writers like the input's shards, publication in one window.
#include "prune/outputs.hpp"

#include <sys/stat.h>

#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "base/text.hpp"
#include "io/paths.hpp"
#include "sparsity/io/safetensors.hpp"

namespace sparsity::prune {
namespace {

using ::sparsity::detail::at_file;

[[noreturn]] void refuse(const std::string& what, const std::string& path) {
  throw Error(ErrorCode::InvalidArgument, what, {at_file(path)});
}

// What a path names: the existing file's (device, inode), or for a new file its directory's identity
// and its base name. Two paths with the same key are the same file.
using Key = std::tuple<uint64_t, uint64_t, std::string>;
std::optional<Key> key_of(const std::string& path) {
  if (auto id = io::file_id(path)) return Key{id->first, id->second, ""};
  if (auto dir = io::file_id(io::parent_dir(path))) return Key{dir->first, dir->second, io::base_name(path)};
  return std::nullopt;  // no such directory: creating the file reports it
}

}  // namespace

Outputs::Outputs(const io::Checkpoint& model, const std::vector<Target>& targets, const OutputPaths& paths)
    : paths_(paths) {
  // ---- which files the run writes ------------------------------------------------------------------
  if (!paths.output.empty() && io::is_index_path(paths.output) != model.sharded()) {
    refuse(model.sharded() ? "a sharded model needs --output ending in .json (the index; shards are written "
                             "beside it)"
                           : "a single-file model needs --output naming a file, not an index .json",
           paths.output);
  }
  struct Planned {
    std::string path, flag;
  };
  std::vector<Planned> outs;
  if (!paths.output.empty()) {
    outs.push_back({paths.output, "--output"});
    if (model.sharded()) {
      for (const auto& name : model.shard_names()) {
        outs.push_back({io::parent_dir(paths.output) + "/" + name, "--output"});
      }
    }
  }
  if (!paths.masks.empty()) outs.push_back({paths.masks, "--masks"});
  if (!paths.state.empty()) outs.push_back({paths.state, "--state"});

  // ---- identity checks ------------------------------------------------------------------------------
  std::map<Key, std::string> inputs;  // key -> what it is
  for (size_t s = 0; s < model.shards().size(); ++s) {
    if (auto k = key_of(model.shards()[s]->path())) inputs.emplace(*k, model.shards()[s]->path());
  }
  if (model.sharded()) {
    if (auto k = key_of(model.path())) inputs.emplace(*k, model.path());
  }
  // OUT == MODEL (the same file, or the same index) replaces the model; then its shards may be rewritten.
  const auto model_key = key_of(model.path());
  const bool replaces_model = !paths.output.empty() && model_key && key_of(paths.output) == model_key;
  std::map<Key, std::string> claimed;
  for (const auto& o : outs) {
    if (o.path.empty()) refuse(o.flag + " is empty", o.path);
    struct stat st {};
    if (::stat(o.path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      refuse(o.flag + " names something that is not a regular file", o.path);
    }
    const auto k = key_of(o.path);
    if (!k) continue;
    if (auto c = claimed.find(*k); c != claimed.end()) {
      refuse(o.flag + " and " + c->second + " name the same file", o.path);
    }
    if (auto in = inputs.find(*k); in != inputs.end() && !(o.flag == "--output" && replaces_model)) {
      refuse(o.flag + " would overwrite the model's file " + ::sparsity::detail::quote(in->second), o.path);
    }
    claimed.emplace(*k, o.flag);
  }
  if (!paths.resume.empty()) {
    if (auto k = key_of(paths.resume)) {
      if (auto c = claimed.find(*k); c != claimed.end() && c->second != "--state") {
        refuse("--resume names the file of " + c->second, paths.resume);
      }
    }
  }

  // ---- writers ---------------------------------------------------------------------------------------
  if (!paths.output.empty()) {
    for (size_t s = 0; s < model.shards().size(); ++s) {
      const std::string path =
          model.sharded() ? io::parent_dir(paths.output) + "/" + model.shard_names()[s] : paths.output;
      model_.push_back(model.shards()[s]->create_like(path));
      model_.back()->set_durable(paths.durable);
      // Files a format writes beside the model (an ONNX model's external data) obey the same rules.
      for (const auto& extra : model_.back()->paths()) {
        if (extra == path) continue;
        const auto k = key_of(extra);
        if (!k) continue;
        if (auto c = claimed.find(*k); c != claimed.end()) {
          refuse(c->second + " names a file the output writes beside the model", extra);
        }
        if (auto in = inputs.find(*k); in != inputs.end() && !replaces_model) {
          refuse("--output would overwrite the model's file " + ::sparsity::detail::quote(in->second), extra);
        }
        claimed.emplace(*k, "--output");
      }
    }
  }
  if (!paths.masks.empty()) {
    std::vector<io::TensorSpec> specs;
    for (const auto& t : targets) specs.push_back({t.fqn, "U8", t.source->info->shape});
    masks_ = std::make_unique<io::SafetensorsWriter>(paths.masks, std::move(specs));
    masks_->set_durable(paths.durable);
  }
  if (model.sharded() && !paths.output.empty()) {
    index_ = std::make_unique<io::AtomicFile>(paths.output, paths.durable);
    index_->write(model.index_text().data(), model.index_text().size(), 0);
  }
}

Outputs::~Outputs() = default;

void Outputs::publish(const SparsifierCheckpoint* state) {
  for (auto& w : model_) w->finish();
  if (masks_) masks_->finish();
  if (index_) index_->finish();
  std::unique_ptr<io::SafetensorsWriter> state_writer;
  if (state != nullptr && !paths_.state.empty()) state_writer = stage_checkpoint(paths_.state, *state, paths_.durable);
  // Everything that needs a hidden name gets it first; then the publications follow back to back (the
  // only window in which a killed run leaves some outputs but not all), and the directories are synced
  // last.
  std::vector<io::TensorWriter*> writers;
  for (auto& w : model_) writers.push_back(w.get());
  if (masks_) writers.push_back(masks_.get());
  if (state_writer) writers.push_back(state_writer.get());
  for (auto* w : writers) w->stage();
  if (index_) index_->stage();
  std::set<std::string> dirs;
  for (auto& w : model_) w->publish(/*sync_dir=*/false);
  if (index_) index_->publish(/*sync_dir=*/false);
  for (size_t i = model_.size(); i < writers.size(); ++i) writers[i]->publish(/*sync_dir=*/false);
  if (paths_.durable) {
    for (auto* w : writers) {
      for (const auto& d : w->directories()) dirs.insert(d);
    }
    if (index_) dirs.insert(io::parent_dir(paths_.output));
    io::sync_directories(std::vector<std::string>(dirs.begin(), dirs.end()));
  }
}

}  // namespace sparsity::prune

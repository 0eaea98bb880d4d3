// prune_checkpoint: validated, streaming, multi-threaded pruning of a checkpoint with atomic outputs.
#include "sparsity/prune/engine.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "base/text.hpp"
#include "base/scratch.hpp"
#include "sparsity/prune/state_file.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/sparsifier/fake_sparsity.hpp"

namespace sparsity::io {
namespace {

using ::sparsity::detail::printable;
using ::sparsity::detail::quote;

[[noreturn]] void bad(const std::string& what, const std::string& where) {
  throw Error(ErrorCode::InvalidArgument, what + " (" + where + ")");
}

bool prunable(const TensorInfo& info) {
  return info.dtype && is_floating(*info.dtype);
}

std::vector<std::string> split_fqn(const std::string& name) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t dot = name.find('.', start);
    parts.push_back(name.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

// make_config_from_model over the module tree that the tensor names describe: a module is "Linear"
// (supported, not descended) when it holds a 2-D floating `weight`; LIFO traversal as torch.
std::vector<std::string> default_fqns(const Checkpoint& model) {
  struct Node {
    std::vector<std::pair<std::string, size_t>> children;
    bool linear = false;
  };
  std::vector<Node> nodes(1);
  for (const auto& e : model.entries()) {
    const auto parts = split_fqn(e.info->name);
    bool ok = true;
    for (const auto& p : parts) ok = ok && !p.empty();
    if (!ok) continue;  // names with empty parts describe no module
    size_t cur = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      size_t next = SIZE_MAX;
      for (const auto& [n, idx] : nodes[cur].children) {
        if (n == parts[i]) next = idx;
      }
      if (next == SIZE_MAX) {
        next = nodes.size();
        nodes[cur].children.emplace_back(parts[i], next);
        nodes.emplace_back();
      }
      cur = next;
    }
    if (parts.size() > 1 && parts.back() == "weight" && e.info->shape.size() == 2 && prunable(*e.info)) {
      nodes[cur].linear = true;
    }
  }
  std::vector<std::string> out;
  std::vector<std::pair<size_t, std::string>> stack = {{0, ""}};
  while (!stack.empty()) {
    auto [idx, prefix] = stack.back();
    stack.pop_back();
    for (const auto& [name, child] : nodes[idx].children) {
      const std::string fqn = prefix.empty() ? name : prefix + "." + name;
      if (nodes[child].linear) {
        out.push_back(fqn + ".weight");
      } else {
        stack.emplace_back(child, fqn);
      }
    }
  }
  return out;
}

// Scheduler state of the whole model from per-tensor schedulers (one group each): per-group lists
// are concatenated, scalars are shared.
Json merge_scheduler_states(const std::vector<Json>& parts) {
  if (parts.empty() || parts[0].is_null()) return Json();
  Json out = Json::object();
  for (const auto& [key, value] : parts[0].items()) {
    if (value.is_array() && value.size() == 1) {
      Json all = Json::array();
      for (const auto& p : parts) all.push_back(p.at(key).at(0));
      out[key] = all;
    } else {
      out[key] = value;
    }
  }
  return out;
}

Json split_scheduler_state(const Json& state, size_t i, size_t n) {
  Json out = Json::object();
  for (const auto& [key, value] : state.items()) {
    if (value.is_array() && value.size() == n) {
      out[key] = Json::array({value[i]});
    } else {
      out[key] = value;
    }
  }
  return out;
}

// A small text file written to a hidden temporary name and renamed into place on publish().
class PendingTextFile {
 public:
  PendingTextFile(const std::string& path, const std::string& text, bool durable) : path_(path) {
    temp_ = parent_dir(path) + "/." + path.substr(path.find_last_of('/') + 1) + ".tmp-XXXXXX";
    std::vector<char> buf(temp_.begin(), temp_.end());
    buf.push_back('\0');
    const int fd = ::mkostemp(buf.data(), O_CLOEXEC);
    if (fd < 0) bad(std::string("cannot create a temporary file: ") + std::strerror(errno), printable(path));
    temp_ = buf.data();
    ::fchmod(fd, 0644);
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        ::close(fd);
        ::unlink(temp_.c_str());
        throw Error(ErrorCode::Io, std::string("cannot write: ") + std::strerror(errno) + " (" + printable(path) + ")");
      }
      done += static_cast<size_t>(w);
    }
    const bool synced = !durable || ::fsync(fd) == 0;
    ::close(fd);
    if (!synced) {
      ::unlink(temp_.c_str());
      throw Error(ErrorCode::Io, "cannot flush to disk (" + printable(path) + ")");
    }
  }
  ~PendingTextFile() {
    if (!temp_.empty()) ::unlink(temp_.c_str());
  }
  void publish() {
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
      throw Error(ErrorCode::Io, std::string("cannot rename into place: ") + std::strerror(errno) + " (" + printable(path_) + ")");
    }
    temp_.clear();
  }

 private:
  std::string path_, temp_;
};

// Identity of a path for "same file" checks: the real directory plus the base name.
std::string path_key(const std::string& path) {
  char buf[PATH_MAX];
  const std::string dir = parent_dir(path);
  const std::string base = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  if (::realpath(dir.c_str(), buf) == nullptr) return path;
  return std::string(buf) + "/" + base;
}

std::vector<SafetensorsWriter*> out_writers_first(const std::vector<SafetensorsWriter*>& all, size_t n) {
  return std::vector<SafetensorsWriter*>(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
}

struct TargetResult {
  PackedMask bits;
  Json group;
  Json values;
  Json scheduler;
  LayerReport report;
};

}  // namespace

std::vector<Json> resolve_targets(const Checkpoint& model, const PruneConfig& config, const std::string& where) {
  std::vector<Json> entries;
  if (!config.config) {
    for (const auto& fqn : default_fqns(model)) entries.push_back(Json{{"tensor_fqn", fqn}});
    return entries;
  }
  for (size_t i = 0; i < config.config->size(); ++i) {
    const Json& e = (*config.config)[i];
    const std::string fqn = e.at("tensor_fqn").get<std::string>();
    const std::string key = printable(where) + ", key config[" + std::to_string(i) + "].tensor_fqn";
    const CheckpointEntry* ce = model.find(fqn);
    if (!ce) bad("tensor_fqn " + quote(fqn) + " is not a tensor of " + printable(model.path()), key);
    if (!prunable(*ce->info)) {
      bad("tensor " + quote(fqn) + " has dtype " + ce->info->dtype_name + "; only F32, F64, F16 and BF16 can be pruned", key);
    }
    if (ce->info->shape.size() != 2) {
      bad("tensor " + quote(fqn) + " has shape " + shape_to_string(ce->info->shape) + "; only 2-D tensors can be pruned", key);
    }
    for (const auto& part : split_fqn(fqn)) {
      if (part.empty()) bad("tensor_fqn " + quote(fqn) + " has an empty module name", key);
    }
    entries.push_back(e);
  }
  return entries;
}

// Working memory of one worker, reused across its tensors (no fresh pages per tensor) and freed when it
// ends: the mask, and the slices on their way to the outputs.
struct WorkerScratch {
  ::sparsity::detail::Scratch<uint8_t> mask, slice, mask_slice;
};

PruneReport prune_checkpoint(const PruneOptions& opt, const std::string& config_where) {
  using Clock = std::chrono::steady_clock;
  const Checkpoint model = Checkpoint::open(opt.model);
  const PruneConfig& cfg = opt.config;
  const std::vector<Json> targets = resolve_targets(model, cfg, config_where);
  // Fail on bad defaults before any work (the factory validates what the registry's checks cannot).
  make_sparsifier(cfg.sparsifier, cfg.defaults);

  // ---- outputs must not collide with each other or with the input -----------------------------------
  if (!opt.output.empty() && is_index_path(opt.output) != model.sharded()) {
    throw Error(ErrorCode::InvalidArgument,
                std::string(model.sharded() ? "a sharded model needs --output ending in .json (the index; shards are "
                                              "written beside it)"
                                            : "a single-file model needs --output naming a .safetensors file") +
                    " (" + printable(opt.output) + ")");
  }
  std::set<std::string> inputs;
  for (const auto& s : model.shards()) inputs.insert(path_key(s->path()));
  if (model.sharded()) inputs.insert(path_key(model.path()));
  std::map<std::string, std::string> claimed;
  auto claim = [&](const std::string& path, const std::string& flag, bool may_be_input) {
    if (path.empty()) return;
    const std::string k = path_key(path);
    if (claimed.count(k)) {
      throw Error(ErrorCode::InvalidArgument, flag + " and " + claimed[k] + " name the same file (" + printable(path) + ")");
    }
    if (!may_be_input && inputs.count(k)) {
      throw Error(ErrorCode::InvalidArgument, flag + " would overwrite the model (" + printable(path) + ")");
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      throw Error(ErrorCode::InvalidArgument, flag + " names something that is not a regular file (" + printable(path) + ")");
    }
    claimed[k] = flag;
  };
  std::vector<std::string> out_shards;
  if (!opt.output.empty()) {
    if (model.sharded()) {
      claim(opt.output, "--output", true);
      for (const auto& name : model.shard_names()) {
        out_shards.push_back(parent_dir(opt.output) + "/" + name);
        claim(out_shards.back(), "--output", true);
      }
    } else {
      out_shards.push_back(opt.output);
      claim(opt.output, "--output", true);
    }
  }
  claim(opt.masks, "--masks", false);
  claim(opt.state, "--state", false);
  if (!opt.resume.empty() && claimed.count(path_key(opt.resume)) && claimed[path_key(opt.resume)] != "--state") {
    throw Error(ErrorCode::InvalidArgument, "--resume names an output file (" + printable(opt.resume) + ")");
  }

  // ---- resumed state ---------------------------------------------------------------------------------
  SparsifierCheckpoint resumed;
  std::map<std::string, size_t> resumed_group, resumed_mask;
  if (!opt.resume.empty()) {
    resumed = load_checkpoint(opt.resume);
    const std::string rw = printable(opt.resume);
    if (resumed.sparsifier != cfg.sparsifier) {
      bad("the state was made by " + resumed.sparsifier + " but the config asks for " + cfg.sparsifier,
          rw + ", key __metadata__.sparsifier");
    }
    for (size_t i = 0; i < resumed.groups.size(); ++i) resumed_group[resumed.groups[i]["tensor_fqn"]] = i;
    for (size_t i = 0; i < resumed.masks.size(); ++i) resumed_mask[resumed.masks[i].first] = i;
    if (resumed.groups.size() != targets.size()) {
      bad("the state has " + std::to_string(resumed.groups.size()) + " groups but the config prunes " +
              std::to_string(targets.size()) + " tensors",
          rw + ", key __metadata__.groups");
    }
    if (resumed.scheduler.is_null() != cfg.scheduler.is_null()) {
      bad(cfg.scheduler.is_null() ? "the state holds a scheduler but the config has none"
                                  : "the config has a scheduler but the state holds none",
          rw + ", key __metadata__.scheduler");
    }
    for (const auto& t : targets) {
      const std::string fqn = t["tensor_fqn"];
      if (!resumed_group.count(fqn) || !resumed_mask.count(fqn)) {
        bad("the state has no group or mask for tensor " + quote(fqn), rw + ", tensor " + quote(fqn));
      }
      if (resumed.masks[resumed_mask[fqn]].second.shape != model.find(fqn)->info->shape) {
        bad("mask shape " + shape_to_string(resumed.masks[resumed_mask[fqn]].second.shape) + " differs from tensor shape " +
                shape_to_string(model.find(fqn)->info->shape),
            rw + ", tensor " + quote(fqn));
      }
    }
  }

  // ---- writers (hidden until published) ------------------------------------------------------------------
  std::vector<std::unique_ptr<SafetensorsWriter>> out_writers;
  for (size_t s = 0; s < out_shards.size(); ++s) {
    std::vector<TensorSpec> specs;
    for (const auto& info : model.shards()[s]->tensors()) specs.push_back({info.name, info.dtype_name, info.shape});
    out_writers.push_back(std::make_unique<SafetensorsWriter>(out_shards[s], std::move(specs), model.shards()[s]->metadata()));
    out_writers.back()->set_durable(opt.durable);
  }
  std::unique_ptr<SafetensorsWriter> mask_writer;
  if (!opt.masks.empty()) {
    std::vector<TensorSpec> specs;
    for (const auto& t : targets) {
      const std::string fqn = t["tensor_fqn"];
      specs.push_back({fqn, "U8", model.find(fqn)->info->shape});
    }
    mask_writer = std::make_unique<SafetensorsWriter>(opt.masks, std::move(specs));
    mask_writer->set_durable(opt.durable);
  }

  // ---- jobs: every tensor of the model; targets run the sparsifier ------------------------------------
  std::map<std::string, size_t> target_of;
  for (size_t i = 0; i < targets.size(); ++i) target_of[targets[i]["tensor_fqn"]] = i;
  std::vector<TargetResult> results(targets.size());
  const auto& entries = model.entries();
  std::vector<size_t> local_index(entries.size());
  {
    std::vector<size_t> next(model.shards().size(), 0);
    for (size_t j = 0; j < entries.size(); ++j) local_index[j] = next[entries[j].shard]++;
  }

  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = opt.threads > 0 ? opt.threads : hw;
  const int workers = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(targets.size(), 1))));
  kernels::set_num_threads(std::max(1, threads / workers));
  BaseScheduler::set_warning_handler([](const std::string&) {});  // call order is ours and correct

  std::atomic<size_t> next_job{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex mu;
  uint64_t done_bytes = 0;
  const uint64_t total_bytes = std::max<uint64_t>(model.data_bytes(), 1);
  const int64_t steps_before = opt.resume.empty() ? 0 : resumed.steps;

  auto run_target = [&](const CheckpointEntry& e, size_t ti, size_t j, WorkerScratch& scratch) {
    const auto start = Clock::now();
    const TensorInfo& info = *e.info;
    const std::string fqn = info.name;
    TargetResult& res = results[ti];
    res.report.fqn = fqn;
    res.report.dtype = info.dtype_name;
    res.report.shape = info.shape;

    // The module tree down to this tensor, holding a read-only view of the mapped weight.
    const auto parts = split_fqn(fqn);
    auto root = std::make_shared<Module>("Model");
    ModulePtr cur = root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto child = std::make_shared<Module>(i + 2 == parts.size() ? "Linear" : "Module");
      cur->register_module(parts[i], child);
      cur = child;
    }
    e.file->prefetch(info);
    const Tensor weight = e.file->tensor(fqn);
    cur->register_parameter(parts.back(), weight);

    auto sparsifier = make_sparsifier(cfg.sparsifier, cfg.defaults);
    ConfigEntry entry(targets[ti]);
    const size_t n = static_cast<size_t>(info.numel());
    uint8_t* mask_buffer = scratch.mask.get(std::max<size_t>(n, 1));
    std::memset(mask_buffer, 1, n);
    entry.mask = Tensor::from_blob(static_cast<void*>(mask_buffer), info.shape, DType::u8);
    sparsifier->prepare(root, std::vector<ConfigEntry>{entry});
    std::unique_ptr<BaseScheduler> scheduler;
    if (!cfg.scheduler.is_null()) scheduler = make_scheduler(*sparsifier, cfg.scheduler);
    if (!opt.resume.empty()) {
      SparsifierStateDict sd;
      sd.groups.push_back(resumed.groups[resumed_group[fqn]]);
      TensorState st;
      st.mask = unpack_mask(resumed.masks[resumed_mask[fqn]].second);
      if (resumed.values.contains(fqn)) st.values = resumed.values[fqn];
      sd.state.emplace_back(fqn, st);
      sparsifier->load_state_dict(sd);
      if (scheduler) scheduler->load_state_dict(split_scheduler_state(resumed.scheduler, resumed_group[fqn], targets.size()));
    }
    for (int64_t s = 0; s < cfg.steps; ++s) {
      sparsifier->step();
      if (scheduler) scheduler->step();
      const Tensor m = sparsifier->state_of(fqn).mask;
      const Tensor mc = m.contiguous();
      int64_t kept;
      if (mc.dtype() == DType::u8 || mc.dtype() == DType::bool_) {
        kept = kernels::count_kept_bytes(static_cast<const uint8_t*>(mc.data_ptr()), n);
      } else {
        std::vector<uint8_t> b(n);
        kernels::mask_to_bytes(mc.dtype(), mc.data_ptr(), n, b.data());
        kept = kernels::count_kept_bytes(b.data(), n);
      }
      res.report.sparsity_per_step.push_back(n ? 1.0 - static_cast<double>(kept) / static_cast<double>(n) : 0.0);
    }

    // Mask as 0/1 bytes (whatever dtype the sparsifier left it in).
    Tensor mask = sparsifier->state_of(fqn).mask.contiguous();
    std::vector<uint8_t> own;
    const uint8_t* bytes;
    if (mask.dtype() == DType::u8 || mask.dtype() == DType::bool_) {
      bytes = static_cast<const uint8_t*>(mask.data_ptr());
    } else {
      own.resize(n);
      kernels::mask_to_bytes(mask.dtype(), mask.data_ptr(), n, own.data());
      bytes = own.data();
    }
    // Squash: the masked weight (pruned elements +0.0), streamed in slices straight to the output.
    if (!out_writers.empty()) {
      const size_t esize = size_of(*info.dtype);
      const size_t slice = std::max<size_t>(1, (4u << 20) / esize);
      uint8_t* buf = scratch.slice.get(std::max<size_t>(std::min(n, slice) * esize, 1));
      const uint8_t* src = e.file->bytes(info);
      for (size_t off = 0; off < n; off += slice) {
        const size_t cnt = std::min(slice, n - off);
        kernels::apply_mask_bytes(*info.dtype, src + off * esize, bytes + off, buf, cnt);
        out_writers[e.shard]->write(local_index[j], off * esize, buf, cnt * esize);
      }
    }
    if (mask_writer) {
      // U8 masks hold exactly 0 or 1.
      constexpr size_t kSlice = 4u << 20;
      uint8_t* norm = scratch.mask_slice.get(std::max<size_t>(std::min(n, kSlice), 1));
      for (size_t off = 0; off < n; off += kSlice) {
        const size_t cnt = std::min(kSlice, n - off);
        for (size_t k = 0; k < cnt; ++k) norm[k] = bytes[off + k] != 0;
        mask_writer->write(ti, off, norm, cnt);
      }
    }
    if (!opt.state.empty()) {
      res.bits.shape = info.shape;
      res.bits.bits.assign((n + 7) / 8, 0);
      kernels::bytes_to_bits(bytes, n, res.bits.bits.data());
      const SparsifierStateDict sd = sparsifier->state_dict();
      res.group = sd.groups.at(0);
      if (!sd.state.empty()) res.values = sd.state[0].second.values;
      if (scheduler) res.scheduler = scheduler->state_dict();
    }
    // Let the disk start on this tensor while the next one is computed.
    if (!out_writers.empty()) out_writers[e.shard]->start_writeback();
    if (mask_writer) mask_writer->start_writeback();
    e.file->release(info);
    res.report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  };

  auto worker = [&]() {
    WorkerScratch scratch;
    for (;;) {
      if (failed.load()) return;
      const size_t j = next_job.fetch_add(1);
      if (j >= entries.size()) return;
      const CheckpointEntry& e = entries[j];
      try {
        auto t = target_of.find(e.info->name);
        if (t != target_of.end()) {
          try {
            run_target(e, t->second, j, scratch);
          } catch (const Error& err) {
            std::string msg = err.what();
            // Library messages without a location get the tensor's.
            if (msg.empty() || msg.back() != ')') msg += " (" + printable(e.file->path()) + ", tensor " + quote(e.info->name) + ")";
            throw Error(err.code(), msg);
          }
        } else if (!out_writers.empty()) {
          out_writers[e.shard]->copy_from(local_index[j], *e.file, *e.info);
        }
        if (opt.progress) {
          std::lock_guard<std::mutex> lock(mu);
          done_bytes += e.info->nbytes();
          opt.progress(done_bytes, total_bytes);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first_error) first_error = std::current_exception();
        failed = true;
        return;
      }
    }
  };
  {
    std::vector<std::thread> pool;
    for (int w = 1; w < workers; ++w) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
  }
  if (first_error) std::rethrow_exception(first_error);

  // ---- flush everything, then make it visible ---------------------------------------------------------
  for (auto& w : out_writers) w->finish();
  if (mask_writer) mask_writer->finish();
  std::unique_ptr<SafetensorsWriter> state_writer;
  PruneReport report;
  report.steps_done = steps_before + cfg.steps;
  if (!opt.state.empty()) {
    SparsifierCheckpoint c;
    c.sparsifier = cfg.sparsifier;
    c.defaults = make_sparsifier(cfg.sparsifier, cfg.defaults)->defaults();
    std::vector<Json> sched;
    for (size_t i = 0; i < results.size(); ++i) {
      c.groups.push_back(results[i].group);
      c.masks.emplace_back(targets[i]["tensor_fqn"].get<std::string>(), std::move(results[i].bits));
      if (!results[i].values.empty()) c.values[targets[i]["tensor_fqn"].get<std::string>()] = results[i].values;
      sched.push_back(results[i].scheduler);
    }
    c.scheduler = cfg.scheduler.is_null() ? Json() : (results.empty() ? (opt.resume.empty() ? Json::object() : resumed.scheduler)
                                                                      : merge_scheduler_states(sched));
    c.steps = report.steps_done;
    state_writer = stage_checkpoint(opt.state, c, opt.durable);
  }
  std::unique_ptr<PendingTextFile> index_file;
  if (model.sharded() && !opt.output.empty()) index_file = std::make_unique<PendingTextFile>(opt.output, model.index_text(), opt.durable);
  // Every output gets its hidden name first; then the renames follow back to back (the only window in
  // which a killed run could leave some outputs but not all), and the directories are synced last.
  std::vector<SafetensorsWriter*> all;
  for (auto& w : out_writers) all.push_back(w.get());
  if (mask_writer) all.push_back(mask_writer.get());
  if (state_writer) all.push_back(state_writer.get());
  for (auto* w : all) w->stage();
  for (auto* w : out_writers_first(all, out_writers.size())) w->publish(/*sync_dir=*/false);
  if (index_file) index_file->publish();
  for (size_t i = out_writers.size(); i < all.size(); ++i) all[i]->publish(/*sync_dir=*/false);
  if (opt.durable) {
    std::set<std::string> dirs;
    for (auto* w : all) dirs.insert(parent_dir(w->path()));
    if (index_file) dirs.insert(parent_dir(opt.output));
    for (const auto& d : dirs) {
      const int dfd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
      }
    }
  }

  for (auto& r : results) report.layers.push_back(std::move(r.report));
  return report;
}

}  // namespace sparsity::io

// prune::run: resolve targets, plan outputs, run the per-tensor work on a pool, publish.
#include "sparsity/prune/engine.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include "base/text.hpp"
#include "prune/outputs.hpp"
#include "prune/pool.hpp"
#include "prune/global_scope.hpp"
#include "prune/targets.hpp"
#include "prune/tensor_job.hpp"
#include "sparsity/io/checkpoint.hpp"
#include "sparsity/io/orientation.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"

namespace sparsity::prune {
namespace {

using ::sparsity::detail::at_file;
using ::sparsity::detail::at_key;
using ::sparsity::detail::at_tensor;
using ::sparsity::detail::quote;

// ---- resuming --------------------------------------------------------------------------------------

// The scheduler state of a run is the per-tensor schedulers' states (one group each) merged: per-group
// lists concatenated in target order, scalars shared.
Json merge_scheduler_states(const std::vector<Json>& parts) {
  if (parts.empty() || parts[0].is_null()) return Json();
  Json out = Json::object();
  for (const auto& [key, value] : parts[0].items()) {
    if (value.is_array() && value.size() == 1) {
      Json all = Json::array();
      for (const auto& p : parts) all.push_back(p.at(key).at(0));
      out[key] = std::move(all);
    } else {
      out[key] = value;
    }
  }
  return out;
}

Json split_scheduler_state(const Json& state, size_t i, size_t n) {
  Json out = Json::object();
  for (const auto& [key, value] : state.items()) {
    out[key] = value.is_array() && value.size() == n ? Json::array({value[i]}) : value;
  }
  return out;
}

// The resumed state's part for every target, after checking that it continues this config and model.
std::vector<ResumedTensor> resume_parts(const SparsifierCheckpoint& st, const std::string& path,
                                        const PruneConfig& cfg, const std::vector<Target>& targets,
                                        int64_t steps) {
  auto refuse = [&](const std::string& what, const std::string& where) {
    throw Error(ErrorCode::InvalidArgument, what, {at_file(path), where});
  };
  if (st.sparsifier != cfg.sparsifier) {
    refuse("the state was made by " + st.sparsifier + " but the config asks for " + cfg.sparsifier,
           at_key("__metadata__.sparsifier"));
  }
  if (st.groups.size() != targets.size()) {
    refuse("the state has " + std::to_string(st.groups.size()) + " groups but the config prunes " +
               std::to_string(targets.size()) + " tensors",
           at_key("__metadata__.groups"));
  }
  if (st.scheduler.is_null() != cfg.scheduler.is_null()) {
    refuse(cfg.scheduler.is_null() ? "the state holds a scheduler but the config has none"
                                   : "the config has a scheduler but the state holds none",
           at_key("__metadata__.scheduler"));
  }
  if (st.steps > kMaxSteps - steps) {
    refuse("the state's " + std::to_string(st.steps) + " steps and " + std::to_string(steps) +
               " more exceed " + std::to_string(kMaxSteps),
           at_key("__metadata__.steps"));
  }
  std::map<std::string, size_t> group_of, mask_of;
  for (size_t i = 0; i < st.groups.size(); ++i) group_of[st.groups[i]["tensor_fqn"].get<std::string>()] = i;
  for (size_t i = 0; i < st.masks.size(); ++i) mask_of[st.masks[i].first] = i;
  std::vector<ResumedTensor> parts(targets.size());
  for (size_t t = 0; t < targets.size(); ++t) {
    const std::string& fqn = targets[t].fqn;
    const auto g = group_of.find(fqn);
    const auto m = mask_of.find(fqn);
    if (g == group_of.end() || m == mask_of.end()) {
      refuse("the state has no group or mask for tensor " + quote(fqn), at_tensor(fqn));
    }
    const PackedMask& mask = st.masks[m->second].second;
    if (mask.shape != targets[t].source->info->shape) {
      refuse("mask shape " + shape_to_string(mask.shape) + " differs from tensor shape " +
                 shape_to_string(targets[t].source->info->shape),
             at_tensor(fqn));
    }
    parts[t].group = st.groups[g->second];
    parts[t].mask = &mask;
    if (st.values.contains(fqn)) parts[t].values = st.values[fqn];
    if (!cfg.scheduler.is_null()) parts[t].scheduler = split_scheduler_state(st.scheduler, g->second, targets.size());
  }
  return parts;
}

// Memory a target's work holds while it runs: its mapped weight, the u8 mask, and about a byte per element
// of the sparsifier's working memory (WeightNorm's tile keys and bits).
uint64_t footprint(const io::TensorInfo& info) { return info.nbytes() + 2 * info.numel(); }

}  // namespace

Report run(const Options& opt) {
  const PruneConfig& cfg = opt.config;
  const io::Checkpoint model = io::Checkpoint::open(opt.model);

  // ---- 1. targets --------------------------------------------------------------------------------
  const auto sparsifier = make_sparsifier(cfg.sparsifier, cfg.defaults);  // bad defaults fail before work
  Selection selection = select_targets(model, cfg, *sparsifier, opt.config_where);
  const std::vector<Target>& targets = selection.targets;

  // ---- 2. outputs and resumed state ----------------------------------------------------------------
  Outputs outputs(model, targets, {opt.output, opt.masks, opt.state, opt.resume, opt.durable});
  SparsifierCheckpoint resumed;
  std::vector<ResumedTensor> resumed_parts;
  if (!opt.resume.empty()) {
    resumed = load_checkpoint(opt.resume);
    resumed_parts = resume_parts(resumed, opt.resume, cfg, targets, cfg.steps);
  }

  // WandaSparsifier's inputs: one 1-D F32 norm per target, as long as its input width.
  std::vector<Tensor> norms(targets.size());
  const bool wanda = cfg.sparsifier == "WandaSparsifier";
  SPARSITY_CHECK_AT(opt.activations.empty() || wanda, InvalidArgument, {at_file(opt.activations)},
                    "activation norms are read by WandaSparsifier only, and the config asks for ", cfg.sparsifier);
  SPARSITY_CHECK_AT(!wanda || !opt.activations.empty(), InvalidArgument, {at_file(opt.config_where)},
                    "WandaSparsifier needs the activation norms of its tensors (--activations NORMS.safetensors)");
  std::shared_ptr<io::TensorFile> norms_file;
  if (wanda) {
    norms_file = io::open_tensor_file(opt.activations);
    for (size_t i = 0; i < targets.size(); ++i) {
      const io::TensorInfo* n = norms_file->find(targets[i].fqn);
      const std::vector<std::string> at = {at_file(opt.activations), at_tensor(targets[i].fqn)};
      SPARSITY_CHECK_AT(n != nullptr, InvalidArgument, at, "no activation norms for tensor ", quote(targets[i].fqn));
      const Shape dims = io::torch_shape(*targets[i].source->info);
      const int64_t width = dims.size() == 2 ? dims[1] : -1;
      SPARSITY_CHECK_AT(n->dtype == DType::f32 && n->shape == Shape{width}, InvalidArgument, at,
                        "activation norms of ", quote(targets[i].fqn), " must be F32 [", width, "], got ",
                        n->dtype_name, " ", shape_to_string(n->shape));
      norms[i] = norms_file->tensor(targets[i].fqn);
    }
  }

  // ---- 3. per-tensor work --------------------------------------------------------------------------
  // Jobs are every tensor of the model in file order (sequential reads and writes); a target runs the
  // lifecycle, any other tensor is copied.
  const auto& entries = model.entries();
  std::map<std::string, size_t> target_of;
  for (size_t i = 0; i < targets.size(); ++i) target_of[targets[i].fqn] = i;
  std::vector<size_t> shard_index(entries.size());  // index of entry j inside its shard
  {
    std::vector<size_t> next(model.shards().size(), 0);
    for (size_t j = 0; j < entries.size(); ++j) shard_index[j] = next[entries[j].shard]++;
  }
  // Threads: as many workers as the memory budget lets run at once (peak memory stays below the model's
  // size whatever the thread count), the remaining threads inside each tensor's kernels.
  uint64_t largest = 1;
  for (const auto& t : targets) largest = std::max(largest, footprint(*t.source->info));
  // What runs at once stays below the model's size (peak memory at most ~the model, for any thread count).
  const uint64_t budget = std::max(largest, model.data_bytes() / 10 * 9);
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = opt.threads > 0 ? opt.threads : hw;
  const int workers = static_cast<int>(std::max<uint64_t>(
      1, std::min<uint64_t>({static_cast<uint64_t>(threads), std::max<size_t>(targets.size(), 1),
                             budget / largest})));
  BaseScheduler::set_warning_handler([](const std::string&) {});  // the call order here is right

  // The global scope: each target's share of one ranking, found first (one target at a time, every
  // thread in its kernels); the pool then prunes each target's share.
  std::vector<int64_t> shares(targets.size(), -1);
  if (cfg.scope == "global") {
    WorkerScratch ranking_scratch;
    shares = global_shares(targets, cfg, resumed_parts, opt.config_where, threads, ranking_scratch);
  }
  kernels::set_num_threads(std::max(1, threads / workers));

  std::vector<TensorResult> results(targets.size());
  std::vector<uint64_t> copied_zeros(entries.size(), 0);  // zeros of the floating tensors copied as they are
  std::vector<WorkerScratch> scratch(static_cast<size_t>(workers));
  std::mutex progress_mu;
  uint64_t done_bytes = 0;
  const uint64_t total_bytes = std::max<uint64_t>(model.data_bytes(), 1);
  run_pool(
      entries.size(), workers, budget,
      [&](size_t j) {
        const auto t = target_of.find(entries[j].info->name);
        return t == target_of.end() ? uint64_t{0} : footprint(*entries[j].info);
      },
      [&](size_t j, int w) {
        const io::CheckpointEntry& e = entries[j];
        io::TensorWriter* out = outputs.model_writer(e.shard);
        try {
          if (const auto t = target_of.find(e.info->name); t != target_of.end()) {
            const size_t ti = t->second;
            TensorSinks sinks{out, shard_index[j], outputs.masks(), ti, outputs.wants_state()};
            results[ti] = prune_tensor(targets[ti], cfg, resumed_parts.empty() ? nullptr : &resumed_parts[ti],
                                       norms[ti], shares[ti], sinks, scratch[static_cast<size_t>(w)]);
          } else {
            if (e.info->dtype && is_floating(*e.info->dtype)) {
              copied_zeros[j] = count_zeros(*e.file, *e.info, scratch[static_cast<size_t>(w)]);
            }
            if (out != nullptr) out->copy_from(shard_index[j], *e.file, *e.info);
          }
        } catch (const Error& err) {
          // Library messages without a location get the tensor's.
          throw err.at({at_file(e.file->path()), at_tensor(e.info->name)});
        }
        if (opt.progress) {
          std::lock_guard<std::mutex> lock(progress_mu);
          done_bytes += e.info->nbytes();
          opt.progress(done_bytes, total_bytes);
        }
      });

  // ---- 4. publication --------------------------------------------------------------------------------
  Report report;
  report.steps_done = (opt.resume.empty() ? 0 : resumed.steps) + cfg.steps;
  if (outputs.wants_state()) {
    SparsifierCheckpoint c;
    c.sparsifier = cfg.sparsifier;
    c.defaults = sparsifier->defaults();
    std::vector<Json> schedulers;
    for (size_t i = 0; i < results.size(); ++i) {
      c.groups.push_back(results[i].group);
      c.masks.emplace_back(targets[i].fqn, std::move(results[i].bits));
      if (!results[i].values.empty()) c.values[targets[i].fqn] = results[i].values;
      schedulers.push_back(results[i].scheduler);
    }
    if (!cfg.scheduler.is_null()) {
      c.scheduler = !results.empty() ? merge_scheduler_states(schedulers)
                                     : (opt.resume.empty() ? Json::object() : resumed.scheduler);
    }
    c.steps = report.steps_done;
    outputs.publish(&c);
  } else {
    outputs.publish(nullptr);
  }
  for (auto& r : results) report.layers.push_back(std::move(r.report));
  report.skipped = std::move(selection.skipped);
  for (size_t j = 0; j < entries.size(); ++j) {
    if (!entries[j].info->dtype || !is_floating(*entries[j].info->dtype)) continue;
    report.parameters += entries[j].info->numel();
    report.zeros_before += copied_zeros[j];
    report.zeros_after += copied_zeros[j];
  }
  for (const auto& l : report.layers) {
    report.zeros_before += l.zeros_before;
    report.zeros_after += l.zeros_after;
  }
  return report;
}

}  // namespace sparsity::prune

// The "global" scope of a prune configuration: one ranking of every target's blocks, streamed tensor by tensor.
#include "prune/global_scope.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "base/text.hpp"
#include "sparsity/kernels/global_threshold.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

namespace sparsity::prune {
namespace {

using detail::at_file;
using detail::at_tensor;
using detail::quote;

// Tiles of a target's sample: enough to place the window, few enough that a tensor's sample reads a
// small part of it.
constexpr size_t kSampleTiles = 2048;

WeightNormSparsifier& weight_norm(TensorLifecycle& lc) {
  auto* wn = dynamic_cast<WeightNormSparsifier*>(lc.sparsifier.get());
  SPARSITY_CHECK(wn != nullptr, Internal, "a global ranking of ", lc.sparsifier->class_name());
  return *wn;
}

}  // namespace

std::vector<int64_t> global_shares(const std::vector<Target>& targets, const PruneConfig& config,
                                   const std::vector<ResumedTensor>& resumed, const std::string& config_where,
                                   int threads, WorkerScratch& scratch) {
  // parse_prune_config refused other sparsifiers and step counts.
  SPARSITY_CHECK(config.steps == 1, Internal, "a global ranking over ", config.steps, " steps");
  kernels::set_num_threads(threads);
  const Tensor none;
  // A target's pages are dropped from the resident set after each visit; a visit that reads all of them
  // maps them in one call first (a sample reads a few runs of blocks: those fault in by themselves).
  auto visit = [&](size_t i, bool reads_all, auto&& work) {
    const Target& t = targets[i];
    if (reads_all) t.source->file->prefetch(*t.source->info);
    try {
      TensorLifecycle lc = prepare_tensor(t, config, resumed.empty() ? nullptr : &resumed[i], none, scratch);
      work(weight_norm(lc));
    } catch (const Error& err) {
      throw err.at({at_file(t.source->file->path()), at_tensor(t.fqn)});
    }
    t.source->file->release(*t.source->info);
  };

  // The split: k = round-half-even(level x all blocks), each target within its bounds; a sample of each
  // target's scores places the first round's window.
  std::vector<kernels::GlobalTensor> specs(targets.size());
  std::vector<std::vector<double>> samples(targets.size());
  double level = 0;
  uint64_t all = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    visit(i, /*reads_all=*/false, [&](WeightNormSparsifier& wn) {
      const double l = wn.groups().at(0).config.value("sparsity_level", 0.0);
      if (i == 0) level = l;
      SPARSITY_CHECK_AT(l == level, InvalidArgument,
                        (std::vector<std::string>{at_file(config_where), at_tensor(targets[i].fqn)}),
                        "a global ranking needs one sparsity_level, but ", quote(targets[i].fqn), " has ", l,
                        " and ", quote(targets[0].fqn), " has ", level);
      specs[i] = wn.ranked_blocks();
      samples[i] = wn.sample_block_scores(kSampleTiles);
      all += specs[i].tiles;
    });
  }
  const double total = std::nearbyint(std::min(1.0, std::max(0.0, level)) * static_cast<double>(all));
  kernels::GlobalThreshold ranking(specs, static_cast<uint64_t>(total));
  if (!ranking.done()) {
    for (size_t i = 0; i < targets.size(); ++i) ranking.sample(i, samples[i].data(), samples[i].size());
    do {
      for (size_t i = 0; i < targets.size(); ++i) {
        visit(i, /*reads_all=*/true, [&](WeightNormSparsifier& wn) { wn.add_block_scores(ranking, i); });
      }
    } while (!ranking.finish());
  }
  std::vector<int64_t> shares(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) shares[i] = static_cast<int64_t>(ranking.tiles_to_prune(i));
  return shares;
}

}  // namespace sparsity::prune

// The "global" scope of a prune configuration: one ranking of every target's blocks, streamed tensor by tensor.
#pragma once

#include <cstdint>
#include <vector>

#include "prune/tensor_job.hpp"

namespace sparsity::prune {

/// Each target's share of one global ranking (blocks to prune, for prune_tensor), as a global-scope
/// WeightNormSparsifier over all the targets would split k = round-half-even(level x all blocks):
/// the k smallest block scores of all targets together, bounded per target by its group's min_sparsity /
/// max_sparsity. Targets are visited one at a time (a sample of each, then usually one round of all
/// their scores), each on a fresh prepare_tensor, its pages released after; memory beyond one target's
/// is the ranking's window of candidate scores. The kernels run on `threads`.
/// The configuration's sparsifier ranks globally and runs one step (parse_prune_config's checks);
/// InvalidArgument naming both tensors when two targets have different sparsity_level.
std::vector<int64_t> global_shares(const std::vector<Target>& targets, const PruneConfig& config,
                                   const std::vector<ResumedTensor>& resumed, const std::string& config_where,
                                   int threads, WorkerScratch& scratch);

}  // namespace sparsity::prune

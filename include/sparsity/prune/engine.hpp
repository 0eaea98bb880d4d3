// prune::run: out-of-core pruning of a checkpoint, the engine behind `sparsity prune` and `sparsity demo`.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sparsity/core/tensor.hpp"
#include "sparsity/prune/registry.hpp"

namespace sparsity::prune {

/// What to prune and where the results go. Empty paths are not written.
struct Options {
  std::string model;                    ///< a tensor file (safetensors, ...) or a sharded index (.json)
  PruneConfig config;                   ///< see registry.hpp
  std::string config_where = "config";  ///< names the config in error messages (its file)
  std::string output;  ///< pruned checkpoint (same form as `model`); may equal `model`
  std::string masks;   ///< U8 masks, 1 kept / 0 pruned, one per pruned tensor (safetensors)
  std::string state;   ///< sparsifier state file (state_file.hpp)
  std::string resume;  ///< state file to continue from; may equal `state`
  /// WandaSparsifier's activation norms: a tensor file holding, per pruned weight, a 1-D F32 tensor of the
  /// same name whose length is the weight's input width (norms of other tensors are ignored).
  std::string activations;
  int threads = 0;     ///< 0: every core; results never depend on it
  bool durable = true; ///< fsync outputs before they appear
  /// Called from worker threads (serialised) with the bytes done and the total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

/// Per pruned tensor: fraction of zeros in the mask after each step, zeros of the tensor before and
/// after, the sparsity its final settings ask for (when the sparsifier has a level), and the time spent.
struct LayerReport {
  std::string fqn;
  std::string dtype;
  Shape shape;
  std::vector<double> sparsity_per_step;
  uint64_t zeros_before = 0;
  uint64_t zeros_after = 0;
  std::optional<double> expected_sparsity;
  double seconds = 0;
};

/// Tensors a run left alone for one reason ("not floating point", "ignored", ...).
struct SkipReport {
  std::string reason;
  uint64_t tensors = 0;
  uint64_t parameters = 0;
};

struct Report {
  std::vector<LayerReport> layers;  ///< in target order
  std::vector<SkipReport> skipped;  ///< every tensor not pruned, by reason
  uint64_t parameters = 0;          ///< floating-point elements of the whole model
  uint64_t zeros_before = 0;        ///< zeros among them in the input (+0.0 and -0.0)
  uint64_t zeros_after = 0;         ///< and in the output
  int64_t steps_done = 0;           ///< including the resumed state's
};

/// Prunes a checkpoint out of core:
///   1. targets: the config's tensors, or make_config_from_model over the module tree the tensor names
///      describe;
///   2. outputs: every path checked against the inputs and each other by file identity, every writer
///      hidden until the end;
///   3. per tensor, on a pool of workers under a memory budget: prepare, `steps` x (step, scheduler
///      step) on a view of the tensor, its squashed value and mask streamed to the outputs (a tensor
///      that is not pruned is copied byte for byte);
///   4. publication: every output appears only when all are complete.
/// On any error nothing is written and the input is untouched; errors name the file, tensor or key.
///
///   sparsity::prune::Options o;
///   o.model = "model.safetensors";
///   o.config = sparsity::parse_prune_config(R"({"sparsifier": "WeightNormSparsifier"})", "inline");
///   o.output = "pruned.safetensors";
///   sparsity::prune::Report r = sparsity::prune::run(o);
Report run(const Options& options);

}  // namespace sparsity::prune

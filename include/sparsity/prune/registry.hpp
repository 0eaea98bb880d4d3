// Sparsifiers and schedulers by name, and the validated JSON pruning configuration built on them.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparsity/scheduler/base_scheduler.hpp"
#include "sparsity/sparsifier/base_sparsifier.hpp"

namespace sparsity {

/// How a sparsifier is built from JSON. `check(key, value, where)` validates one option value and
/// throws InvalidArgument naming `where` (e.g. "config.json, key defaults.sparsity_level").
struct SparsifierSpec {
  std::function<std::unique_ptr<BaseSparsifier>(const Json& defaults)> make;
  std::vector<std::string> default_keys;  ///< keys allowed in "defaults"
  std::vector<std::string> group_keys;    ///< keys allowed in "config" entries besides tensor_fqn
  std::function<void(const std::string& key, const Json& value, const std::string& where)> check;
  bool has_sparsity_level = true;  ///< groups carry "sparsity_level" (schedulers need it)
  /// The sparsifier is a WeightNormSparsifier (or derives from one): "scope": "global" ranks the blocks of
  /// every selected tensor together (WeightNormSparsifier::ranked_blocks and its kin).
  bool global_ranking = false;
};

/// Registers (or replaces) a sparsifier under `name`. "WeightNormSparsifier" and
/// "NearlyDiagonalSparsifier" are registered from the start.
///
///   sparsity::register_sparsifier("MySparsifier", {[](const sparsity::Json& d) {
///     return std::make_unique<MySparsifier>(d); }, {"level"}, {"level"}, nullptr});
void register_sparsifier(const std::string& name, SparsifierSpec spec);
/// Registered names, sorted.
std::vector<std::string> sparsifier_names();
/// The spec of `name`; NotFound listing the registered names.
const SparsifierSpec& sparsifier_spec(const std::string& name);
/// Builds `name` from validated defaults.
std::unique_ptr<BaseSparsifier> make_sparsifier(const std::string& name, const Json& defaults);

/// Builds a scheduler over a prepared sparsifier from its JSON object (`type` plus options).
using SchedulerFactory = std::function<std::unique_ptr<BaseScheduler>(BaseSparsifier&, const Json& spec)>;
/// Validates a scheduler JSON object; throws InvalidArgument naming `where`.
using SchedulerCheck = std::function<void(const Json& spec, const std::string& where)>;
/// Registers (or replaces) a scheduler type. "CubicSL" is registered from the start (LambdaSL takes
/// callables and has no JSON form).
void register_scheduler(const std::string& type, SchedulerFactory make, SchedulerCheck check);
std::vector<std::string> scheduler_names();
std::unique_ptr<BaseScheduler> make_scheduler(BaseSparsifier& sparsifier, const Json& spec);

/// A pruning configuration (the CONFIG.json of `sparsity prune`):
///
///   {"sparsifier": "WeightNormSparsifier",
///    "defaults": {"sparsity_level": 0.5, "sparse_block_shape": [1, 4], "zeros_per_block": 4, "norm": "L2"},
///    "targets": ["re:layers\\.\\d+\\.mlp\\..*"], "ignore": ["lm_head"], "module_types": ["Linear"],
///    "config": [{"tensor_fqn": "layers.0.weight", "sparsity_level": 0.7}],
///    "scheduler": {"type": "CubicSL", "init_sl": 0.0, "init_t": 0, "delta_t": 10, "total_t": 100},
///    "steps": 1}
///
/// Which tensors are pruned: `targets` when given (exact tensor names, module names meaning their
/// `weight`, or "re:<pattern>" matched from the start of a module name, RE2 syntax, modules of the
/// `module_types` kinds only), else the `config` entries, else make_config_from_model over the modules
/// the tensor names describe (kinds in `module_types`, default ["Linear"] as torch). `config` entries
/// add their tensors and give per-tensor options; `ignore` (same syntax as `targets`) removes tensors
/// from any of them. `scope` "global" ranks every selected tensor's blocks together (see the README).
struct PruneConfig {
  std::string sparsifier;
  Json defaults = Json::object();
  std::optional<std::vector<Json>> config;  ///< entries, each with "tensor_fqn"
  std::optional<std::vector<std::string>> targets;
  std::vector<std::string> ignore;
  std::vector<std::string> module_types{"Linear"};
  std::string scope = "tensor";  ///< "tensor" or "global"
  Json scheduler;                ///< null when absent
  int64_t steps = 1;

  Json to_json() const;
};

/// Parses and validates a configuration. Every problem throws InvalidArgument whose message ends with
/// "(<where>, key <path>)", e.g. "(config.json, key config[1].sparsity_level)". Unknown keys, wrong
/// types, unknown sparsifier or scheduler names and duplicate tensor_fqns are errors.
PruneConfig parse_prune_config(const Json& json, const std::string& where);
/// Same from JSON text (syntax errors name the byte offset).
PruneConfig parse_prune_config(std::string_view text, const std::string& where);
/// Same from a C string of JSON text (so that a literal is text, not a JSON string value).
inline PruneConfig parse_prune_config(const char* text, const std::string& where) {
  return parse_prune_config(std::string_view(text), where);
}

}  // namespace sparsity

// Which tensors a configuration prunes: the module tree the names describe, the selection, the skips.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "sparsity/core/module.hpp"
#include "sparsity/io/checkpoint.hpp"
#include "sparsity/prune/engine.hpp"
#include "sparsity/prune/registry.hpp"
#include "sparsity/sparsifier/base_sparsifier.hpp"

namespace sparsity::prune {

/// Whether a tensor is in a name list of the config's `targets` / `ignore` syntax: exact tensor names,
/// module names meaning their `weight`, or "re:<pattern>" (RE2) matched from the start of a module
/// name. InvalidArgument located at `where` quoting a pattern that does not compile.
std::function<bool(const std::string& tensor)> name_filter(const std::vector<std::string>& items,
                                                           const std::string& where);

/// The layer kind of the module holding `info` when `info` is its `weight`: the file's own word when it
/// says, else "Linear" for a floating 2-D weight, "Conv2d" for a floating 4-D one, else "Module".
std::string module_type_of(const io::TensorInfo& info);

/// The module tree the names of `entries` describe ("a.b.weight" is tensor `weight` of module `a.b`,
/// typed by module_type_of its weight). With `views` each tensor is a read-only view of its file, else
/// an empty placeholder (enough to choose modules: no data is touched or copied). A tensor the file
/// itself calls a layer's weight (TensorInfo::module_type) under a name without ".weight", such as an
/// ONNX exporter's "onnx::MatMul_12", is the `weight` of a module of that whole name when `as_layers`.
/// Names that describe no module (an empty part; a name that is both a tensor and a module) are left
/// out, as are tensors no Tensor can hold. Built top down, so it costs O(names).
ModulePtr module_tree(const std::vector<io::CheckpointEntry>& entries, bool views, bool as_layers);

/// One tensor to prune: its config entry (with "tensor_fqn") and where it lives.
struct Target {
  std::string fqn;
  Json entry;
  const io::CheckpointEntry* source = nullptr;
};

/// The targets in selection order and, for every tensor left alone, why (grouped by reason).
struct Selection {
  std::vector<Target> targets;
  std::vector<SkipReport> skipped;
};

/// Applies the config's selection (PruneConfig: targets / config / make_config_from_model of `sparsifier`
/// over module_tree(model) with supported_modules = module_types; then ignore). Auto-config and "re:"
/// patterns leave out weights whose width an N:M group does not divide, as NVIDIA's ASP does. A named
/// tensor the model lacks (with the closest names as a hint), that is not floating point or not 2-D, and
/// a selection of nothing, throw InvalidArgument located at `config_where` and the key.
Selection select_targets(const io::Checkpoint& model, const PruneConfig& config, BaseSparsifier& sparsifier,
                         const std::string& config_where);

}  // namespace sparsity::prune

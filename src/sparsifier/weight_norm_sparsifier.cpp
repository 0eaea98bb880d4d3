// WeightNormSparsifier: its settings, validated in one place, and update_mask over kernels::norm_mask.
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "base/text.hpp"
#include "kernels/fused.hpp"
#include "sparsity/sparsifier/fake_sparsity.hpp"

namespace sparsity {
namespace {

using ::sparsity::detail::printable;
using ::sparsity::detail::quote;

// The largest block side: block products (and so every tile count) fit in int64.
constexpr int64_t kMaxBlockSide = (int64_t{1} << 31) - 1;

struct Settings {
  double sparsity_level;
  int64_t br, bc;
  int64_t zeros;
  kernels::Norm norm;
};

// A JSON value for a message: printable and short.
std::string shown(const Json& v) { return printable(v.dump()).substr(0, 60); }

Json defaults_of(const WeightNormOptions& o) {
  SPARSITY_CHECK(o.sparse_block_shape_.first > 0 && o.sparse_block_shape_.second > 0 &&
                     o.sparse_block_shape_.first <= kMaxBlockSide && o.sparse_block_shape_.second <= kMaxBlockSide,
                 InvalidArgument, "WeightNormSparsifier: sparse_block_shape must be [rows, cols] of integers in [1, ",
                 kMaxBlockSide, "], got [", o.sparse_block_shape_.first, ", ", o.sparse_block_shape_.second, "]");
  SPARSITY_CHECK(!std::isnan(o.sparsity_level_), InvalidArgument, "WeightNormSparsifier: sparsity_level is NaN");
  SPARSITY_CHECK(!o.zeros_per_block_ || *o.zeros_per_block_ >= 0, InvalidArgument,
                 "WeightNormSparsifier: zeros_per_block should be positive, got ", *o.zeros_per_block_);
  Json d = Json::object();
  d["sparsity_level"] = o.sparsity_level_;
  d["sparse_block_shape"] = Json::array({o.sparse_block_shape_.first, o.sparse_block_shape_.second});
  d["zeros_per_block"] = o.zeros_per_block_ ? Json(*o.zeros_per_block_) : Json(nullptr);
  return d;
}

// Group keys over the options (an unset zeros_per_block is the effective block size), each checked by
// option_error, the one set of limits.
Settings settings_of(const Json& config, const WeightNormOptions& o, const std::string& fqn) {
  auto check = [&](const char* key, const Json& v) {
    const std::string problem = WeightNormSparsifier::option_error(key, v);
    SPARSITY_CHECK(problem.empty(), InvalidArgument, "WeightNormSparsifier: '", key, "' of ", quote(fqn), " ",
                   problem);
  };
  Settings s{};
  s.sparsity_level = o.sparsity_level_;
  if (auto it = config.find("sparsity_level"); it != config.end()) {
    check("sparsity_level", *it);
    s.sparsity_level = it->get<double>();
  }
  s.br = o.sparse_block_shape_.first;
  s.bc = o.sparse_block_shape_.second;
  if (auto it = config.find("sparse_block_shape"); it != config.end()) {
    check("sparse_block_shape", *it);
    s.br = (*it)[0].get<int64_t>();
    s.bc = (*it)[1].get<int64_t>();
  }
  const int64_t vpb = s.br * s.bc;
  std::optional<int64_t> z = o.zeros_per_block_;
  if (auto it = config.find("zeros_per_block"); it != config.end()) {
    check("zeros_per_block", *it);
    z = it->is_null() ? std::nullopt : std::optional<int64_t>(it->get<int64_t>());
  }
  s.zeros = z ? *z : vpb;
  s.norm = o.norm_;
  if (auto it = config.find("norm"); it != config.end()) {
    check("norm", *it);
    s.norm = *it == "L1" ? kernels::Norm::L1 : kernels::Norm::L2;
  }
  SPARSITY_CHECK(s.zeros <= vpb, InvalidArgument, "WeightNormSparsifier: 'zeros_per_block' of ", quote(fqn), " (",
                 s.zeros, ") cannot be more than the total number of elements in that block (", vpb, ")");
  return s;
}

// The matrices a weight is pruned as. 2-D: itself. Rank >= 3, (out, in, k...): the matrix
// (out, in * prod(k)) in memory order, except for N:M (a 1 x M block with fewer than M zeros), whose groups
// run along the input channels at a fixed (out, k...) position (NVIDIA ASP / cuSPARSELt: K, C, R, S ->
// groups of M consecutive C): `out` matrices of in x prod(k) with M x 1 blocks.
void set_geometry(const Shape& shape, const Settings& st, kernels::NormMaskArgs* a) {
  int64_t spatial = 1;
  for (size_t d = 2; d < shape.size(); ++d) spatial *= shape[d];
  if (shape.size() >= 3 && st.br == 1 && st.zeros < st.bc) {
    a->batch = shape[0];
    a->rows = shape[1];
    a->cols = spatial;
    a->block_rows = st.bc;
    a->block_cols = 1;
  } else {
    a->batch = 1;
    a->rows = shape[0];
    a->cols = shape[1] * spatial;
    a->block_rows = st.br;
    a->block_cols = st.bc;
  }
}

// A global ranking's per-tensor bound (min_sparsity or max_sparsity) of a group, checked.
double global_bound(const Json& config, const char* key, double fallback, const std::string& fqn) {
  auto it = config.find(key);
  if (it == config.end()) return fallback;
  const std::string problem = WeightNormSparsifier::option_error(key, *it);
  SPARSITY_CHECK(problem.empty(), InvalidArgument, "WeightNormSparsifier: '", key, "' of ", quote(fqn), " ", problem);
  return it->get<double>();
}

}  // namespace

std::string WeightNormSparsifier::option_error(const std::string& key, const Json& v) {
  if (key == "sparsity_level") {
    if (!v.is_number()) return "must be a number, got " + shown(v);
    if (std::isnan(v.get<double>())) return "is NaN";
  } else if (key == "sparse_block_shape") {
    bool ok = v.is_array() && v.size() == 2;
    for (size_t i = 0; ok && i < 2; ++i) {
      ok = v[i].is_number_integer() && v[i].get<int64_t>() >= 1 && v[i].get<int64_t>() <= kMaxBlockSide &&
           !(v[i].is_number_unsigned() && v[i].get<uint64_t>() > static_cast<uint64_t>(kMaxBlockSide));
    }
    if (!ok) return "must be [rows, cols] of integers in [1, " + std::to_string(kMaxBlockSide) + "], got " + shown(v);
  } else if (key == "zeros_per_block") {
    if (v.is_null()) return "";
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      return "must be an integer or null, got " + shown(v);
    }
    if (v.get<int64_t>() < 0) return "should be positive, got " + shown(v);
  } else if (key == "norm") {
    if (!v.is_string() || (v != "L1" && v != "L2")) return "must be \"L1\" or \"L2\", got " + shown(v);
  } else if (key == "scope") {
    if (!v.is_string() || (v != "local" && v != "global")) return "must be \"local\" or \"global\", got " + shown(v);
  } else if (key == "min_sparsity" || key == "max_sparsity") {
    if (!v.is_number() || !(v.get<double>() >= 0.0 && v.get<double>() <= 1.0)) {
      return "must be a number in [0, 1], got " + shown(v);
    }
  }
  return "";
}

WeightNormSparsifier::WeightNormSparsifier(WeightNormOptions options)
    : SparsifierCloneable<WeightNormSparsifier>(defaults_of(options)), options_(std::move(options)) {}

WeightNormSparsifier::WeightNormSparsifier(double sparsity_level, std::pair<int64_t, int64_t> sparse_block_shape,
                                           std::optional<int64_t> zeros_per_block, kernels::Norm norm)
    : WeightNormSparsifier(WeightNormOptions()
                               .sparsity_level(sparsity_level)
                               .sparse_block_shape(sparse_block_shape.first, sparse_block_shape.second)
                               .zeros_per_block(zeros_per_block)
                               .norm(norm)) {}

// One group's weight and mask, ready for the kernels: the settings, the source of the scores, and the
// mask written through a contiguous buffer (a strided mask gets its values copied back by commit()).
struct WeightNormSparsifier::Target {
  std::string fqn;
  Settings st;
  Tensor mask, out_mask, source;
  kernels::NormMaskArgs args;

  void commit() const {
    if (!out_mask.is_same(mask)) mask.copy_(out_mask);
  }
};

WeightNormSparsifier::Target WeightNormSparsifier::target_of(Module& module, const std::string& tensor_name,
                                                             const Group& group, bool check_constant) const {
  Target t;
  t.fqn = group.config.value("tensor_fqn", tensor_name);
  t.st = settings_of(group.config, options_, t.fqn);
  t.mask = mask_of(module, tensor_name);
  // Masks that do not depend on the weight are decided before looking at it, as torch does.
  if (check_constant && kernels::norm_mask_constant(t.st.sparsity_level, -1, t.st.zeros, t.st.br * t.st.bc) >= 0) {
    return t;
  }
  // Scores come from the masked weight. With the usual single FakeSparsity over this very mask, the
  // kernel masks the original itself (one pass, no full-size temporary).
  bool mask_weights = false;
  const auto chain = parametrizations_of(module, tensor_name);
  if (chain.size() == 1) {
    if (auto* fs = dynamic_cast<FakeSparsity*>(chain[0].get()); fs != nullptr && fs->mask().is_same(t.mask)) {
      t.source = parametrization_original(module, tensor_name);
      mask_weights = true;
    }
  }
  if (!t.source.defined()) t.source = module.tensor(tensor_name);
  SPARSITY_CHECK(t.source.dim() >= 2, InvalidArgument, "WeightNormSparsifier: ", quote(t.fqn),
                 " must be 2-D, or N-D as (out, in, k...), got shape ", shape_to_string(t.source.shape()));
  SPARSITY_CHECK(is_floating(t.source.dtype()), InvalidArgument, "WeightNormSparsifier: ", quote(t.fqn),
                 " must be a floating-point tensor, got ", to_string(t.source.dtype()));
  SPARSITY_CHECK(t.mask.shape() == t.source.shape(), InvalidArgument, "WeightNormSparsifier: mask of ",
                 quote(t.fqn), " has shape ", shape_to_string(t.mask.shape()), " but the tensor has ",
                 shape_to_string(t.source.shape()));
  t.source = t.source.contiguous();
  t.out_mask = t.mask.is_contiguous() ? t.mask : t.mask.contiguous().clone();
  kernels::NormMaskArgs& a = t.args;
  a.weight_dtype = t.source.dtype();
  a.weight = t.source.data_ptr();
  a.mask_dtype = t.out_mask.dtype();
  a.mask = t.out_mask.mutable_data_ptr();  // a read-only mask fails here, before any work
  a.mask_weights = mask_weights;
  set_geometry(t.source.shape(), t.st, &a);
  a.zeros_per_block = t.st.zeros;
  a.sparsity_level = t.st.sparsity_level;
  a.norm = t.st.norm;
  a.score = options_.norm_fn_ ? &options_.norm_fn_ : nullptr;
  return t;
}

void WeightNormSparsifier::update_mask(Module& module, const std::string& tensor_name, Group& group) {
  if (options_.scope_ == WeightNormScope::global) {
    const size_t index = static_cast<size_t>(&group - groups().data());
    SPARSITY_CHECK(index < groups().size(), Internal, "WeightNormSparsifier: group of ", quote(tensor_name),
                   " is not one of the sparsifier's");
    if (planned_step_ != step_count() || global_ == nullptr) plan_global_step();
    Target t = target_of(module, tensor_name, group, /*check_constant=*/false);
    global_->apply(index, t.args);
    t.commit();
    // The step's last group: the ranking's records go.
    if (index + 1 == groups().size()) global_.reset();
    return;
  }
  const size_t index = static_cast<size_t>(&group - groups().data());
  const int64_t blocks = index < blocks_to_prune_.size() ? blocks_to_prune_[index] : -1;
  Target t = target_of(module, tensor_name, group, /*check_constant=*/blocks < 0);
  t.args.tiles_to_prune = blocks;
  switch (kernels::norm_mask_constant(t.st.sparsity_level, blocks, t.st.zeros, t.st.br * t.st.bc)) {
    case 1: t.mask.fill_(1.0); return;
    case 0: t.mask.fill_(0.0); return;
    default: break;
  }
  kernels::norm_mask(t.args);
  t.commit();
}

// Pass 1 of a global step: every group's tile scores go to one ranking (a sample first, so one round
// usually suffices), one tensor at a time; update_mask then writes each group's share (pass 2). Memory:
// one tensor's scores at a time, the ranking's window, and for flat-tile tensors ~2 bits per element
// that spare pass 2 from scoring them again.
void WeightNormSparsifier::plan_global_step() {
  std::vector<Group>& gs = groups();
  std::vector<kernels::GlobalTensor> specs(gs.size());
  double level = 0;
  std::string level_fqn;
  uint64_t all_tiles = 0;
  for (size_t i = 0; i < gs.size(); ++i) {
    const Target t = target_of(*gs[i].module, gs[i].tensor_name(), gs[i], /*check_constant=*/false);
    if (i == 0) {
      level = t.st.sparsity_level;
      level_fqn = t.fqn;
    }
    SPARSITY_CHECK(t.st.sparsity_level == level, InvalidArgument,
                   "WeightNormSparsifier: a global ranking needs one sparsity_level, but ", quote(t.fqn), " has ",
                   t.st.sparsity_level, " and ", quote(level_fqn), " has ", level);
    specs[i] = ranked_blocks(i);
    all_tiles += specs[i].tiles;
  }
  // k = round-half-even(level * all tiles), as torch's global_unstructured counts it.
  const double raw = std::nearbyint(std::min(1.0, std::max(0.0, level)) * static_cast<double>(all_tiles));
  global_ = std::make_shared<kernels::GlobalNormMask>(specs, static_cast<uint64_t>(raw));
  if (!global_->done()) {
    for (size_t i = 0; i < gs.size(); ++i) {
      const Target t = target_of(*gs[i].module, gs[i].tensor_name(), gs[i], /*check_constant=*/false);
      global_->sample(i, t.args);
    }
    do {
      for (size_t i = 0; i < gs.size(); ++i) {
        const Target t = target_of(*gs[i].module, gs[i].tensor_name(), gs[i], /*check_constant=*/false);
        global_->score(i, t.args);
      }
    } while (!global_->finish());
  }
  planned_step_ = step_count();
}

// ---- a global ranking driven from outside ------------------------------------------------------------

namespace {
Group& group_at(std::vector<Group>& gs, size_t group) {
  SPARSITY_CHECK(group < gs.size(), OutOfRange, "WeightNormSparsifier: group ", group, " of ", gs.size());
  return gs[group];
}
}  // namespace

kernels::GlobalTensor WeightNormSparsifier::ranked_blocks(size_t group) {
  Group& g = group_at(groups(), group);
  const Target t = target_of(*g.module, g.tensor_name(), g, /*check_constant=*/false);
  const uint64_t tiles = kernels::norm_mask_tiles(t.args);
  auto share = [tiles](double fraction) {
    return static_cast<uint64_t>(std::nearbyint(std::min(1.0, std::max(0.0, fraction)) * static_cast<double>(tiles)));
  };
  kernels::GlobalTensor spec{tiles, share(global_bound(g.config, "min_sparsity", 0.0, t.fqn)),
                             share(global_bound(g.config, "max_sparsity", 1.0, t.fqn))};
  SPARSITY_CHECK(spec.min_pruned <= spec.max_pruned, InvalidArgument, "WeightNormSparsifier: ", quote(t.fqn),
                 " has min_sparsity above its max_sparsity");
  return spec;
}

std::vector<double> WeightNormSparsifier::sample_block_scores(size_t count, size_t group) {
  Group& g = group_at(groups(), group);
  std::vector<double> scores;
  kernels::norm_sample_scores(target_of(*g.module, g.tensor_name(), g, /*check_constant=*/false).args, count, &scores);
  return scores;
}

void WeightNormSparsifier::add_block_scores(kernels::GlobalThreshold& ranking, size_t index, size_t group) {
  Group& g = group_at(groups(), group);
  kernels::norm_mask_scores(target_of(*g.module, g.tensor_name(), g, /*check_constant=*/false).args, ranking, index);
}

void WeightNormSparsifier::set_blocks_to_prune(size_t group, int64_t blocks) {
  group_at(groups(), group);
  SPARSITY_CHECK(options_.scope_ == WeightNormScope::local, FailedPrecondition,
                 "WeightNormSparsifier: set_blocks_to_prune is for local scope (a global scope ranks by itself)");
  if (blocks_to_prune_.size() <= group) blocks_to_prune_.resize(groups().size(), -1);
  blocks_to_prune_[group] = blocks;
}

}  // namespace sparsity

// WeightNormSparsifier: its settings, validated in one place, and update_mask over kernels::norm_mask.
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

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
  SPARSITY_CHECK(s.zeros <= vpb, InvalidArgument, "WeightNormSparsifier: 'zeros_per_block' of ", quote(fqn), " (",
                 s.zeros, ") cannot be more than the total number of elements in that block (", vpb, ")");
  return s;
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

void WeightNormSparsifier::update_mask(Module& module, const std::string& tensor_name, Group& group) {
  const std::string fqn = group.config.value("tensor_fqn", tensor_name);
  const Settings st = settings_of(group.config, options_, fqn);
  Tensor mask = mask_of(module, tensor_name);
  // Masks that do not depend on the weight (torch decides them before looking at it).
  switch (kernels::norm_mask_constant(st.sparsity_level, -1, st.zeros, st.br * st.bc)) {
    case 1: mask.fill_(1.0); return;
    case 0: mask.fill_(0.0); return;
    default: break;
  }

  // Scores come from the masked weight. With the usual single FakeSparsity over this very mask, the
  // kernel masks the original itself (one pass, no full-size temporary).
  Tensor source;
  bool mask_weights = false;
  const auto chain = parametrizations_of(module, tensor_name);
  if (chain.size() == 1) {
    if (auto* fs = dynamic_cast<FakeSparsity*>(chain[0].get()); fs != nullptr && fs->mask().is_same(mask)) {
      source = parametrization_original(module, tensor_name);
      mask_weights = true;
    }
  }
  if (!source.defined()) source = module.tensor(tensor_name);
  SPARSITY_CHECK(source.dim() == 2, InvalidArgument, "WeightNormSparsifier: ", quote(fqn),
                 " must be 2-D, got shape ", shape_to_string(source.shape()));
  SPARSITY_CHECK(is_floating(source.dtype()), InvalidArgument, "WeightNormSparsifier: ", quote(fqn),
                 " must be a floating-point tensor, got ", to_string(source.dtype()));
  SPARSITY_CHECK(mask.shape() == source.shape(), InvalidArgument, "WeightNormSparsifier: mask of ", quote(fqn),
                 " has shape ", shape_to_string(mask.shape()), " but the tensor has ",
                 shape_to_string(source.shape()));
  source = source.contiguous();
  // The mask is written through a contiguous buffer; a strided mask gets its values copied back.
  Tensor out_mask = mask.is_contiguous() ? mask : mask.contiguous().clone();

  kernels::NormMaskArgs args;
  args.weight_dtype = source.dtype();
  args.weight = source.data_ptr();
  args.mask_dtype = out_mask.dtype();
  args.mask = out_mask.mutable_data_ptr();  // a read-only mask fails here, before any work
  args.mask_weights = mask_weights;
  args.rows = source.size(0);
  args.cols = source.size(1);
  args.block_rows = st.br;
  args.block_cols = st.bc;
  args.zeros_per_block = st.zeros;
  args.sparsity_level = st.sparsity_level;
  args.norm = options_.norm_;
  args.score = options_.norm_fn_ ? &options_.norm_fn_ : nullptr;
  kernels::norm_mask(args);
  if (!out_mask.is_same(mask)) mask.copy_(out_mask);
}

}  // namespace sparsity

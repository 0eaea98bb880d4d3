// WandaSparsifier: |W| * ||X_j|| scores of the masked weight, selected per row, per tensor or in N:M groups.
#include "sparsity/sparsifier/wanda_sparsifier.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "base/scratch.hpp"
#include "base/text.hpp"
#include "kernels/fused.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/sparsifier/fake_sparsity.hpp"

#ifdef SPARSITY_HAVE_OPENMP
#include <omp.h>
#endif

namespace sparsity {
namespace {

using ::sparsity::detail::printable;
using ::sparsity::detail::quote;
using ::sparsity::detail::Scratch;

constexpr int64_t kMaxBlockSide = int64_t{1} << 31;

enum class Mode { keep_all, prune_all, row, tensor, groups };

struct Settings {
  double level;
  int64_t group;  // M of [1, M]
  int64_t zeros;
  WandaComparison comparison;
};

WandaComparison comparison_from(const Json& v, const std::string& fqn) {
  SPARSITY_CHECK(v.is_string() && (v == "row" || v == "tensor"), InvalidArgument,
                 "WandaSparsifier: 'comparison' of ", quote(fqn), " must be \"row\" or \"tensor\", got ",
                 printable(v.dump()).substr(0, 60));
  return v == "row" ? WandaComparison::row : WandaComparison::tensor;
}

void check_shape(int64_t r, int64_t c, const std::string& fqn) {
  SPARSITY_CHECK(r == 1 && c >= 1 && c <= kMaxBlockSide, InvalidArgument, "WandaSparsifier: 'sparse_block_shape' of ",
                 quote(fqn), " must be [1, M] (M >= 1: [1, 1] unstructured, [1, M] N:M groups of M inputs), got [",
                 r, ", ", c, "]");
}

Json defaults_of(const WandaOptions& o) {
  check_shape(o.sparse_block_shape_.first, o.sparse_block_shape_.second, "defaults");
  SPARSITY_CHECK(!std::isnan(o.sparsity_level_), InvalidArgument, "WandaSparsifier: sparsity_level is NaN");
  if (o.zeros_per_block_) {
    SPARSITY_CHECK(*o.zeros_per_block_ >= 0 && *o.zeros_per_block_ <= o.sparse_block_shape_.second, InvalidArgument,
                   "WandaSparsifier: zeros_per_block (", *o.zeros_per_block_, ") must be in [0, ",
                   o.sparse_block_shape_.second, "]");
  }
  Json d = Json::object();
  d["sparsity_level"] = o.sparsity_level_;
  d["sparse_block_shape"] = Json::array({o.sparse_block_shape_.first, o.sparse_block_shape_.second});
  d["zeros_per_block"] = o.zeros_per_block_ ? Json(*o.zeros_per_block_) : Json(nullptr);
  d["comparison"] = to_string(o.comparison_);
  return d;
}

// The group's keys over the options, with every combination checked.
Settings settings_of(const Json& config, const WandaOptions& o, const std::string& fqn) {
  Settings s{o.sparsity_level_, o.sparse_block_shape_.second, 0, o.comparison_};
  if (auto it = config.find("sparsity_level"); it != config.end()) {
    SPARSITY_CHECK(it->is_number(), InvalidArgument, "WandaSparsifier: 'sparsity_level' of ", quote(fqn),
                   " must be a number, got ", printable(it->dump()).substr(0, 60));
    s.level = it->get<double>();
  }
  SPARSITY_CHECK(!std::isnan(s.level), InvalidArgument, "WandaSparsifier: 'sparsity_level' of ", quote(fqn),
                 " is NaN");
  if (auto it = config.find("sparse_block_shape"); it != config.end()) {
    const bool ok = it->is_array() && it->size() == 2 && (*it)[0].is_number_integer() && (*it)[1].is_number_integer();
    SPARSITY_CHECK(ok, InvalidArgument, "WandaSparsifier: 'sparse_block_shape' of ", quote(fqn),
                   " must be [1, M] of integers, got ", printable(it->dump()).substr(0, 60));
    check_shape((*it)[0].get<int64_t>(), (*it)[1].get<int64_t>(), fqn);
    s.group = (*it)[1].get<int64_t>();
  }
  std::optional<int64_t> z = o.zeros_per_block_;
  if (auto it = config.find("zeros_per_block"); it != config.end()) {
    if (it->is_null()) {
      z.reset();
    } else {
      SPARSITY_CHECK(it->is_number_integer(), InvalidArgument, "WandaSparsifier: 'zeros_per_block' of ", quote(fqn),
                     " must be an integer or null, got ", printable(it->dump()).substr(0, 60));
      z = it->get<int64_t>();
    }
  }
  s.zeros = z ? *z : s.group;
  SPARSITY_CHECK(s.zeros >= 0 && s.zeros <= s.group, InvalidArgument, "WandaSparsifier: 'zeros_per_block' of ",
                 quote(fqn), " (", s.zeros, ") must be in [0, ", s.group, "] for sparse_block_shape [1, ", s.group, "]");
  if (auto it = config.find("comparison"); it != config.end()) s.comparison = comparison_from(*it, fqn);
  SPARSITY_CHECK(s.group == 1 || s.level <= 0 || s.level >= 1 || s.zeros == 0, InvalidArgument,
                 "WandaSparsifier: sparse_block_shape [1, ", s.group, "] of ", quote(fqn),
                 " prunes inside groups of ", s.group,
                 " inputs (N:M) and needs sparsity_level 1.0 (or <= 0 to keep everything), got ", s.level,
                 "; whole-block selection is not supported");
  return s;
}

Mode mode_of(const Settings& s) {
  if (s.level <= 0 || s.zeros == 0) return Mode::keep_all;
  if (s.level >= 1 && s.zeros == s.group) return Mode::prune_all;
  if (s.group > 1) return Mode::groups;
  return s.comparison == WandaComparison::row ? Mode::row : Mode::tensor;
}

// The fqn under which norms may also be set: "<module_fqn>.<tensor_name>" (".weight" -> "weight").
std::string canonical_fqn(const Json& config) {
  const std::string m = config.value("module_fqn", std::string());
  const std::string t = config.value("tensor_name", std::string());
  return m.empty() ? t : m + "." + t;
}

// Working memory of one thread for one row: old mask bytes, new mask bytes, selection, scores.
struct RowScratch {
  Scratch<uint8_t> bytes;
  Scratch<double> scores;
};

RowScratch& thread_scratch(int slot) {
  // slot 0: per-row memory of a worker; slot 1: whole-tensor arrays of the caller (tensor comparison).
  thread_local RowScratch scratch[2];
  return scratch[slot];
}

// Keeps the whole-tensor scratch for the next step unless it is unusually large.
void trim(RowScratch& whole) {
  constexpr size_t kKeepBytes = size_t{64} << 20;
  if (whole.bytes.capacity() > kKeepBytes) whole.bytes.release();
  if (whole.scores.capacity() * sizeof(double) > kKeepBytes) whole.scores.release();
}

// out[j] = |w[j]| * norm[j] in S, with pruned places (keep[j] == 0, when keep is given) scoring +0.
template <class T, class S>
void row_scores(const T* w, const uint8_t* keep, const S* norm, int64_t n, S* out) {
  auto value = [](T v) -> S {
    if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
      return static_cast<S>(static_cast<float>(v));
    } else {
      return static_cast<S>(v);
    }
  };
  if (keep != nullptr) {
    for (int64_t j = 0; j < n; ++j) out[j] = keep[j] != 0 ? std::fabs(value(w[j])) * norm[j] : S(0);
  } else {
    for (int64_t j = 0; j < n; ++j) out[j] = std::fabs(value(w[j])) * norm[j];
  }
}

// selected[j] = 1 for the k smallest of n non-negative-or-NaN scores, lower index first among ties. When
// at least k scores are zero (a sticky mask that already prunes k places: the steady state of repeated
// steps), the k smallest are the first k zeros; otherwise the selection kernel decides.
template <class S>
void select_row(const S* s, int64_t n, int64_t k, uint8_t* selected) {
  int64_t zeros = 0;
  for (int64_t j = 0; j < n; ++j) zeros += s[j] == S(0);
  if (zeros >= k) {
    int64_t left = k;
    for (int64_t j = 0; j < n; ++j) {
      const bool take = left > 0 && s[j] == S(0);
      selected[j] = static_cast<uint8_t>(take);
      left -= take;
    }
    return;
  }
  if constexpr (std::is_same_v<S, double>) {
    kernels::select_k_smallest_f64(s, static_cast<size_t>(n), static_cast<size_t>(k), selected);
  } else {
    kernels::select_k_smallest_f32(s, static_cast<size_t>(n), static_cast<size_t>(k), selected);
  }
}

// Order key of a +0.0 score (kernels' OrderKeys): the key of every place a sticky mask already prunes.
constexpr uint32_t kZeroKey = 0x80000000u;

// The threshold of the k smallest of n order keys of non-negative (or NaN) scores. When at least k keys
// are zero keys (the steady state of repeated steps: the mask already prunes k places), the k smallest
// are the first k zeros; otherwise the radix select of the kernels decides.
kernels::KeyThreshold<uint32_t> row_threshold(const uint32_t* keys, size_t n, size_t k) {
  if (n > 0xffffffffu) return kernels::select_threshold_u32(keys, n, k);
  uint32_t zeros = 0;  // a 32-bit count vectorises better
  for (size_t j = 0; j < n; ++j) zeros += static_cast<uint32_t>(keys[j] == kZeroKey);  // vectorised
  if (zeros < k) return kernels::select_threshold_u32(keys, n, k);
  if (k == 0) return {0, 0};
  if (zeros == k) return {kZeroKey, n};
  size_t left = k, j = 0;
  for (; left > 0; ++j) left -= static_cast<size_t>(keys[j] == kZeroKey);
  return {kZeroKey, j};
}

// Whether two packed bit arrays of n elements agree (the unused bits of the last byte are ignored).
bool same_bits(const uint8_t* a, const uint8_t* b, size_t n) {
  if (std::memcmp(a, b, n / 8) != 0) return false;
  const unsigned rest = static_cast<unsigned>(n % 8);
  return rest == 0 || ((a[n / 8] ^ b[n / 8]) & ((1u << rest) - 1u)) == 0;
}

// Norms for a weight of `shape` (2-D): 1-D, floating, one per input feature, finite and non-negative.
void check_norm_values(const Tensor& n, const std::string& fqn, const Shape& shape) {
  const int64_t in = shape.size() == 2 ? shape[1] : -1;
  SPARSITY_CHECK(n.dim() == 1 && is_floating(n.dtype()), InvalidArgument, "WandaSparsifier: the activation norms of ",
                 quote(fqn), " must be a 1-D floating-point tensor of ", in, " values, got shape ",
                 shape_to_string(n.shape()), " ", to_string(n.dtype()));
  SPARSITY_CHECK(n.numel() == in, InvalidArgument, "WandaSparsifier: the activation norms of ", quote(fqn), " have ",
                 n.numel(), " values, but the weight has ", in, " input features (shape ", shape_to_string(shape),
                 ")");
  const Tensor values = n.to(DType::f64);
  const double* p = values.data<double>();
  for (int64_t j = 0; j < in; ++j) {
    const double v = p[j];
    SPARSITY_CHECK(std::isfinite(v) && v >= 0, InvalidArgument, "WandaSparsifier: activation norm ", j, " of ",
                   quote(fqn), " is ", v, "; norms must be finite and non-negative");
  }
}

}  // namespace

const char* to_string(WandaComparison c) noexcept { return c == WandaComparison::row ? "row" : "tensor"; }

WandaSparsifier::WandaSparsifier(WandaOptions options)
    : SparsifierCloneable<WandaSparsifier>(defaults_of(options)), options_(options) {}

WandaSparsifier::WandaSparsifier(WandaOptions options, const NamedList<Tensor>& activation_norms)
    : WandaSparsifier(options) {
  set_activation_norms(activation_norms);
}

// ---- norms ---------------------------------------------------------------------------------------------

void WandaSparsifier::set_activation_norms(const std::string& tensor_fqn, const Tensor& norms) {
  SPARSITY_CHECK(!tensor_fqn.empty(), InvalidArgument, "WandaSparsifier::set_activation_norms: empty tensor fqn");
  SPARSITY_CHECK(norms.defined(), InvalidArgument, "WandaSparsifier::set_activation_norms: the norms of ",
                 quote(tensor_fqn), " are undefined");
  Tensor copy = norms.clone();
  // Checked against a prepared group of that name now (other names when a group needs them).
  for (const Group& g : groups()) {
    if (g.module == nullptr || (g.tensor_fqn() != tensor_fqn && canonical_fqn(g.config) != tensor_fqn)) continue;
    const Shape& shape = mask_of(*g.module, g.tensor_name()).shape();
    if (shape.size() == 2) check_norm_values(copy, g.tensor_fqn(), shape);  // other ranks: step reports them
  }
  norms_[tensor_fqn] = std::move(copy);
}

void WandaSparsifier::set_activation_norms(const NamedList<Tensor>& norms) {
  for (const auto& [fqn, t] : norms) set_activation_norms(fqn, t);
}

Tensor WandaSparsifier::activation_norms(const std::string& tensor_fqn) const {
  auto it = norms_.find(tensor_fqn);
  return it == norms_.end() ? Tensor() : it->second.clone();
}

const Tensor& WandaSparsifier::checked_norms(const Json& config, const Shape& shape, DType dtype) const {
  const std::string fqn = config.value("tensor_fqn", std::string());
  SPARSITY_CHECK(shape.size() == 2, InvalidArgument, "WandaSparsifier: ", quote(fqn), " has shape ",
                 shape_to_string(shape),
                 "; only 2-D weights [out, in] are supported (convolution and other N-D weights are not)");
  SPARSITY_CHECK(is_floating(dtype), InvalidArgument, "WandaSparsifier: ", quote(fqn),
                 " must be a floating-point tensor, got ", to_string(dtype));
  (void)settings_of(config, options_, fqn);
  const int64_t in = shape[1];
  auto it = norms_.find(fqn);
  if (it == norms_.end()) it = norms_.find(canonical_fqn(config));
  SPARSITY_CHECK(it != norms_.end(), InvalidArgument, "WandaSparsifier: no activation norms for ", quote(fqn),
                 ": expected a 1-D tensor of ", in, " values (one per input feature of the weight of shape ",
                 shape_to_string(shape), "), set with set_activation_norms");
  check_norm_values(it->second, fqn, shape);
  return it->second;
}

void WandaSparsifier::check_groups() const {
  for (const Group& g : groups()) {
    SPARSITY_CHECK(g.module != nullptr, FailedPrecondition, "step: group ", quote(g.tensor_fqn()),
                   " is not bound to a module of the model");
    const Tensor original = is_parametrized(*g.module, g.tensor_name())
                                ? parametrization_original(*g.module, g.tensor_name())
                                : g.module->tensor(g.tensor_name());
    (void)checked_norms(g.config, original.shape(), original.dtype());
  }
}

void WandaSparsifier::prepare(const ModulePtr& model, const std::optional<std::vector<ConfigEntry>>& config) {
  if (model == nullptr || this->model() != nullptr || !groups().empty() || !defaults().is_object()) {
    BaseSparsifier::prepare(model, config);  // reports the misuse
    return;
  }
  const std::vector<ConfigEntry> entries = config ? *config : make_config_from_model(model);
  // Entries the base rejects (bad fqn, unknown tensor, ...) are left to it, with its messages.
  for (const ConfigEntry& entry : entries) {
    if (!entry.options.is_object()) continue;
    Json local = defaults();
    for (const auto& [key, value] : entry.options.items()) local[key] = value;
    auto fqn_it = local.find("tensor_fqn");
    if (fqn_it == local.end() || !fqn_it->is_string()) continue;
    const TensorFqnInfo info = get_arg_info_from_tensor_fqn(model, fqn_it->get<std::string>());
    if (info.module == nullptr || !info.module->has_tensor(info.tensor_name)) continue;
    local["module_fqn"] = info.module_fqn;
    local["tensor_name"] = info.tensor_name;
    const Tensor current = is_parametrized(*info.module, info.tensor_name)
                               ? parametrization_original(*info.module, info.tensor_name)
                               : info.module->tensor(info.tensor_name);
    (void)checked_norms(local, current.shape(), current.dtype());
  }
  BaseSparsifier::prepare(model, entries);
}

// ---- registry --------------------------------------------------------------------------------------------

std::unique_ptr<BaseSparsifier> WandaSparsifier::from_json(const Json& d) {
  WandaOptions o;
  if (d.contains("sparsity_level")) o.sparsity_level(d["sparsity_level"].get<double>());
  if (d.contains("sparse_block_shape")) {
    o.sparse_block_shape(d["sparse_block_shape"][0].get<int64_t>(), d["sparse_block_shape"][1].get<int64_t>());
  }
  if (d.contains("zeros_per_block") && !d["zeros_per_block"].is_null()) {
    o.zeros_per_block(d["zeros_per_block"].get<int64_t>());
  }
  if (d.contains("comparison")) o.comparison(comparison_from(d["comparison"], "defaults"));
  return std::make_unique<WandaSparsifier>(o);
}

void WandaSparsifier::check_option(const std::string& key, const Json& v, const std::string& where) {
  auto bad = [&](const std::string& what) {
    SPARSITY_FAIL(InvalidArgument, what, ", got ", printable(v.dump()).substr(0, 60), " (", where, ")");
  };
  auto is_int = [](const Json& x) { return x.is_number_integer() || x.is_number_unsigned(); };
  if (key == "sparsity_level") {
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0.0 || v.get<double>() > 1.0) {
      bad("expected a number in [0, 1]");
    }
  } else if (key == "sparse_block_shape") {
    if (!v.is_array() || v.size() != 2 || !is_int(v[0]) || !is_int(v[1]) || v[0].get<int64_t>() != 1 ||
        v[1].get<int64_t>() < 1 || v[1].get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      bad("expected [1, M] with M a positive integer ([1, 1] unstructured, [1, M] N:M groups)");
    }
  } else if (key == "zeros_per_block") {
    if (!v.is_null() && (!is_int(v) || v.get<int64_t>() < 0 || v.get<int64_t>() > std::numeric_limits<int32_t>::max())) {
      bad("expected a non-negative integer or null");
    }
  } else if (key == "comparison") {
    if (!v.is_string() || (v != "row" && v != "tensor")) bad("expected \"row\" or \"tensor\"");
  }
}

// ---- update_mask -------------------------------------------------------------------------------------------

void WandaSparsifier::update_mask(Module& module, const std::string& tensor_name, Group& group) {
  // Every group is checked before the first one changes, so a step that fails changes no mask.
  if (&group == &groups().front()) check_groups();
  const std::string fqn = group.config.value("tensor_fqn", tensor_name);
  const Settings st = settings_of(group.config, options_, fqn);
  const Mode mode = mode_of(st);
  Tensor mask = mask_of(module, tensor_name);
  if (mode == Mode::keep_all) {
    mask.fill_(1.0);
    return;
  }
  if (mode == Mode::prune_all) {
    mask.fill_(0.0);
    return;
  }

  // Scores come from the masked weight: with the usual single FakeSparsity over this mask, from the
  // original with the mask applied row by row; otherwise from the whole chain's value.
  Tensor source;
  bool apply_own_mask = false;
  const auto chain = parametrizations_of(module, tensor_name);
  if (chain.size() == 1) {
    if (auto* fs = dynamic_cast<FakeSparsity*>(chain[0].get()); fs != nullptr && fs->mask().is_same(mask)) {
      source = parametrization_original(module, tensor_name);
      apply_own_mask = true;
    }
  }
  if (!source.defined()) source = module.tensor(tensor_name);
  const Tensor& norm_tensor = checked_norms(group.config, source.shape(), source.dtype());
  SPARSITY_CHECK(mask.shape() == source.shape(), InvalidArgument, "WandaSparsifier: the mask of ", quote(fqn),
                 " has shape ", shape_to_string(mask.shape()), " but the tensor has ", shape_to_string(source.shape()));
  source = source.contiguous();
  const int64_t rows = source.size(0), cols = source.size(1);
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  if (n == 0) return;

  Tensor out_mask = mask.is_contiguous() ? mask : mask.contiguous().clone();
  const Tensor mask_src = mask.contiguous();
  const DType wdt = source.dtype(), mdt = mask.dtype();
  const size_t wsz = size_of(wdt), msz = size_of(mdt);
  // Fetched here so a read-only mask fails before any work (and never inside a parallel region).
  uint8_t* const out_base = static_cast<uint8_t*>(out_mask.mutable_data_ptr());
  const uint8_t* const mbase = static_cast<const uint8_t*>(mask_src.data_ptr());
  const uint8_t* const wbase = static_cast<const uint8_t*>(source.data_ptr());
  const bool in_place = out_mask.is_same(mask);

  const bool f64 = wdt == DType::f64;
  const Tensor norms = norm_tensor.to(f64 ? DType::f64 : DType::f32);
  const void* nbase = norms.data_ptr();

  // Fixed pieces of whole rows (~16K elements): the masks depend on neither the pieces nor the threads.
  const int64_t piece_rows = std::max<int64_t>(1, int64_t{16384} / std::max<int64_t>(cols, 1));
  const int64_t n_pieces = (rows + piece_rows - 1) / piece_rows;
  const int threads =
      static_cast<int>(std::min<int64_t>(kernels::num_threads(), static_cast<int64_t>(n >> 14) + 1));
  const bool parallel = threads > 1 && n >= (size_t{1} << 16);
  (void)parallel;  // unused without OpenMP
  auto for_each_piece = [&](auto&& body) {
#ifdef SPARSITY_HAVE_OPENMP
    if (parallel) {
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t p = 0; p < n_pieces; ++p) body(p);
      return;
    }
#endif
    for (int64_t p = 0; p < n_pieces; ++p) body(p);
  };

  // The scores of one row (S = float, or double for f64 weights); `keep` holds the old mask's bytes.
  auto score_row = [&](int64_t r, const uint8_t* keep, auto* s) {
    using S = std::remove_pointer_t<decltype(s)>;
    const uint8_t* w = wbase + static_cast<size_t>(r) * static_cast<size_t>(cols) * wsz;
    const S* nv = static_cast<const S*>(nbase);
    const uint8_t* k = apply_own_mask ? keep : nullptr;
    visit_dtype(wdt, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Half> ||
                    std::is_same_v<T, BFloat16>) {
        row_scores<T, S>(reinterpret_cast<const T*>(w), k, nv, cols, s);
      }
    });
  };
  // New mask of row r from its pruned flags; written only where the row changes.
  auto write_row = [&](int64_t r, const uint8_t* keep, const uint8_t* pruned, uint8_t* fresh) {
    for (int64_t j = 0; j < cols; ++j) fresh[j] = static_cast<uint8_t>(pruned[j] ^ 1u);
    if (in_place && std::memcmp(fresh, keep, static_cast<size_t>(cols)) == 0) return;
    kernels::bytes_to_mask(fresh, static_cast<size_t>(cols), mdt,
                           out_base + static_cast<size_t>(r) * static_cast<size_t>(cols) * msz);
  };
  auto old_row = [&](int64_t r, uint8_t* keep) {
    kernels::mask_to_bytes(mdt, mbase + static_cast<size_t>(r) * static_cast<size_t>(cols) * msz,
                           static_cast<size_t>(cols), keep);
  };

  // k = floor(level * in) per row, computed as the reference does (int(in * ratio)).
  const int64_t k = std::min<int64_t>(cols, static_cast<int64_t>(st.level * static_cast<double>(cols)));
  // A group wider than the row is the row itself (its missing places would rank last).
  const int64_t m = std::min(st.group, cols), zeros = std::min(st.zeros, m);
  // One selection per tensor: k = round-half-even(level * numel), clamped to [0, numel - 1] (level < 1
  // here), as WeightNorm's unstructured (1, 1) blocks.
  const size_t k_tensor = static_cast<size_t>(
      std::max(0.0, std::min(static_cast<double>(n) - 1.0, std::nearbyint(st.level * static_cast<double>(n)))));

  // Fused path: f32 weights under their own FakeSparsity with an f32, u8 or bool mask. Per row, the scores
  // |w| * norm go through the flat-tile kernels (which apply the mask): order keys, old mask bits and the
  // N:M choice in one pass, then the threshold, then the new bits, written only where the row changed.
  // The same masks as the general path below (tested).
  const bool flat_groups = mode == Mode::groups && kernels::flat_tiles_supported(m) && cols % m == 0;
  if (wdt == DType::f32 && apply_own_mask && in_place &&
      (mdt == DType::f32 || mdt == DType::u8 || mdt == DType::bool_) &&
      (mode == Mode::row || mode == Mode::tensor || flat_groups)) {
    const size_t ucols = static_cast<size_t>(cols);
    const size_t row_bytes = (ucols + 7) / 8;
    const float* nv = static_cast<const float*>(nbase);
    const int64_t bc = mode == Mode::groups ? m : 1;
    const size_t tiles = ucols / static_cast<size_t>(bc);
    // Scores of row r into s (the mask is applied by the kernel).
    auto scores_of = [&](int64_t r, float* s) {
      const float* w = reinterpret_cast<const float*>(wbase) + static_cast<size_t>(r) * ucols;
      for (size_t j = 0; j < ucols; ++j) s[j] = std::fabs(w[j]) * nv[j];  // vectorised
    };
    auto mask_row = [&](int64_t r) { return mbase + static_cast<size_t>(r) * ucols * msz; };
    auto write_bits = [&](int64_t r, const uint8_t* fresh, const uint8_t* old) {
      if (same_bits(fresh, old, ucols)) return;
      kernels::bits_to_mask(fresh, ucols, mdt, out_base + static_cast<size_t>(r) * ucols * msz);
    };
    if (mode != Mode::tensor) {
      for_each_piece([&](int64_t p) {
        RowScratch& local = thread_scratch(0);
        // scores [cols] f32 | keys [cols] u32 (as doubles: 8 bytes per pair); old, pruned, new bits.
        double* store = local.scores.get(ucols);
        float* s = reinterpret_cast<float*>(store);
        uint32_t* keys = reinterpret_cast<uint32_t*>(s + ucols);
        uint8_t* old_bits = local.bytes.get(3 * row_bytes + 8);
        uint8_t* pruned_bits = old_bits + row_bytes;
        uint8_t* fresh = pruned_bits + row_bytes;
        const int64_t r1 = std::min(rows, (p + 1) * piece_rows);
        for (int64_t r = p * piece_rows; r < r1; ++r) {
          scores_of(r, s);
          if (mode == Mode::row) {
            kernels::flat_tile_scores(s, mask_row(r), mdt, ucols, 1, kernels::Norm::L1, 1, keys, old_bits, nullptr);
            const kernels::KeyThreshold<uint32_t> t = row_threshold(keys, ucols, static_cast<size_t>(k));
            // Exactly k zero scores and k pruned places: the zeros are the pruned places (which score 0),
            // so the row keeps its mask (the steady state of repeated steps).
            if (t.key == kZeroKey && t.cut == ucols &&
                ucols - static_cast<size_t>(kernels::count_kept_bits(old_bits, ucols)) == static_cast<size_t>(k)) {
              continue;
            }
            kernels::flat_tile_mask(keys, ucols, 1, t, 0, nullptr, fresh);
          } else {
            kernels::flat_tile_scores(s, mask_row(r), mdt, ucols, bc, kernels::Norm::L1, zeros, keys, old_bits,
                                      pruned_bits);
            kernels::flat_tile_mask(keys, ucols, bc, {~uint32_t{0}, tiles}, 0, pruned_bits, fresh);
          }
          write_bits(r, fresh, old_bits);
        }
      });
      return;
    }
    RowScratch& whole = thread_scratch(1);
    uint32_t* keys = reinterpret_cast<uint32_t*>(whole.scores.get((n + 1) / 2));
    uint8_t* old_bits = whole.bytes.get(static_cast<size_t>(rows) * row_bytes + 8);
    for_each_piece([&](int64_t p) {
      float* s = reinterpret_cast<float*>(thread_scratch(0).scores.get((ucols + 1) / 2));
      const int64_t r1 = std::min(rows, (p + 1) * piece_rows);
      for (int64_t r = p * piece_rows; r < r1; ++r) {
        scores_of(r, s);
        kernels::flat_tile_scores(s, mask_row(r), mdt, ucols, 1, kernels::Norm::L1, 1,
                                  keys + static_cast<size_t>(r) * ucols, old_bits + static_cast<size_t>(r) * row_bytes,
                                  nullptr);
      }
    });
    const kernels::KeyThreshold<uint32_t> threshold = kernels::select_threshold_u32(keys, n, k_tensor);
    for_each_piece([&](int64_t p) {
      uint8_t* fresh = thread_scratch(0).bytes.get(row_bytes + 8);
      const int64_t r1 = std::min(rows, (p + 1) * piece_rows);
      for (int64_t r = p * piece_rows; r < r1; ++r) {
        const size_t off = static_cast<size_t>(r) * ucols;
        kernels::flat_tile_mask(keys + off, ucols, 1, threshold, off, nullptr, fresh);
        write_bits(r, fresh, old_bits + static_cast<size_t>(r) * row_bytes);
      }
    });
    trim(whole);
    return;
  }

  if (mode == Mode::row || mode == Mode::groups) {
    auto run = [&](auto zero) {
      using S = decltype(zero);
      for_each_piece([&](int64_t p) {
        RowScratch& local = thread_scratch(0);
        uint8_t* keep = local.bytes.get(3 * static_cast<size_t>(cols));
        uint8_t* pruned = keep + cols;
        uint8_t* fresh = pruned + cols;
        S* s = reinterpret_cast<S*>(local.scores.get(static_cast<size_t>(cols)));
        const int64_t r1 = std::min(rows, (p + 1) * piece_rows);
        for (int64_t r = p * piece_rows; r < r1; ++r) {
          old_row(r, keep);
          score_row(r, keep, s);
          if (mode == Mode::row) {
            select_row(s, cols, k, pruned);
          } else {
            kernels::tile_smallest(s, std::is_same_v<S, double>, 1, cols, cols, 1, m, zeros, pruned);
          }
          write_row(r, keep, pruned, fresh);
        }
      });
    };
    if (f64) {
      run(0.0);
    } else {
      run(0.0f);
    }
  } else {
    RowScratch& whole = thread_scratch(1);
    uint8_t* selected = whole.bytes.get(n);
    double* store = whole.scores.get(f64 ? n : (n + 1) / 2);
    auto run = [&](auto* scores) {
      using S = std::remove_pointer_t<decltype(scores)>;
      for_each_piece([&](int64_t p) {
        RowScratch& local = thread_scratch(0);
        uint8_t* keep = local.bytes.get(static_cast<size_t>(cols));
        const int64_t r1 = std::min(rows, (p + 1) * piece_rows);
        for (int64_t r = p * piece_rows; r < r1; ++r) {
          old_row(r, keep);
          score_row(r, keep, scores + static_cast<size_t>(r) * static_cast<size_t>(cols));
        }
      });
      if constexpr (std::is_same_v<S, double>) {
        kernels::select_k_smallest_f64(scores, n, k_tensor, selected);
      } else {
        kernels::select_k_smallest_f32(scores, n, k_tensor, selected);
      }
    };
    if (f64) {
      run(store);
    } else {
      run(reinterpret_cast<float*>(store));
    }
    for_each_piece([&](int64_t p) {
      RowScratch& local = thread_scratch(0);
      uint8_t* keep = local.bytes.get(2 * static_cast<size_t>(cols));
      uint8_t* fresh = keep + cols;
      const int64_t r1 = std::min(rows, (p + 1) * piece_rows);
      for (int64_t r = p * piece_rows; r < r1; ++r) {
        old_row(r, keep);
        write_row(r, keep, selected + static_cast<size_t>(r) * static_cast<size_t>(cols), fresh);
      }
    });
    trim(whole);
  }
  if (!in_place) mask.copy_(out_mask);
}

}  // namespace sparsity

// CubicSL: Zhu & Gupta's cubic sparsity ramp from init_sl to each group's level.
#include <algorithm>
#include <cmath>

#include "base/text.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"

namespace sparsity {
namespace {

// torch's _make_sure_a_list: one value for every group, or exactly one per group.
template <class T>
std::vector<T> per_group(const std::vector<T>& values, size_t groups, const char* key) {
  if (values.size() == 1) return std::vector<T>(groups, values[0]);
  SPARSITY_CHECK(values.size() == groups, InvalidArgument, "CubicSL: ", ::sparsity::detail::quote(key),
                 " expected variable of length ", groups, ", but got ", values.size());
  return values;
}

CubicSL::Options scalar_options(double init_sl, int init_t, int delta_t, int total_t, bool initially_zero) {
  CubicSL::Options o;
  o.init_sl = {init_sl};
  o.init_t = {init_t};
  o.delta_t = {delta_t};
  o.total_t = {total_t};
  o.initially_zero = {initially_zero};
  return o;
}

}  // namespace

CubicSL::CubicSL(BaseSparsifier& sparsifier, double init_sl, int init_t, int delta_t, int total_t,
                 bool initially_zero, int last_epoch, bool verbose)
    : CubicSL(sparsifier, scalar_options(init_sl, init_t, delta_t, total_t, initially_zero), last_epoch, verbose) {}

CubicSL::CubicSL(BaseSparsifier& sparsifier, Options options, int last_epoch, bool verbose)
    : BaseScheduler(sparsifier, last_epoch, verbose) {
  const size_t n = sparsifier.groups().size();
  options_.init_sl = per_group(options.init_sl, n, "init_sl");
  options_.init_t = per_group(options.init_t, n, "init_t");
  options_.delta_t = per_group(options.delta_t, n, "delta_t");
  options_.total_t = per_group(options.total_t, n, "total_t");
  options_.initially_zero = per_group(options.initially_zero, n, "initially_zero");
  initial_step();
}

double CubicSL::sparsity_compute_fn(double s_0, double s_f, int t, int t_0, int dt, int n, bool initially_zero) {
  if (initially_zero && t < t_0) return 0.0;
  const long long span = static_cast<long long>(dt) * n;
  SPARSITY_CHECK(span != 0, InvalidArgument, "CubicSL: delta_t * total_t must not be 0 (delta_t=", dt,
                 ", total_t=", n, ")");
  // Same operations as torch: true division, then pow(x, 3) (Python's float ** 3 is libm pow).
  // In 64 bits: t - t_0 of two ints can overflow an int (torch has unbounded integers).
  const double ramp = 1.0 - static_cast<double>(static_cast<long long>(t) - t_0) / static_cast<double>(span);
  const double s_t = s_f + (s_0 - s_f) * std::pow(ramp, 3.0);
  return std::max(s_0, std::min(s_f, s_t));
}

std::vector<double> CubicSL::get_sl() {
  const auto& base = base_sl();
  std::vector<double> out;
  out.reserve(base.size());
  for (size_t i = 0; i < base.size(); ++i) {
    out.push_back(sparsity_compute_fn(options_.init_sl[i], base[i], last_epoch(), options_.init_t[i],
                                      options_.delta_t[i], options_.total_t[i], options_.initially_zero[i]));
  }
  return out;
}

Json CubicSL::state_dict() const {
  Json j = BaseScheduler::state_dict();
  j["init_sl"] = options_.init_sl;
  j["init_t"] = options_.init_t;
  j["delta_t"] = options_.delta_t;
  j["total_t"] = options_.total_t;
  Json iz = Json::array();
  for (bool b : options_.initially_zero) iz.push_back(b);
  j["initially_zero"] = iz;
  return j;
}

void CubicSL::load_state_dict(const Json& state) {
  SPARSITY_CHECK(state.is_object(), InvalidArgument, "scheduler state_dict must be a JSON object, got ",
                 state.type_name());
  Options next = options_;
  auto ints = [&](const char* key, std::vector<int>& out) {
    if (!state.contains(key)) return;
    const Json& v = state.at(key);
    SPARSITY_CHECK(v.is_array(), InvalidArgument, "CubicSL state_dict key ", ::sparsity::detail::quote(key),
                   " must be a list");
    out.clear();
    for (const auto& x : v) {
      SPARSITY_CHECK(x.is_number_integer(), InvalidArgument, "CubicSL state_dict key ",
                     ::sparsity::detail::quote(key), " holds a non-integer: ", x.dump());
      out.push_back(x.get<int>());
    }
  };
  if (state.contains("init_sl")) {
    const Json& v = state.at("init_sl");
    SPARSITY_CHECK(v.is_array(), InvalidArgument, "CubicSL state_dict key 'init_sl' must be a list");
    next.init_sl.clear();
    for (const auto& x : v) {
      SPARSITY_CHECK(x.is_number(), InvalidArgument, "CubicSL state_dict key 'init_sl' holds a non-number: ",
                     x.dump());
      next.init_sl.push_back(x.get<double>());
    }
  }
  ints("init_t", next.init_t);
  ints("delta_t", next.delta_t);
  ints("total_t", next.total_t);
  if (state.contains("initially_zero")) {
    const Json& v = state.at("initially_zero");
    SPARSITY_CHECK(v.is_array(), InvalidArgument, "CubicSL state_dict key 'initially_zero' must be a list");
    next.initially_zero.clear();
    for (const auto& x : v) {
      SPARSITY_CHECK(x.is_boolean(), InvalidArgument, "CubicSL state_dict key 'initially_zero' holds a non-bool: ",
                     x.dump());
      next.initially_zero.push_back(x.get<bool>());
    }
  }
  const size_t n = sparsifier().groups().size();
  const std::pair<const char*, size_t> sizes[] = {{"init_sl", next.init_sl.size()},
                                                  {"init_t", next.init_t.size()},
                                                  {"delta_t", next.delta_t.size()},
                                                  {"total_t", next.total_t.size()},
                                                  {"initially_zero", next.initially_zero.size()}};
  for (const auto& [key, size] : sizes) {
    SPARSITY_CHECK(size == n, InvalidArgument, "CubicSL state_dict key ", ::sparsity::detail::quote(key),
                   " has ", size, " values for ", n, " groups");
  }
  BaseScheduler::load_state_dict(state);
  options_ = std::move(next);
}

}  // namespace sparsity

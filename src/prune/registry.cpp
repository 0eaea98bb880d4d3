// Name -> sparsifier / scheduler factories and validation of the JSON pruning configuration.
#include "sparsity/prune/registry.hpp"

#include <re2/re2.h>

#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <set>

#include "base/json_strict.hpp"
#include "base/text.hpp"
#include "sparsity/sparsifier/nearly_diagonal_sparsifier.hpp"
#include "sparsity/sparsifier/wanda_sparsifier.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

namespace sparsity {
namespace {

using ::sparsity::detail::printable;
using ::sparsity::detail::quote;

// `where` names the config and the key, e.g. "config.json, key defaults.sparsity_level".
[[noreturn]] void bad(const std::string& what, const std::string& where) {
  throw Error(ErrorCode::InvalidArgument, what, {where});
}

bool is_int(const Json& v) { return v.is_number_integer() || v.is_number_unsigned(); }
bool is_real(const Json& v) { return v.is_number() && std::isfinite(v.get<double>()); }

void need_int(const Json& v, int64_t lo, int64_t hi, const std::string& what, const std::string& where) {
  if (!is_int(v) || (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) ||
      v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
    bad("expected " + what + ", got " + printable(v.dump()).substr(0, 60), where);
  }
}

// Why an RE2 pattern does not compile ("" when it does).
std::string pattern_error(const std::string& pattern) {
  RE2::Options o;
  o.set_log_errors(false);
  const RE2 re(pattern, o);
  return re.ok() ? "" : re.error();
}

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// ---- built-in sparsifiers -------------------------------------------------------------------------

void check_weight_norm(const std::string& key, const Json& v, const std::string& where) {
  // The sparsifier's own check (types and limits), then the file's rule: a configured level is a fraction.
  const std::string problem = WeightNormSparsifier::option_error(key, v);
  if (!problem.empty()) bad(key + " " + problem, where);
  if (key == "sparsity_level" && !(v.get<double>() >= 0.0 && v.get<double>() <= 1.0)) {
    bad("sparsity_level must be in [0, 1], got " + printable(v.dump()).substr(0, 60), where);
  }
}

std::unique_ptr<BaseSparsifier> make_weight_norm(const Json& d) {
  WeightNormOptions o;
  if (d.contains("sparsity_level")) o.sparsity_level(d["sparsity_level"].get<double>());
  if (d.contains("sparse_block_shape")) {
    o.sparse_block_shape(d["sparse_block_shape"][0].get<int64_t>(), d["sparse_block_shape"][1].get<int64_t>());
  }
  if (d.contains("zeros_per_block") && !d["zeros_per_block"].is_null()) {
    o.zeros_per_block(d["zeros_per_block"].get<int64_t>());
  }
  if (d.contains("norm")) o.norm(d["norm"] == "L1" ? kernels::Norm::L1 : kernels::Norm::L2);
  auto sp = std::make_unique<WeightNormSparsifier>(o);
  // Bounds of a global ranking's shares are group keys every group gets from the defaults.
  for (const char* key : {"min_sparsity", "max_sparsity"}) {
    if (d.contains(key)) sp->defaults()[key] = d[key];
  }
  return sp;
}

void check_nearly_diagonal(const std::string& key, const Json& v, const std::string& where) {
  if (key == "nearliness") {
    need_int(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(), "an integer", where);
    const int64_t n = v.get<int64_t>();
    if (n > 0 && n % 2 == 0) bad("nearliness can only be an odd number, got " + std::to_string(n), where);
  }
}

std::unique_ptr<BaseSparsifier> make_nearly_diagonal(const Json& d) {
  return std::make_unique<NearlyDiagonalSparsifier>(d.contains("nearliness") ? d["nearliness"].get<int64_t>() : 1);
}

// ---- built-in schedulers --------------------------------------------------------------------------

void check_cubic(const Json& spec, const std::string& where) {
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    const std::string w = where + "." + printable(it.key());
    const std::string& k = it.key();
    if (k == "type") continue;
    if (k == "init_sl") {
      if (!is_real(it.value())) bad("expected a number", w);
    } else if (k == "init_t" || k == "delta_t" || k == "total_t") {
      need_int(it.value(), k == "init_t" ? std::numeric_limits<int32_t>::min() : 1,
               std::numeric_limits<int32_t>::max(), k == "init_t" ? "an integer" : "a positive integer", w);
    } else if (k == "initially_zero") {
      if (!it.value().is_boolean()) bad("expected true or false", w);
    } else {
      bad("unknown key " + quote(k) + " for CubicSL (known: init_sl, init_t, delta_t, total_t, initially_zero)", w);
    }
  }
  const int64_t dt = spec.value("delta_t", 10), n = spec.value("total_t", 100);
  if (dt * n > std::numeric_limits<int32_t>::max()) bad("delta_t * total_t is too large", where);
}

std::unique_ptr<BaseScheduler> make_cubic(BaseSparsifier& sp, const Json& spec) {
  return std::make_unique<CubicSL>(sp, spec.value("init_sl", 0.0), spec.value("init_t", 0), spec.value("delta_t", 10),
                                   spec.value("total_t", 100), spec.value("initially_zero", false));
}

struct Registry {
  std::mutex mu;
  std::map<std::string, SparsifierSpec> sparsifiers;
  std::map<std::string, std::pair<SchedulerFactory, SchedulerCheck>> schedulers;
  Registry() {
    sparsifiers["WeightNormSparsifier"] = {
        make_weight_norm,
        {"sparsity_level", "sparse_block_shape", "zeros_per_block", "norm", "min_sparsity", "max_sparsity"},
        {"sparsity_level", "sparse_block_shape", "zeros_per_block", "norm", "min_sparsity", "max_sparsity"},
        check_weight_norm,
        true,
        true};
    sparsifiers["NearlyDiagonalSparsifier"] = {make_nearly_diagonal, {"nearliness"}, {"nearliness"},
                                               check_nearly_diagonal, false};
    sparsifiers["WandaSparsifier"] = {WandaSparsifier::from_json,
                                      {"sparsity_level", "sparse_block_shape", "zeros_per_block", "comparison"},
                                      {"sparsity_level", "sparse_block_shape", "zeros_per_block", "comparison"},
                                      WandaSparsifier::check_option, true};
    schedulers["CubicSL"] = {make_cubic, check_cubic};
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_sparsifier(const std::string& name, SparsifierSpec spec) {
  SPARSITY_CHECK(!name.empty() && spec.make, InvalidArgument, "register_sparsifier needs a name and a factory");
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.sparsifiers[name] = std::move(spec);
}

std::vector<std::string> sparsifier_names() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [k, v] : r.sparsifiers) names.push_back(k);
  return names;
}

const SparsifierSpec& sparsifier_spec(const std::string& name) {
  auto& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.sparsifiers.find(name);
    if (it != r.sparsifiers.end()) return it->second;
  }
  SPARSITY_FAIL(NotFound, "unknown sparsifier ", quote(name), " (known: ", join(sparsifier_names()), ")");
}

std::unique_ptr<BaseSparsifier> make_sparsifier(const std::string& name, const Json& defaults) {
  return sparsifier_spec(name).make(defaults);
}

void register_scheduler(const std::string& type, SchedulerFactory make, SchedulerCheck check) {
  SPARSITY_CHECK(!type.empty() && make, InvalidArgument, "register_scheduler needs a type and a factory");
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.schedulers[type] = {std::move(make), std::move(check)};
}

std::vector<std::string> scheduler_names() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [k, v] : r.schedulers) names.push_back(k);
  return names;
}

namespace {
std::pair<SchedulerFactory, SchedulerCheck> scheduler_entry(const std::string& type, const std::string& where) {
  auto& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.schedulers.find(type);
    if (it != r.schedulers.end()) return it->second;
  }
  bad("unknown scheduler type " + quote(type) + " (known: " + join(scheduler_names()) + ")", where);
}
}  // namespace

std::unique_ptr<BaseScheduler> make_scheduler(BaseSparsifier& sparsifier, const Json& spec) {
  SPARSITY_CHECK(spec.is_object() && spec.contains("type") && spec["type"].is_string(), InvalidArgument,
                 "scheduler must be an object with a string \"type\"");
  return scheduler_entry(spec["type"].get<std::string>(), "scheduler.type").first(sparsifier, spec);
}

Json PruneConfig::to_json() const {
  Json j = Json::object();
  j["sparsifier"] = sparsifier;
  j["defaults"] = defaults;
  if (config) {
    j["config"] = Json::array();
    for (const auto& e : *config) j["config"].push_back(e);
  } else {
    j["config"] = nullptr;
  }
  if (targets) j["targets"] = *targets;
  if (!ignore.empty()) j["ignore"] = ignore;
  j["module_types"] = module_types;
  j["scope"] = scope;
  if (!scheduler.is_null()) j["scheduler"] = scheduler;
  j["steps"] = steps;
  return j;
}

PruneConfig parse_prune_config(const Json& json, const std::string& where) {
  const std::string w = printable(where);
  auto at = [&](const std::string& key) { return w + ", key " + key; };
  if (!json.is_object()) bad("configuration is not a JSON object", w);
  for (auto it = json.begin(); it != json.end(); ++it) {
    static const std::set<std::string> known = {"sparsifier",   "defaults", "config",    "targets", "ignore",
                                                "module_types", "scope",    "scheduler", "steps"};
    if (!known.count(it.key())) {
      bad("unknown key " + quote(it.key()) +
              " (known: sparsifier, defaults, config, targets, ignore, module_types, scope, scheduler, "
              "steps)",
          at(printable(it.key())));
    }
  }
  PruneConfig out;
  auto sp = json.find("sparsifier");
  if (sp == json.end() || !sp->is_string()) bad("missing or non-string \"sparsifier\"", at("sparsifier"));
  out.sparsifier = sp->get<std::string>();
  const SparsifierSpec* spec = nullptr;
  try {
    spec = &sparsifier_spec(out.sparsifier);
  } catch (const Error&) {
    bad("unknown sparsifier " + quote(out.sparsifier) + " (known: " + join(sparsifier_names()) + ")", at("sparsifier"));
  }

  auto check_options = [&](const Json& obj, const std::vector<std::string>& allowed, const std::string& path,
                           bool entry) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      const std::string key = it.key();
      const std::string kp = path + "." + printable(key);
      if (entry && key == "tensor_fqn") {
        if (!it.value().is_string() || it.value().get<std::string>().empty()) {
          bad("\"tensor_fqn\" must be a non-empty string", at(kp));
        }
        continue;
      }
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        bad("unknown key " + quote(key) + " for " + out.sparsifier + (allowed.empty() ? "" : " (known: " + join(allowed) + ")"),
            at(kp));
      }
      if (spec->check) spec->check(key, it.value(), at(kp));
    }
  };

  if (auto d = json.find("defaults"); d != json.end() && !d->is_null()) {
    if (!d->is_object()) bad("\"defaults\" must be an object", at("defaults"));
    check_options(*d, spec->default_keys, "defaults", false);
    out.defaults = *d;
  }
  if (auto c = json.find("config"); c != json.end() && !c->is_null()) {
    if (!c->is_array()) bad("\"config\" must be an array of objects or null", at("config"));
    std::vector<Json> entries;
    std::set<std::string> seen;
    for (size_t i = 0; i < c->size(); ++i) {
      const std::string path = "config[" + std::to_string(i) + "]";
      const Json& e = (*c)[i];
      if (!e.is_object()) bad("config entries must be objects", at(path));
      if (!e.contains("tensor_fqn")) bad("config entry without \"tensor_fqn\"", at(path));
      check_options(e, spec->group_keys, path, true);
      const std::string fqn = e["tensor_fqn"].get<std::string>();
      if (!seen.insert(fqn).second) bad("tensor_fqn " + quote(fqn) + " appears twice", at(path + ".tensor_fqn"));
      entries.push_back(e);
    }
    out.config = std::move(entries);
  }
  // Name lists: exact names, or "re:" and an RE2 pattern (compiled here, so a bad one fails early).
  auto names = [&](const char* key) {
    std::vector<std::string> out;
    const Json& v = json.at(key);
    if (!v.is_array())
      bad(std::string("\"") + key + "\" must be an array of names or \"re:\" patterns", at(key));
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string path = std::string(key) + "[" + std::to_string(i) + "]";
      if (!v[i].is_string() || v[i].get<std::string>().empty()) bad("expected a non-empty string", at(path));
      const std::string p = v[i].get<std::string>();
      if (p.rfind("re:", 0) == 0) {
        const std::string error = pattern_error(p.substr(3));
        if (!error.empty()) bad("invalid pattern " + quote(p.substr(3)) + ": " + error, at(path));
      }
      out.push_back(p);
    }
    return out;
  };
  if (json.contains("targets") && !json.at("targets").is_null()) out.targets = names("targets");
  if (json.contains("ignore") && !json.at("ignore").is_null()) out.ignore = names("ignore");
  if (auto m = json.find("module_types"); m != json.end()) {
    static const std::vector<std::string> kinds = {"Linear", "Conv2d"};
    if (!m->is_array() || m->empty())
      bad("\"module_types\" must be a non-empty array of module kinds", at("module_types"));
    out.module_types.clear();
    for (size_t i = 0; i < m->size(); ++i) {
      const Json& k = (*m)[i];
      if (!k.is_string() || std::find(kinds.begin(), kinds.end(), k.get<std::string>()) == kinds.end()) {
        bad("expected a module kind (known: " + join(kinds) + "), got " + printable(k.dump()).substr(0, 60),
            at("module_types[" + std::to_string(i) + "]"));
      }
      out.module_types.push_back(k.get<std::string>());
    }
  }
  if (auto sc = json.find("scope"); sc != json.end()) {
    if (!sc->is_string() || (*sc != "tensor" && *sc != "global")) {
      bad("expected \"tensor\" or \"global\", got " + printable(sc->dump()).substr(0, 60), at("scope"));
    }
    out.scope = sc->get<std::string>();
    if (out.scope == "global" && !spec->global_ranking) {
      bad("a global ranking ranks WeightNormSparsifier's blocks over every tensor; " + out.sparsifier +
              " ranks within each tensor",
          at("scope"));
    }
  }
  // min_sparsity / max_sparsity bound a tensor's share of a global ranking: without one they mean nothing.
  if (out.scope != "global") {
    auto bounds_in = [&](const Json& obj, const std::string& path) {
      for (const char* key : {"min_sparsity", "max_sparsity"}) {
        if (obj.contains(key)) {
          bad(std::string(key) + " bounds a tensor's share of a global ranking; add \"scope\": \"global\"",
              at(path + "." + key));
        }
      }
    };
    bounds_in(out.defaults, "defaults");
    if (out.config) {
      for (size_t i = 0; i < out.config->size(); ++i) bounds_in((*out.config)[i], "config[" + std::to_string(i) + "]");
    }
  }
  if (auto s = json.find("scheduler"); s != json.end() && !s->is_null()) {
    if (!s->is_object()) bad("\"scheduler\" must be an object or null", at("scheduler"));
    auto t = s->find("type");
    if (t == s->end() || !t->is_string()) bad("scheduler without a string \"type\"", at("scheduler.type"));
    auto entry = scheduler_entry(t->get<std::string>(), at("scheduler.type"));
    if (!spec->has_sparsity_level) {
      bad("a scheduler needs groups with sparsity_level, which " + out.sparsifier + " does not have", at("scheduler"));
    }
    if (entry.second) entry.second(*s, at("scheduler"));
    out.scheduler = *s;
  }
  if (auto st = json.find("steps"); st != json.end()) {
    need_int(*st, 0, 1000000, "an integer in [0, 1000000]", at("steps"));
    out.steps = st->get<int64_t>();
  }
  if (out.scope == "global" && out.steps != 1) {
    bad("a global ranking runs one step per run (each step ranks every tensor again), got " +
            std::to_string(out.steps) + "; run prune again with --resume for the next",
        at("steps"));
  }
  return out;
}

PruneConfig parse_prune_config(std::string_view text, const std::string& where) {
  Json j;
  ::sparsity::detail::StrictJsonError err;
  if (!::sparsity::detail::parse_strict(text.data(), text.data() + text.size(), j, err)) {
    if (err.kind == 1) bad("duplicate key " + quote(err.key), printable(where) + ", key " + printable(err.key));
    if (err.kind == 2) bad("configuration is nested too deeply", printable(where));
    bad("configuration is not valid JSON", printable(where) + ", byte offset " + std::to_string(err.offset));
  }
  return parse_prune_config(j, where);
}

}  // namespace sparsity

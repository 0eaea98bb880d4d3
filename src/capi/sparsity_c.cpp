// The C API (sparsity.h): handles over the C++ lifecycle, every exception turned into a status code.
#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/json_strict.hpp"
#include "base/text.hpp"
#include "prune/targets.hpp"
#include "sparsity/base/version.hpp"
#include "sparsity/core/ops.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/prune/engine.hpp"
#include "sparsity/prune/pack.hpp"
#include "sparsity/prune/registry.hpp"
#include "sparsity/sparsity.h"

namespace {
// The C enum's values are the ABI and never change; the C++ enum may grow in any order.
constexpr std::pair<int, sparsity::DType> kDTypes[] = {
    {SPARSITY_DTYPE_F32, sparsity::DType::f32}, {SPARSITY_DTYPE_F64, sparsity::DType::f64},
    {SPARSITY_DTYPE_F16, sparsity::DType::f16}, {SPARSITY_DTYPE_BF16, sparsity::DType::bf16},
    {SPARSITY_DTYPE_BOOL, sparsity::DType::bool_}, {SPARSITY_DTYPE_U8, sparsity::DType::u8},
    {SPARSITY_DTYPE_I8, sparsity::DType::i8},   {SPARSITY_DTYPE_I32, sparsity::DType::i32},
    {SPARSITY_DTYPE_I64, sparsity::DType::i64}, {SPARSITY_DTYPE_I16, sparsity::DType::i16},
};
}  // namespace

struct sparsity_tensor {
  sparsity::Tensor tensor;
};

struct sparsity_model {
  sparsity::NamedList<sparsity::Tensor> tensors;  // in the order given
  std::set<std::string> names;                    // tensor names
  std::set<std::string> modules;                  // every proper prefix of a name ("a", "a.b")
  sparsity::ModulePtr tree;                       // built by the first prepare; the model is fixed then
};

struct sparsity_sparsifier {
  std::string name;
  sparsity::Json defaults;
  std::shared_ptr<sparsity::BaseSparsifier> sparsifier;  // schedulers share it
  bool prepared = false;
  bool squashed = false;
};

struct sparsity_scheduler {
  std::shared_ptr<sparsity::BaseSparsifier> sparsifier;  // the scheduler holds a reference into it
  std::unique_ptr<sparsity::BaseScheduler> scheduler;
};

namespace {

using sparsity::Error;
using sparsity::ErrorCode;
using sparsity::Json;
using sparsity::detail::quote;

// ---- errors ---------------------------------------------------------------------------------------

thread_local std::string t_message;
thread_local const char* t_last = "";

void set_error(const char* prefix, const char* message) noexcept {
  try {
    t_message = sparsity::detail::one_line(std::string(prefix) + message);
    t_last = t_message.c_str();
  } catch (...) {
    t_last = "out of memory (while recording an error)";
  }
}

sparsity_status status_of(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::InvalidArgument:
      return SPARSITY_INVALID_ARGUMENT;
    case ErrorCode::NotFound:
      return SPARSITY_NOT_FOUND;
    case ErrorCode::FailedPrecondition:
      return SPARSITY_FAILED_PRECONDITION;
    case ErrorCode::OutOfRange:
      return SPARSITY_OUT_OF_RANGE;
    case ErrorCode::Io:
      return SPARSITY_IO;
    case ErrorCode::Internal:
      return SPARSITY_INTERNAL;
  }
  return SPARSITY_INTERNAL;
}

// Runs one API call: OK with an empty message, or the error's status and message. Nothing escapes.
template <class F>
sparsity_status guarded(F&& f) noexcept {
  try {
    f();
    t_last = "";
    return SPARSITY_OK;
  } catch (const Error& e) {
    set_error("", e.what());
    return status_of(e.code());
  } catch (const std::bad_alloc&) {
    set_error("", "out of memory (allocation failed)");
    return SPARSITY_NO_MEMORY;
  } catch (const std::exception& e) {
    set_error("internal error: ", e.what());
    return SPARSITY_INTERNAL;
  } catch (...) {
    set_error("internal error: ", "unknown exception");
    return SPARSITY_INTERNAL;
  }
}

[[noreturn]] void fail(ErrorCode code, const std::string& what) { throw Error(code, what); }

// `function: argument is NULL`.
template <class T>
void need(const T* p, const char* function, const char* argument) {
  if (p == nullptr) fail(ErrorCode::InvalidArgument, std::string(function) + ": " + argument + " is NULL");
}

// JSON text of an argument: `what` names it in messages; null or "" gives `empty`.
Json parse_json(const char* text, const char* function, const char* what, Json empty) {
  if (text == nullptr || *text == '\0') return empty;
  Json j;
  sparsity::detail::StrictJsonError err;
  const size_t n = std::strlen(text);
  if (!sparsity::detail::parse_strict(text, text + n, j, err)) {
    const std::string head = std::string(function) + ": " + what;
    if (err.kind == 1) fail(ErrorCode::InvalidArgument, head + " has the key " + quote(err.key) + " twice");
    if (err.kind == 2) fail(ErrorCode::InvalidArgument, head + " is nested too deeply");
    fail(ErrorCode::InvalidArgument,
         head + " is not valid JSON (byte offset " + std::to_string(err.offset) + ")");
  }
  return j;
}

// The value of a C enum argument, read without assuming it is one of the enumerators (a C caller may
// pass any int).
template <class E>
int raw_value(const E& e) noexcept {
  static_assert(sizeof(E) == sizeof(int), "C enums are ints");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// The dotted parts of a name; an empty part is an error.
std::vector<std::string> parts_of(const std::string& name, const char* function) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t dot = name.find('.', start);
    parts.push_back(name.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (parts.back().empty()) {
      fail(ErrorCode::InvalidArgument,
           std::string(function) + ": tensor name " + quote(name) + " has an empty part");
    }
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

// The module tree the names describe; a module's type comes from its `weight`, as for checkpoints.
sparsity::ModulePtr build_tree(const sparsity_model& m) {
  std::unordered_map<std::string, std::string> type_of;
  for (const auto& [name, t] : m.tensors) {
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
      sparsity::io::TensorInfo info;
      info.dtype = t.dtype();
      info.shape = t.shape();
      type_of.emplace(name.substr(0, name.size() - 7), sparsity::prune::module_type_of(info));
    }
  }
  auto root = std::make_shared<sparsity::Module>("Model");
  std::unordered_map<std::string, sparsity::ModulePtr> modules;
  for (const auto& [name, t] : m.tensors) {
    const auto parts = parts_of(name, "sparsity_model_add_tensor");
    sparsity::ModulePtr cur = root;
    std::string fqn;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      fqn += (i ? "." : "") + parts[i];
      auto it = modules.find(fqn);
      if (it == modules.end()) {
        const auto type = type_of.find(fqn);
        auto child = std::make_shared<sparsity::Module>(type == type_of.end() ? "Module" : type->second);
        cur->register_module(parts[i], child);
        it = modules.emplace(fqn, child).first;
      }
      cur = it->second;
    }
    cur->register_parameter(parts.back(), t);
  }
  return root;
}

const sparsity::TensorState& state_of(const sparsity_sparsifier* s, const char* fqn, const char* function) {
  need(fqn, function, "tensor_fqn");
  if (!s->prepared)
    fail(ErrorCode::FailedPrecondition, std::string(function) + ": the sparsifier is not prepared");
  for (const auto& [name, st] : s->sparsifier->state()) {
    if (name == fqn) return st;
  }
  fail(ErrorCode::NotFound, std::string(function) + ": no prepared tensor " + quote(fqn));
}

}  // namespace

// ---- status, errors, version --------------------------------------------------------------------------

extern "C" {

const char* sparsity_last_error(void) { return t_last; }

const char* sparsity_status_string(sparsity_status status) {
  switch (raw_value(status)) {
    case SPARSITY_OK:
      return "ok";
    case SPARSITY_INVALID_ARGUMENT:
      return "invalid argument";
    case SPARSITY_NOT_FOUND:
      return "not found";
    case SPARSITY_FAILED_PRECONDITION:
      return "failed precondition";
    case SPARSITY_OUT_OF_RANGE:
      return "out of range";
    case SPARSITY_IO:
      return "i/o error";
    case SPARSITY_INTERNAL:
      return "internal error";
    case SPARSITY_NO_MEMORY:
      return "out of memory";
  }
  return "unknown status";
}

const char* sparsity_version(void) { return sparsity::version_string(); }

// ---- tensors ----------------------------------------------------------------------------------------

sparsity_status sparsity_tensor_create(void* data, sparsity_dtype dtype, const int64_t* shape, size_t ndim,
                                       sparsity_tensor** out) {
  return guarded([&] {
    constexpr const char* f = "sparsity_tensor_create";
    need(out, f, "out");
    *out = nullptr;
    const int d = raw_value(dtype);
    const auto known = std::find_if(std::begin(kDTypes), std::end(kDTypes), [d](const auto& e) { return e.first == d; });
    if (known == std::end(kDTypes)) fail(ErrorCode::InvalidArgument, std::string(f) + ": unknown dtype " + std::to_string(d));
    if (ndim > 8)
      fail(ErrorCode::InvalidArgument,
           std::string(f) + ": " + std::to_string(ndim) + " dimensions (at most 8)");
    if (ndim > 0) need(shape, f, "shape");
    const sparsity::DType dt = known->second;
    sparsity::Shape s(shape, shape + ndim);
    uint64_t bytes = sparsity::size_of(dt);
    for (size_t i = 0; i < ndim; ++i) {
      if (s[i] < 0)
        fail(ErrorCode::InvalidArgument, std::string(f) + ": shape[" + std::to_string(i) + "] is negative");
    }
    const bool empty = std::find(s.begin(), s.end(), 0) != s.end();
    for (size_t i = 0; i < ndim && !empty; ++i) {
      if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(s[i]), &bytes) ||
          bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(ErrorCode::OutOfRange,
             std::string(f) + ": shape " + sparsity::shape_to_string(s) + " is too large");
      }
    }
    if (!empty) need(data, f, "data");
    auto t = std::make_unique<sparsity_tensor>();
    t->tensor = empty ? sparsity::Tensor::zeros(s, dt) : sparsity::Tensor::from_blob(data, s, dt);
    *out = t.release();
  });
}

sparsity_status sparsity_tensor_destroy(sparsity_tensor* tensor) {
  return guarded([&] { delete tensor; });
}

sparsity_status sparsity_tensor_numel(const sparsity_tensor* tensor, int64_t* numel) {
  return guarded([&] {
    need(tensor, "sparsity_tensor_numel", "tensor");
    need(numel, "sparsity_tensor_numel", "numel");
    *numel = tensor->tensor.numel();
  });
}

// ---- models -----------------------------------------------------------------------------------------

sparsity_status sparsity_model_create(sparsity_model** out) {
  return guarded([&] {
    need(out, "sparsity_model_create", "out");
    *out = nullptr;
    *out = new sparsity_model();
  });
}

sparsity_status sparsity_model_add_tensor(sparsity_model* model, const char* name,
                                          const sparsity_tensor* tensor) {
  return guarded([&] {
    constexpr const char* f = "sparsity_model_add_tensor";
    need(model, f, "model");
    need(name, f, "name");
    need(tensor, f, "tensor");
    if (model->tree) fail(ErrorCode::FailedPrecondition, std::string(f) + ": the model is prepared already");
    const std::string n(name);
    const auto parts = parts_of(n, f);
    if (model->names.count(n))
      fail(ErrorCode::InvalidArgument, std::string(f) + ": tensor " + quote(n) + " is given twice");
    if (model->modules.count(n)) {
      fail(ErrorCode::InvalidArgument,
           std::string(f) + ": " + quote(n) + " names a module (a prefix of another tensor)");
    }
    std::vector<std::string> prefixes;
    std::string prefix;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      prefix += (i ? "." : "") + parts[i];
      if (model->names.count(prefix)) {
        fail(ErrorCode::InvalidArgument,
             std::string(f) + ": " + quote(prefix) + " is a tensor and cannot hold " + quote(n));
      }
      prefixes.push_back(prefix);
    }
    model->tensors.emplace_back(n, tensor->tensor);
    model->names.insert(n);
    model->modules.insert(prefixes.begin(), prefixes.end());
  });
}

sparsity_status sparsity_model_destroy(sparsity_model* model) {
  return guarded([&] { delete model; });
}

// ---- sparsifiers ------------------------------------------------------------------------------------

sparsity_status sparsity_sparsifier_create(const char* name, const char* defaults_json,
                                           sparsity_sparsifier** out) {
  return guarded([&] {
    constexpr const char* f = "sparsity_sparsifier_create";
    need(out, f, "out");
    *out = nullptr;
    need(name, f, "name");
    sparsity::sparsifier_spec(name);  // NotFound listing the registered names
    const Json defaults = parse_json(defaults_json, f, "defaults_json", Json::object());
    const sparsity::PruneConfig cfg =
        sparsity::parse_prune_config(Json{{"sparsifier", name}, {"defaults", defaults}}, "defaults_json");
    auto s = std::make_unique<sparsity_sparsifier>();
    s->name = name;
    s->defaults = cfg.defaults;
    s->sparsifier = sparsity::make_sparsifier(cfg.sparsifier, cfg.defaults);
    *out = s.release();
  });
}

sparsity_status sparsity_sparsifier_prepare(sparsity_sparsifier* sparsifier, sparsity_model* model,
                                            const char* config_json) {
  return guarded([&] {
    constexpr const char* f = "sparsity_sparsifier_prepare";
    need(sparsifier, f, "sparsifier");
    need(model, f, "model");
    if (sparsifier->prepared)
      fail(ErrorCode::FailedPrecondition, std::string(f) + ": the sparsifier is prepared already");
    std::optional<std::vector<sparsity::ConfigEntry>> entries;
    if (config_json != nullptr) {
      const Json config = parse_json(config_json, f, "config_json", Json());
      if (!config.is_array())
        fail(ErrorCode::InvalidArgument, std::string(f) + ": config_json is not a JSON array");
      const sparsity::PruneConfig cfg = sparsity::parse_prune_config(
          Json{{"sparsifier", sparsifier->name}, {"config", config}}, "config_json");
      entries.emplace(cfg.config->begin(), cfg.config->end());
      // Only floating tensors can be pruned (a mask over integers has no meaning to the sparsifiers).
      for (const auto& e : *cfg.config) {
        const std::string fqn = e.at("tensor_fqn").get<std::string>();
        for (const auto& [name, t] : model->tensors) {
          if (name == fqn && !sparsity::is_floating(t.dtype())) {
            fail(ErrorCode::InvalidArgument, std::string(f) + ": tensor " + quote(fqn) + " has dtype " +
                                                 sparsity::to_string(t.dtype()) +
                                                 "; only floating tensors can be pruned");
          }
        }
      }
    }
    const bool fresh = !model->tree;
    if (fresh) model->tree = build_tree(*model);
    try {
      sparsifier->sparsifier->prepare(model->tree, entries);
    } catch (...) {
      if (fresh) model->tree.reset();  // a failed prepare leaves the model as it was (open for tensors)
      throw;
    }
    sparsifier->prepared = true;
  });
}

sparsity_status sparsity_sparsifier_step(sparsity_sparsifier* sparsifier) {
  return guarded([&] {
    constexpr const char* f = "sparsity_sparsifier_step";
    need(sparsifier, f, "sparsifier");
    if (!sparsifier->prepared)
      fail(ErrorCode::FailedPrecondition, std::string(f) + ": prepare the sparsifier first");
    if (sparsifier->squashed)
      fail(ErrorCode::FailedPrecondition, std::string(f) + ": the masks are squashed already");
    sparsifier->sparsifier->step();
  });
}

sparsity_status sparsity_sparsifier_mask_numel(const sparsity_sparsifier* sparsifier, const char* tensor_fqn,
                                               int64_t* numel) {
  return guarded([&] {
    constexpr const char* f = "sparsity_sparsifier_mask_numel";
    need(sparsifier, f, "sparsifier");
    need(numel, f, "numel");
    *numel = state_of(sparsifier, tensor_fqn, f).mask.numel();
  });
}

sparsity_status sparsity_sparsifier_mask_bytes(const sparsity_sparsifier* sparsifier, const char* tensor_fqn,
                                               uint8_t* out, size_t size) {
  return guarded([&] {
    constexpr const char* f = "sparsity_sparsifier_mask_bytes";
    need(sparsifier, f, "sparsifier");
    const sparsity::Tensor mask = state_of(sparsifier, tensor_fqn, f).mask.contiguous();
    const auto n = static_cast<size_t>(mask.numel());
    if (size != n) {
      fail(ErrorCode::InvalidArgument, std::string(f) + ": the mask of " + quote(tensor_fqn) + " has " +
                                           std::to_string(n) + " elements, the buffer " +
                                           std::to_string(size) + " bytes");
    }
    if (n == 0) return;
    need(out, f, "out");
    sparsity::kernels::mask_to_bytes(mask.dtype(), mask.data_ptr(), n, out);
  });
}

sparsity_status sparsity_sparsifier_mask_bits(const sparsity_sparsifier* sparsifier, const char* tensor_fqn,
                                              uint8_t* out, size_t size) {
  return guarded([&] {
    constexpr const char* f = "sparsity_sparsifier_mask_bits";
    need(sparsifier, f, "sparsifier");
    const sparsity::Tensor& mask = state_of(sparsifier, tensor_fqn, f).mask;
    const size_t want = (static_cast<size_t>(mask.numel()) + 7) / 8;
    if (size != want) {
      fail(ErrorCode::InvalidArgument, std::string(f) + ": the mask of " + quote(tensor_fqn) +
                                           " packs into " + std::to_string(want) + " bytes, the buffer has " +
                                           std::to_string(size));
    }
    if (want == 0) return;
    need(out, f, "out");
    const std::vector<uint8_t> bits = sparsity::mask_to_bits(mask);
    std::copy(bits.begin(), bits.end(), out);
  });
}

sparsity_status sparsity_sparsifier_squash(sparsity_sparsifier* sparsifier) {
  return guarded([&] {
    constexpr const char* f = "sparsity_sparsifier_squash";
    need(sparsifier, f, "sparsifier");
    if (!sparsifier->prepared)
      fail(ErrorCode::FailedPrecondition, std::string(f) + ": prepare the sparsifier first");
    if (sparsifier->squashed)
      fail(ErrorCode::FailedPrecondition, std::string(f) + ": the masks are squashed already");
    // The parametrization's value is written into the original tensor's storage: the caller's buffer.
    sparsifier->sparsifier->squash_mask();
    sparsifier->squashed = true;
  });
}

sparsity_status sparsity_sparsifier_destroy(sparsity_sparsifier* sparsifier) {
  return guarded([&] { delete sparsifier; });
}

// ---- schedulers --------------------------------------------------------------------------------------

sparsity_status sparsity_scheduler_create(sparsity_sparsifier* sparsifier, const char* json,
                                          sparsity_scheduler** out) {
  return guarded([&] {
    constexpr const char* f = "sparsity_scheduler_create";
    need(out, f, "out");
    *out = nullptr;
    need(sparsifier, f, "sparsifier");
    need(json, f, "json");
    if (!sparsifier->prepared)
      fail(ErrorCode::FailedPrecondition, std::string(f) + ": prepare the sparsifier first");
    const Json spec = parse_json(json, f, "json", Json());
    const sparsity::PruneConfig cfg =
        sparsity::parse_prune_config(Json{{"sparsifier", sparsifier->name}, {"scheduler", spec}}, "json");
    if (cfg.scheduler.is_null()) fail(ErrorCode::InvalidArgument, std::string(f) + ": json is null");
    auto s = std::make_unique<sparsity_scheduler>();
    s->sparsifier = sparsifier->sparsifier;
    s->scheduler = sparsity::make_scheduler(*s->sparsifier, cfg.scheduler);
    *out = s.release();
  });
}

sparsity_status sparsity_scheduler_step(sparsity_scheduler* scheduler) {
  return guarded([&] {
    need(scheduler, "sparsity_scheduler_step", "scheduler");
    scheduler->scheduler->step();
  });
}

sparsity_status sparsity_scheduler_levels(const sparsity_scheduler* scheduler, double* out, size_t count) {
  return guarded([&] {
    constexpr const char* f = "sparsity_scheduler_levels";
    need(scheduler, f, "scheduler");
    const std::vector<double>& levels = scheduler->scheduler->get_last_sl();
    if (count != levels.size()) {
      fail(ErrorCode::InvalidArgument, std::string(f) + ": the scheduler has " +
                                           std::to_string(levels.size()) + " levels, the buffer " +
                                           std::to_string(count));
    }
    if (count == 0) return;
    need(out, f, "out");
    std::copy(levels.begin(), levels.end(), out);
  });
}

sparsity_status sparsity_scheduler_destroy(sparsity_scheduler* scheduler) {
  return guarded([&] { delete scheduler; });
}

// ---- checkpoints ----------------------------------------------------------------------------------------

sparsity_status sparsity_prune_checkpoint(const char* model_path, const char* config_json,
                                          const char* output_path, const char* masks_path,
                                          const char* state_path, int threads) {
  return guarded([&] {
    constexpr const char* f = "sparsity_prune_checkpoint";
    need(model_path, f, "model_path");
    need(config_json, f, "config_json");
    if (threads < 0) fail(ErrorCode::InvalidArgument, std::string(f) + ": threads is negative");
    sparsity::prune::Options o;
    o.model = model_path;
    o.config = sparsity::parse_prune_config(std::string_view(config_json), "config_json");
    o.config_where = "config_json";
    o.output = output_path ? output_path : "";
    o.masks = masks_path ? masks_path : "";
    o.state = state_path ? state_path : "";
    o.threads = threads;
    sparsity::prune::run(o);
  });
}

sparsity_status sparsity_pack_file(const char* model_path, const char* output_path, const char* format,
                                   int threads) {
  return guarded([&] {
    constexpr const char* f = "sparsity_pack_file";
    need(model_path, f, "model_path");
    need(output_path, f, "output_path");
    if (threads < 0) fail(ErrorCode::InvalidArgument, std::string(f) + ": threads is negative");
    sparsity::prune::PackOptions o;
    o.model = model_path;
    o.output = output_path;
    o.format = sparsity::PackFormat::from_string(format ? format : "auto");
    o.threads = threads;
    sparsity::prune::pack_file(o);
  });
}

sparsity_status sparsity_unpack_file(const char* packed_path, const char* output_path, int threads) {
  return guarded([&] {
    constexpr const char* f = "sparsity_unpack_file";
    need(packed_path, f, "packed_path");
    need(output_path, f, "output_path");
    if (threads < 0) fail(ErrorCode::InvalidArgument, std::string(f) + ": threads is negative");
    sparsity::prune::UnpackOptions o;
    o.packed = packed_path;
    o.output = output_path;
    o.threads = threads;
    sparsity::prune::unpack_file(o);
  });
}

}  // extern "C"

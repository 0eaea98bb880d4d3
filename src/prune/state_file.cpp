// Sparsifier state files: (de)serialization of masks as packed bits plus JSON metadata.
#include "sparsity/prune/state_file.hpp"

#include <cstring>
#include <set>

#include "base/json_strict.hpp"
#include "base/text.hpp"
#include "sparsity/core/ops.hpp"
#include "sparsity/io/safetensors.hpp"

namespace sparsity::prune {
namespace {

using ::sparsity::detail::fail_at_file;
using ::sparsity::detail::printable;
using ::sparsity::detail::quote;

constexpr const char* kFormat = "sparsity-state/1";


}  // namespace

PackedMask pack_mask(const Tensor& mask) { return {mask.shape(), mask_to_bits(mask)}; }

Tensor unpack_mask(const PackedMask& mask) { return mask_from_bits(mask.bits.data(), mask.bits.size(), mask.shape); }

SparsifierCheckpoint checkpoint_of(const BaseSparsifier& sparsifier, const BaseScheduler* scheduler, int64_t steps) {
  SparsifierCheckpoint c;
  c.sparsifier = sparsifier.class_name();
  c.defaults = sparsifier.defaults();
  const SparsifierStateDict sd = sparsifier.state_dict();
  c.groups = sd.groups;
  for (const auto& [fqn, st] : sd.state) {
    if (st.mask.defined()) c.masks.emplace_back(fqn, pack_mask(st.mask));
    if (!st.values.empty()) c.values[fqn] = st.values;
  }
  c.scheduler = scheduler ? scheduler->state_dict() : Json();
  c.steps = steps;
  return c;
}

SparsifierStateDict to_state_dict(const SparsifierCheckpoint& c) {
  SparsifierStateDict sd;
  sd.groups = c.groups;
  for (const auto& [fqn, m] : c.masks) {
    TensorState st;
    st.mask = unpack_mask(m);
    if (c.values.contains(fqn)) st.values = c.values[fqn];
    sd.state.emplace_back(fqn, st);
  }
  return sd;
}

void save_checkpoint(const std::string& path, const SparsifierCheckpoint& c) { stage_checkpoint(path, c)->publish(); }

std::unique_ptr<io::SafetensorsWriter> stage_checkpoint(const std::string& path, const SparsifierCheckpoint& c,
                                                    bool durable) {
  std::map<std::string, std::string> meta;
  meta["sparsity.format"] = kFormat;
  meta["sparsifier"] = c.sparsifier;
  meta["defaults"] = c.defaults.dump();
  Json groups = Json::array();
  for (const auto& g : c.groups) groups.push_back(g);
  meta["groups"] = groups.dump();
  Json state = Json::object();
  for (const auto& [fqn, m] : c.masks) {
    Json s = c.values.contains(fqn) ? c.values[fqn] : Json::object();
    s["shape"] = m.shape;
    state[fqn] = s;
  }
  meta["state"] = state.dump();
  meta["scheduler"] = c.scheduler.dump();
  meta["steps"] = std::to_string(c.steps);
  std::vector<io::TensorSpec> specs;
  for (const auto& [fqn, m] : c.masks) specs.push_back({fqn, "U8", {static_cast<int64_t>(m.bits.size())}});
  auto w = std::make_unique<io::SafetensorsWriter>(path, std::move(specs), meta);
  w->set_durable(durable);
  for (size_t i = 0; i < c.masks.size(); ++i) {
    const auto& bits = c.masks[i].second.bits;
    if (!bits.empty()) w->write(i, 0, bits.data(), bits.size());
  }
  w->finish();
  return w;
}

SparsifierCheckpoint load_checkpoint(const std::string& path) {
  auto file = io::SafetensorsFile::open(path);
  const auto& meta = file->metadata();
  auto text = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end())
      fail_at_file(ErrorCode::InvalidArgument,
                   std::string("not a sparsity state file: no __metadata__ key ") + quote(key), path,
                   std::string("key __metadata__.") + key);
    return it->second;
  };
  auto json = [&](const char* key) {
    const std::string& t = text(key);
    Json j;
    ::sparsity::detail::StrictJsonError err;
    if (!::sparsity::detail::parse_strict(t.data(), t.data() + t.size(), j, err)) {
      fail_at_file(ErrorCode::InvalidArgument, "invalid JSON in state metadata", path, std::string("key __metadata__.") + key);
    }
    return j;
  };
  if (text("sparsity.format") != kFormat) {
    fail_at_file(ErrorCode::InvalidArgument, "unsupported state format " + quote(text("sparsity.format")) + " (expected " + kFormat + ")", path,
        "key __metadata__.sparsity.format");
  }
  SparsifierCheckpoint c;
  c.sparsifier = text("sparsifier");
  c.defaults = json("defaults");
  if (!c.defaults.is_object()) fail_at_file(ErrorCode::InvalidArgument, "defaults must be a JSON object", path, "key __metadata__.defaults");
  const Json groups = json("groups");
  if (!groups.is_array()) fail_at_file(ErrorCode::InvalidArgument, "groups must be a JSON array", path, "key __metadata__.groups");
  std::set<std::string> fqns;
  for (size_t i = 0; i < groups.size(); ++i) {
    const Json& g = groups[i];
    if (!g.is_object() || !g.contains("tensor_fqn") || !g["tensor_fqn"].is_string()) {
      fail_at_file(ErrorCode::InvalidArgument, "group without a string tensor_fqn", path, "key __metadata__.groups[" + std::to_string(i) + "]");
    }
    if (!fqns.insert(g["tensor_fqn"].get<std::string>()).second) {
      fail_at_file(ErrorCode::InvalidArgument, "tensor_fqn " + quote(g["tensor_fqn"].get<std::string>()) + " appears twice", path,
          "key __metadata__.groups[" + std::to_string(i) + "]");
    }
    c.groups.push_back(g);
  }
  const Json state = json("state");
  if (!state.is_object()) fail_at_file(ErrorCode::InvalidArgument, "state must be a JSON object", path, "key __metadata__.state");
  c.scheduler = json("scheduler");
  if (!c.scheduler.is_null() && !c.scheduler.is_object()) {
    fail_at_file(ErrorCode::InvalidArgument, "scheduler must be a JSON object or null", path, "key __metadata__.scheduler");
  }
  try {
    const std::string& s = text("steps");
    size_t used = 0;
    c.steps = std::stoll(s, &used);
    // Scheduler epochs are ints: a count beyond them could not be continued.
    if (used != s.size() || c.steps < 0 || c.steps > kMaxSteps) throw std::invalid_argument("steps");
  } catch (const std::logic_error&) {
    fail_at_file(ErrorCode::InvalidArgument, "steps must be an integer in [0, " + std::to_string(kMaxSteps) + "]",
                 path, "key __metadata__.steps");
  }
  for (auto it = state.begin(); it != state.end(); ++it) {
    const std::string& fqn = it.key();
    const std::string where = "key __metadata__.state." + printable(fqn);
    if (!fqns.count(fqn)) fail_at_file(ErrorCode::InvalidArgument, "state entry " + quote(fqn) + " has no group", path, where);
    const Json& s = it.value();
    if (!s.is_object() || !s.contains("shape") || !s["shape"].is_array()) fail_at_file(ErrorCode::InvalidArgument, "state entry without a shape", path, where);
    PackedMask m;
    for (const auto& d : s["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
        fail_at_file(ErrorCode::InvalidArgument, "shape holds a value that is not a non-negative integer", path, where);
      }
      m.shape.push_back(d.get<int64_t>());
    }
    int64_t n = 0;
    try {
      n = shape_numel(m.shape);
    } catch (const Error&) {
      fail_at_file(ErrorCode::InvalidArgument, "shape overflows", path, where);
    }
    if (!file->contains(fqn)) fail_at_file(ErrorCode::InvalidArgument, "no mask tensor for " + quote(fqn), path, "tensor " + quote(fqn));
    const io::TensorInfo& info = file->info(fqn);
    const uint64_t need = (static_cast<uint64_t>(n) + 7) / 8;
    if (info.dtype_name != "U8" || info.shape.size() != 1 || info.nbytes() != need) {
      fail_at_file(ErrorCode::InvalidArgument, "mask of shape " + shape_to_string(m.shape) + " must be U8 [" + std::to_string(need) + "]", path,
          "tensor " + quote(fqn));
    }
    m.bits.assign(file->bytes(info), file->bytes(info) + info.nbytes());
    Json values = s;
    values.erase("shape");
    if (!values.empty()) c.values[fqn] = values;
    c.masks.emplace_back(fqn, std::move(m));
  }
  for (const auto& info : file->tensors()) {
    if (!state.contains(info.name)) fail_at_file(ErrorCode::InvalidArgument, "tensor " + quote(info.name) + " is not in the state", path, "tensor " + quote(info.name));
  }
  return c;
}

}  // namespace sparsity::prune

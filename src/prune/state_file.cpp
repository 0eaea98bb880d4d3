// Sparsifier state files: (de)serialization of masks as packed bits plus JSON metadata.
#include "sparsity/prune/state_file.hpp"

#include <cstring>
#include <set>

#include "io/json_strict.hpp"
#include "base/text.hpp"
#include "sparsity/io/safetensors.hpp"
#include "sparsity/kernels/kernels.hpp"

namespace sparsity::io {
namespace {

using ::sparsity::detail::printable;
using ::sparsity::detail::quote;

constexpr const char* kFormat = "sparsity-state/1";

[[noreturn]] void bad(const std::string& what, const std::string& path, const std::string& where) {
  throw Error(ErrorCode::InvalidArgument, what + " (" + printable(path) + ", " + where + ")");
}

}  // namespace

PackedMask pack_mask(const Tensor& mask) {
  PackedMask p;
  p.shape = mask.shape();
  const size_t n = static_cast<size_t>(mask.numel());
  p.bits.assign((n + 7) / 8, 0);
  Tensor c = mask.contiguous();
  if (c.dtype() == DType::u8 || c.dtype() == DType::bool_) {
    // bool_ bytes are 0/1 too; any non-zero byte counts as kept.
    kernels::bytes_to_bits(static_cast<const uint8_t*>(c.data_ptr()), n, p.bits.data());
  } else {
    std::vector<uint8_t> bytes(n);
    kernels::mask_to_bytes(c.dtype(), c.data_ptr(), n, bytes.data());
    kernels::bytes_to_bits(bytes.data(), n, p.bits.data());
  }
  return p;
}

Tensor unpack_mask(const PackedMask& mask) {
  Tensor t = Tensor::zeros(mask.shape, DType::u8);
  const size_t n = static_cast<size_t>(t.numel());
  SPARSITY_CHECK(mask.bits.size() == (n + 7) / 8, InvalidArgument, "packed mask of shape ",
                 shape_to_string(mask.shape), " needs ", (n + 7) / 8, " bytes, got ", mask.bits.size());
  if (n) kernels::bits_to_bytes(mask.bits.data(), n, static_cast<uint8_t*>(t.mutable_data_ptr()));
  return t;
}

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

std::unique_ptr<SafetensorsWriter> stage_checkpoint(const std::string& path, const SparsifierCheckpoint& c,
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
  std::vector<TensorSpec> specs;
  for (const auto& [fqn, m] : c.masks) specs.push_back({fqn, "U8", {static_cast<int64_t>(m.bits.size())}});
  auto w = std::make_unique<SafetensorsWriter>(path, std::move(specs), meta);
  w->set_durable(durable);
  for (size_t i = 0; i < c.masks.size(); ++i) {
    const auto& bits = c.masks[i].second.bits;
    if (!bits.empty()) w->write(i, 0, bits.data(), bits.size());
  }
  w->finish();
  return w;
}

SparsifierCheckpoint load_checkpoint(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  const auto& meta = file->metadata();
  auto text = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end()) bad(std::string("not a sparsity state file: no __metadata__ key '") + key + "'", path,
                              std::string("key __metadata__.") + key);
    return it->second;
  };
  auto json = [&](const char* key) {
    const std::string& t = text(key);
    Json j;
    detail::StrictJsonError err;
    if (!detail::parse_strict(t.data(), t.data() + t.size(), j, err)) {
      bad("invalid JSON in state metadata", path, std::string("key __metadata__.") + key);
    }
    return j;
  };
  if (text("sparsity.format") != kFormat) {
    bad("unsupported state format " + quote(text("sparsity.format")) + " (expected " + kFormat + ")", path,
        "key __metadata__.sparsity.format");
  }
  SparsifierCheckpoint c;
  c.sparsifier = text("sparsifier");
  c.defaults = json("defaults");
  if (!c.defaults.is_object()) bad("defaults must be a JSON object", path, "key __metadata__.defaults");
  const Json groups = json("groups");
  if (!groups.is_array()) bad("groups must be a JSON array", path, "key __metadata__.groups");
  std::set<std::string> fqns;
  for (size_t i = 0; i < groups.size(); ++i) {
    const Json& g = groups[i];
    if (!g.is_object() || !g.contains("tensor_fqn") || !g["tensor_fqn"].is_string()) {
      bad("group without a string tensor_fqn", path, "key __metadata__.groups[" + std::to_string(i) + "]");
    }
    if (!fqns.insert(g["tensor_fqn"].get<std::string>()).second) {
      bad("tensor_fqn " + quote(g["tensor_fqn"].get<std::string>()) + " appears twice", path,
          "key __metadata__.groups[" + std::to_string(i) + "]");
    }
    c.groups.push_back(g);
  }
  const Json state = json("state");
  if (!state.is_object()) bad("state must be a JSON object", path, "key __metadata__.state");
  c.scheduler = json("scheduler");
  if (!c.scheduler.is_null() && !c.scheduler.is_object()) {
    bad("scheduler must be a JSON object or null", path, "key __metadata__.scheduler");
  }
  try {
    const std::string& s = text("steps");
    size_t used = 0;
    c.steps = std::stoll(s, &used);
    if (used != s.size() || c.steps < 0) throw std::invalid_argument("steps");
  } catch (const std::logic_error&) {
    bad("steps must be a non-negative integer", path, "key __metadata__.steps");
  }
  for (auto it = state.begin(); it != state.end(); ++it) {
    const std::string& fqn = it.key();
    const std::string where = "key __metadata__.state." + printable(fqn);
    if (!fqns.count(fqn)) bad("state entry " + quote(fqn) + " has no group", path, where);
    const Json& s = it.value();
    if (!s.is_object() || !s.contains("shape") || !s["shape"].is_array()) bad("state entry without a shape", path, where);
    PackedMask m;
    for (const auto& d : s["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
        bad("shape holds a value that is not a non-negative integer", path, where);
      }
      m.shape.push_back(d.get<int64_t>());
    }
    int64_t n = 0;
    try {
      n = shape_numel(m.shape);
    } catch (const Error&) {
      bad("shape overflows", path, where);
    }
    if (!file->contains(fqn)) bad("no mask tensor for " + quote(fqn), path, "tensor " + quote(fqn));
    const TensorInfo& info = file->info(fqn);
    const uint64_t need = (static_cast<uint64_t>(n) + 7) / 8;
    if (info.dtype_name != "U8" || info.shape.size() != 1 || info.nbytes() != need) {
      bad("mask of shape " + shape_to_string(m.shape) + " must be U8 [" + std::to_string(need) + "]", path,
          "tensor " + quote(fqn));
    }
    m.bits.assign(file->bytes(info), file->bytes(info) + info.nbytes());
    Json values = s;
    values.erase("shape");
    if (!values.empty()) c.values[fqn] = values;
    c.masks.emplace_back(fqn, std::move(m));
  }
  for (const auto& info : file->tensors()) {
    if (!state.contains(info.name)) bad("tensor " + quote(info.name) + " is not in the state", path, "tensor " + quote(info.name));
  }
  return c;
}

}  // namespace sparsity::io

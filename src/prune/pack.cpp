// pack_file / unpack_file: packed checkpoints out of core (plan, write, publish), and reading the
// packed weights of a file back.
#include "sparsity/prune/pack.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "base/json_strict.hpp"
#include "base/text.hpp"
#include "io/paths.hpp"
#include "prune/pool.hpp"
#include "prune/targets.hpp"
#include "sparsity/core/ops.hpp"
#include "sparsity/io/checkpoint.hpp"
#include "sparsity/io/safetensors.hpp"

namespace sparsity::prune {
namespace {

using ::sparsity::detail::at_file;
using ::sparsity::detail::at_key;
using ::sparsity::detail::at_tensor;
using ::sparsity::detail::quote;

// Every part name of every layout (PackedTensor::parts()), in the order of the README's table.
constexpr const char* kPartNames[] = {"shape",       "compressed",  "bitmask",
                                      "row_offsets", "col_indices", "crow_indices"};
constexpr size_t kWeightSuffix = 7;  // ".weight"

bool ends_with_weight(const std::string& name) {
  return name.size() > kWeightSuffix &&
         name.compare(name.size() - kWeightSuffix, kWeightSuffix, ".weight") == 0;
}
std::string part_name(const std::string& weight, const std::string& part) {
  return weight.substr(0, weight.size() - kWeightSuffix) + "." + part;
}

std::string metadata_where() { return at_key(std::string("__metadata__.") + kPackedMetadataKey); }

// A single safetensors file (pack writes safetensors and unpack restores what pack read).
std::shared_ptr<io::TensorFile> open_safetensors(const std::string& path, const char* command) {
  SPARSITY_CHECK_AT(!io::is_index_path(path), InvalidArgument, {at_file(path)}, command,
                    " reads one .safetensors file, not the index of a sharded model (not supported yet)");
  auto file = io::open_tensor_file(path);
  SPARSITY_CHECK_AT(file->format() == "safetensors", InvalidArgument, {at_file(path)}, command,
                    " reads safetensors files, this one is ", file->format());
  return file;
}

// The output may replace the input (it appears by rename once complete) but no other file it reads, and
// must be a regular file when it exists.
void check_output(const std::string& output,
                  const std::vector<std::pair<std::string, std::string>>& other_inputs) {
  SPARSITY_CHECK(!output.empty(), InvalidArgument, "the output path is empty");
  struct stat st {};
  SPARSITY_CHECK_AT(::stat(output.c_str(), &st) != 0 || S_ISREG(st.st_mode), InvalidArgument,
                    {at_file(output)}, "the output names something that is not a regular file");
  const auto out_id = io::file_id(output);
  for (const auto& [path, what] : other_inputs) {
    if (path.empty() || !out_id) continue;
    SPARSITY_CHECK_AT(io::file_id(path) != out_id, InvalidArgument, {at_file(output)},
                      "the output would overwrite the ", what, " ", quote(path));
  }
}

// Elements whose bits are not +0.0: what pack() keeps without a mask (-0.0 and NaN included).
uint64_t count_not_plus_zero(const Tensor& dense) {
  const Tensor c = dense.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  const size_t n = static_cast<size_t>(c.numel());
  uint64_t kept = 0;
  if (c.element_size() == 4) {
    for (size_t i = 0; i < n; ++i) {
      uint32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      kept += v != 0;
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      kept += v != 0;
    }
  }
  return kept;
}

bool packable_dtype(const io::TensorInfo& info) {
  return info.dtype && (*info.dtype == DType::f32 || *info.dtype == DType::f16 || *info.dtype == DType::bf16);
}

// Workers for jobs of at most `largest` bytes each under a budget of `budget` bytes.
int worker_count(int threads, size_t jobs, uint64_t largest, uint64_t budget) {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const uint64_t want = static_cast<uint64_t>(threads > 0 ? threads : hw);
  return static_cast<int>(std::max<uint64_t>(
      1, std::min<uint64_t>({want, std::max<size_t>(jobs, 1), budget / std::max<uint64_t>(largest, 1)})));
}

// Serialised progress reporting over a fixed total.
class Progress {
 public:
  Progress(const std::function<void(uint64_t, uint64_t)>& f, uint64_t total)
      : f_(f), total_(std::max<uint64_t>(total, 1)) {}
  void add(uint64_t bytes) {
    if (!f_) return;
    std::lock_guard<std::mutex> lock(mu_);
    done_ = std::min(total_, done_ + bytes);
    f_(done_, total_);
  }

 private:
  const std::function<void(uint64_t, uint64_t)>& f_;
  uint64_t total_;
  uint64_t done_ = 0;
  std::mutex mu_;
};

[[noreturn]] void refuse_manifest(const io::TensorFile& file, const std::string& what) {
  throw Error(ErrorCode::InvalidArgument, what, {at_file(file.path()), metadata_where()});
}

Json parse_manifest(const io::TensorFile& file, const std::string& text) {
  Json j;
  ::sparsity::detail::StrictJsonError err;
  if (!::sparsity::detail::parse_strict(text.data(), text.data() + text.size(), j, err, /*max_depth=*/8)) {
    refuse_manifest(file, err.kind == 1   ? "duplicate key " + quote(err.key) + " in the packed weights' list"
                          : err.kind == 2 ? std::string("the packed weights' list is nested too deep")
                                          : "the packed weights' list is not valid JSON (at byte " +
                                                std::to_string(err.offset) + ")");
  }
  return j;
}

}  // namespace

// ---- reading packed files ------------------------------------------------------------------------------

std::vector<PackedWeight> packed_weights(const io::TensorFile& file) {
  const auto m = file.metadata().find(kPackedMetadataKey);
  if (m == file.metadata().end()) return {};
  auto bad = [&](const std::string& what) { refuse_manifest(file, what); };
  const Json j = parse_manifest(file, m->second);
  if (!j.is_object()) bad("the packed weights' list is not a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (key != "format" && key != "tensors") bad("unknown key " + quote(key) + " (expected format, tensors)");
  }
  const auto format = j.find("format");
  if (format == j.end() || !format->is_string()) bad("\"format\" must be a string");
  const auto tensors = j.find("tensors");
  if (tensors == j.end() || !tensors->is_object())
    bad("\"tensors\" must be an object of weight name: format");
  std::vector<PackedWeight> out;
  out.reserve(tensors->size());
  for (const auto& [name, f] : tensors->items()) {
    if (!ends_with_weight(name)) bad("packed weight name " + quote(name) + " does not end in '.weight'");
    if (!f.is_string()) bad("the format of " + quote(name) + " is not a string");
    PackedWeight w;
    w.name = name;
    try {
      w.format = PackFormat::from_string(f.get<std::string>());
    } catch (const Error& e) {
      bad("packed weight " + quote(name) + ": " + e.what());
    }
    if (w.format.is_auto()) bad("packed weight " + quote(name) + ": 'auto' is not a layout");
    if (file.contains(name)) {
      bad("lists " + quote(name) + " as packed, and the file holds a tensor of that name too");
    }
    for (const char* part : kPartNames) {
      if (const io::TensorInfo* info = file.find(part_name(name, part))) w.parts.emplace_back(part, info);
    }
    // tensors() is in file order, so entry addresses are too.
    std::sort(w.parts.begin(), w.parts.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    out.push_back(std::move(w));
  }
  std::stable_sort(out.begin(), out.end(), [](const PackedWeight& a, const PackedWeight& b) {
    if (a.parts.empty() || b.parts.empty()) return !a.parts.empty() && b.parts.empty();
    return a.parts.front().second < b.parts.front().second;
  });
  return out;
}

PackedTensor read_packed(const io::TensorFile& file, const PackedWeight& weight, PackedTensor::Check check) {
  const std::vector<std::string> where = {at_file(file.path()), at_tensor(weight.name)};
  NamedList<Tensor> parts;
  for (const auto& [part, info] : weight.parts) {
    SPARSITY_CHECK_AT(info->dtype.has_value(), InvalidArgument, where, "part ", quote(part), " (tensor ",
                      quote(info->name), ") has dtype ", info->dtype_name, ", which no packed part uses");
    parts.emplace_back(part, file.tensor(info->name));
  }
  try {
    return PackedTensor::from_parts(weight.format, parts, check);
  } catch (const Error& e) {
    throw e.at(where);
  }
}

// ---- pack ------------------------------------------------------------------------------------------------

namespace {

// What the planning pass decided for one entry of the input.
struct EntryPlan {
  int64_t report = -1;  ///< index into PackReport::weights for a candidate
  bool packed = false;
  PackFormat format = PackFormat::csr();  ///< the layout chosen (auto resolved)
  std::vector<io::TensorSpec> parts;      ///< packed: the output entries of its parts
  size_t out_index = 0;                   ///< first output entry
};

// The weight with its mask (when the masks file has one), packed in `format`; errors located at the weight.
PackedTensor pack_weight(const io::TensorFile& file, const io::TensorInfo& info, const io::TensorFile* masks,
                         const PackFormat& format) {
  const Tensor dense = file.tensor(info.name);
  if (masks != nullptr && masks->contains(info.name)) return pack(dense, format, masks->tensor(info.name));
  return pack(dense, format);
}

}  // namespace

PackReport pack_file(const PackOptions& opt) {
  const auto model = open_safetensors(opt.model, "pack");
  SPARSITY_CHECK_AT(model->metadata().count(kPackedMetadataKey) == 0, InvalidArgument,
                    (std::vector<std::string>{at_file(opt.model), metadata_where()}),
                    "the file is packed already (unpack it first)");
  std::shared_ptr<io::TensorFile> masks;
  if (!opt.masks.empty()) masks = io::open_tensor_file(opt.masks);
  check_output(opt.output, {{opt.masks, "masks file"}});
  const auto ignored = name_filter(opt.ignore, "ignore");

  // ---- candidates, collisions and masks: everything the header tells -----------------------------------
  const auto& entries = model->tensors();
  std::vector<EntryPlan> plan(entries.size());
  PackReport report;
  std::vector<size_t> candidates;
  for (size_t i = 0; i < entries.size(); ++i) {
    const io::TensorInfo& info = entries[i];
    if (!ends_with_weight(info.name) || info.shape.size() != 2 || !packable_dtype(info)) continue;
    plan[i].report = static_cast<int64_t>(report.weights.size());
    PackedWeightReport r;
    r.name = info.name;
    r.dtype = info.dtype_name;
    r.shape = info.shape;
    r.dense_bytes = info.nbytes();
    r.packed_bytes = info.nbytes();
    r.ignored = ignored(info.name);
    if (r.ignored) r.reason = "ignored";
    report.weights.push_back(std::move(r));
    if (report.weights.back().ignored) continue;
    const std::vector<std::string> where = {at_file(opt.model), at_tensor(info.name)};
    for (const char* part : kPartNames) {
      const std::string name = part_name(info.name, part);
      SPARSITY_CHECK_AT(!model->contains(name), InvalidArgument, where, "packed, ", quote(info.name),
                        " would store its part ", quote(part), " as ", quote(name),
                        ", a name the file gives another tensor (ignore the weight to leave it dense)");
    }
    if (masks) {
      if (const io::TensorInfo* mi = masks->find(info.name)) {
        SPARSITY_CHECK_AT(mi->dtype.has_value() && mi->shape == info.shape, InvalidArgument,
                          (std::vector<std::string>{at_file(opt.masks), at_tensor(info.name)}),
                          "the mask of ", quote(info.name), " is ", mi->dtype_name, " ",
                          shape_to_string(mi->shape), ", the weight is ", shape_to_string(info.shape));
      }
    }
    candidates.push_back(i);
  }

  // A worker holds one weight's mapped data and its parts (fewer bytes than the data for a weight that
  // is kept packed; a weight found not to shrink holds more for a moment) and, with masks, its mask.
  auto footprint = [&](size_t i) -> uint64_t {
    if (plan[i].report < 0 || report.weights[static_cast<size_t>(plan[i].report)].ignored) return 0;
    const uint64_t mask =
        masks && masks->contains(entries[i].name) ? masks->info(entries[i].name).nbytes() : 0;
    return 2 * entries[i].nbytes() + mask;
  };
  uint64_t largest = 1, data = 0, weight_bytes = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    largest = std::max(largest, footprint(i));
    data += entries[i].nbytes();
  }
  for (size_t i : candidates) weight_bytes += entries[i].nbytes();
  const uint64_t budget = std::max(largest, data / 10 * 9);
  Progress progress(opt.progress, data + weight_bytes);

  // ---- pass 1: per candidate, keep it dense or choose its layout and parts
  // ----------------------------------
  const int plan_workers = worker_count(opt.threads, candidates.size(), largest, budget);
  run_pool(
      candidates.size(), plan_workers, budget, [&](size_t c) { return footprint(candidates[c]); },
      [&](size_t c, int) {
        const size_t i = candidates[c];
        const io::TensorInfo& info = entries[i];
        PackedWeightReport& r = report.weights[static_cast<size_t>(plan[i].report)];
        try {
          const bool has_mask = masks && masks->contains(info.name);
          const uint64_t numel = info.numel();
          r.kept = has_mask ? static_cast<uint64_t>(count_kept(masks->tensor(info.name)))
                            : count_not_plus_zero(model->tensor(info.name));
          if (r.kept == numel) {
            r.reason = has_mask ? "its mask keeps every element" : "no element is +0.0";
          } else {
            const PackedTensor p = pack_weight(*model, info, masks.get(), opt.format);
            if (static_cast<uint64_t>(p.bytes()) >= info.nbytes()) {
              r.reason = "as " + p.format().to_string() + " it would take " + std::to_string(p.bytes()) +
                         " bytes, its dense data " + std::to_string(info.nbytes());
            } else {
              plan[i].packed = true;
              plan[i].format = p.format();
              for (const auto& [part, t] : p.parts()) {
                plan[i].parts.push_back(
                    {part_name(info.name, part), io::dtype_to_safetensors(t.dtype()), t.shape()});
              }
              r.format = p.format().to_string();
              r.packed_bytes = static_cast<uint64_t>(p.bytes());
            }
          }
        } catch (const Error& e) {
          throw e.at({at_file(opt.model), at_tensor(info.name)});
        }
        model->release(info);
        if (masks && masks->contains(info.name)) masks->release(masks->info(info.name));
        progress.add(info.nbytes());
      });

  // ---- the output's layout: each packed weight's parts where the weight was
  // ----------------------------------
  std::vector<io::TensorSpec> specs;
  Json listed = Json::object();
  std::string shared_format;
  for (size_t i = 0; i < entries.size(); ++i) {
    plan[i].out_index = specs.size();
    if (plan[i].packed) {
      for (const auto& s : plan[i].parts) specs.push_back(s);
      const std::string f = plan[i].format.to_string();
      listed[entries[i].name] = f;
      shared_format = report.packed++ == 0 || shared_format == f ? f : "mixed";
    } else {
      specs.push_back({entries[i].name, entries[i].dtype_name, entries[i].shape});
      if (plan[i].report < 0) ++report.other_tensors;
    }
  }
  std::map<std::string, std::string> metadata = model->metadata();
  metadata[kPackedMetadataKey] =
      Json{{"format", report.packed ? shared_format : "dense"}, {"tensors", std::move(listed)}}.dump();
  io::SafetensorsWriter writer(opt.output, std::move(specs), metadata);
  writer.set_durable(opt.durable);

  // ---- pass 2: write every entry -------------------------------------------------------------------------
  const int write_workers = worker_count(opt.threads, entries.size(), largest, budget);
  run_pool(
      entries.size(), write_workers, budget, [&](size_t i) { return plan[i].packed ? footprint(i) : 0; },
      [&](size_t i, int) {
        const io::TensorInfo& info = entries[i];
        try {
          if (!plan[i].packed) {
            writer.copy_from(plan[i].out_index, *model, info);
          } else {
            const PackedTensor p = pack_weight(*model, info, masks.get(), plan[i].format);
            const NamedList<Tensor> parts = p.parts();
            SPARSITY_CHECK(parts.size() == plan[i].parts.size(), Internal, "the second packing of ",
                           quote(info.name), " differs from the first");
            for (size_t k = 0; k < parts.size(); ++k) {
              const Tensor& t = parts[k].second;
              SPARSITY_CHECK(t.shape() == plan[i].parts[k].shape && t.is_contiguous(), Internal,
                             "the second packing of ", quote(info.name), " differs from the first");
              if (t.nbytes() != 0) writer.write(plan[i].out_index + k, 0, t.data_ptr(), t.nbytes());
            }
            model->release(info);
            if (masks && masks->contains(info.name)) masks->release(masks->info(info.name));
          }
        } catch (const Error& e) {
          throw e.at({at_file(opt.model), at_tensor(info.name)});
        }
        progress.add(info.nbytes());
      });
  writer.commit();
  report.input_bytes = model->file_size();
  report.output_bytes = writer.file_size();
  return report;
}

// ---- unpack ----------------------------------------------------------------------------------------------

UnpackReport unpack_file(const UnpackOptions& opt) {
  const auto file = open_safetensors(opt.packed, "unpack");
  SPARSITY_CHECK_AT(file->metadata().count(kPackedMetadataKey) != 0, InvalidArgument, {at_file(opt.packed)},
                    "not a packed file: its __metadata__ has no key ", quote(kPackedMetadataKey));
  check_output(opt.output, {});
  const std::vector<PackedWeight> weights = packed_weights(*file);

  // ---- the dense layout: each weight where its first part was, the other tensors as they are
  // ---------------
  std::unordered_map<const io::TensorInfo*, size_t> owner;  // part entry -> weight
  for (size_t w = 0; w < weights.size(); ++w) {
    for (const auto& [part, info] : weights[w].parts) owner.emplace(info, w);
  }
  struct Job {
    const io::TensorInfo* info = nullptr;  ///< a tensor copied as it is
    int64_t weight = -1;                   ///< or a packed weight
    uint64_t bytes = 0;                    ///< bytes read (its parts for a weight)
  };
  std::vector<Job> jobs;
  std::vector<io::TensorSpec> specs;
  std::vector<bool> placed(weights.size(), false);
  auto place = [&](size_t w) {
    const PackedTensor shapes = read_packed(*file, weights[w], PackedTensor::Check::shapes);
    specs.push_back({weights[w].name, io::dtype_to_safetensors(shapes.dtype()), shapes.shape()});
    Job j;
    j.weight = static_cast<int64_t>(w);
    for (const auto& [part, info] : weights[w].parts) j.bytes += info->nbytes();
    jobs.push_back(j);
    placed[w] = true;
  };
  for (const io::TensorInfo& info : file->tensors()) {
    const auto o = owner.find(&info);
    if (o == owner.end()) {
      specs.push_back({info.name, info.dtype_name, info.shape});
      jobs.push_back({&info, -1, info.nbytes()});
    } else if (!placed[o->second]) {
      place(o->second);
    }
  }
  for (size_t w = 0; w < weights.size(); ++w) {
    if (!placed[w]) place(w);  // no part at all: read_packed names the missing one
  }
  std::map<std::string, std::string> metadata = file->metadata();
  metadata.erase(kPackedMetadataKey);
  io::SafetensorsWriter writer(opt.output, specs, metadata);
  writer.set_durable(opt.durable);

  // A weight's job holds its parts and its dense data; what runs at once stays below the dense model.
  auto cost = [&](size_t j) { return jobs[j].weight < 0 ? 0 : jobs[j].bytes + writer.entries()[j].nbytes(); };
  uint64_t largest = 1, total = 0, dense = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    largest = std::max(largest, cost(j));
    total += jobs[j].bytes;
    dense += writer.entries()[j].nbytes();
  }
  const uint64_t budget = std::max(largest, dense / 10 * 9);
  Progress progress(opt.progress, total);
  UnpackReport report;
  run_pool(jobs.size(), worker_count(opt.threads, jobs.size(), largest, budget), budget, cost,
           [&](size_t j, int) {
             const Job& job = jobs[j];
             if (job.weight < 0) {
               try {
                 writer.copy_from(j, *file, *job.info);
               } catch (const Error& e) {
                 throw e.at({at_file(opt.packed), at_tensor(job.info->name)});
               }
             } else {
               const PackedWeight& w = weights[static_cast<size_t>(job.weight)];
               const Tensor dense = read_packed(*file, w).unpack();
               if (dense.nbytes() != 0) writer.write(j, 0, dense.data_ptr(), dense.nbytes());
               for (const auto& [part, info] : w.parts) file->release(*info);
             }
             progress.add(job.bytes);
           });
  writer.commit();
  report.weights = weights.size();
  report.other_tensors = jobs.size() - weights.size();
  report.input_bytes = file->file_size();
  report.output_bytes = writer.file_size();
  return report;
}

}  // namespace sparsity::prune

// prune_tensor: prepare / load / step on a one-tensor tree, then the squashed weight and mask streamed out.
#include "prune/tensor_job.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "sparsity/core/ops.hpp"
#include "sparsity/io/orientation.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"
#include "sparsity/sparsifier/wanda_sparsifier.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"

namespace sparsity::prune {
namespace {

constexpr size_t kSliceBytes = size_t{4} << 20;

// Bytes of the mask (non-zero = kept) for elements [off, off + n): the mask's own bytes when it is
// byte-sized, else converted into `buf`.
const uint8_t* mask_slice(const Tensor& mask, size_t off, size_t n, uint8_t* buf) {
  const uint8_t* base = static_cast<const uint8_t*>(mask.data_ptr());
  const size_t es = mask.element_size();
  if (es == 1) return base + off;
  kernels::mask_to_bytes(mask.dtype(), base + off * es, n, buf);
  return buf;
}

// Zeros among n elements of a float dtype at `p`, in slices through `buf` (kSliceBytes).
uint64_t zeros_in(DType dtype, const uint8_t* p, size_t n, uint8_t* buf) {
  uint64_t kept = 0;
  const size_t es = size_of(dtype);
  for (size_t off = 0; off < n; off += kSliceBytes) {
    const size_t cnt = std::min(kSliceBytes, n - off);
    kernels::mask_to_bytes(dtype, p + off * es, cnt, buf);
    kept += static_cast<uint64_t>(kernels::count_kept_bytes(buf, cnt));
  }
  return n - kept;
}

}  // namespace

uint64_t count_zeros(const io::TensorFile& file, const io::TensorInfo& info, WorkerScratch& scratch) {
  const size_t n = static_cast<size_t>(info.numel());
  if (n == 0 || !info.dtype) return 0;
  return zeros_in(*info.dtype, file.bytes(info), n, scratch.slice.get(std::min(n, kSliceBytes)));
}

std::optional<double> expected_sparsity(const Json& group) {
  const auto level = group.find("sparsity_level");
  if (level == group.end() || !level->is_number()) return std::nullopt;
  double fraction = 1.0;
  const auto shape = group.find("sparse_block_shape");
  if (shape != group.end() && shape->is_array() && shape->size() == 2) {
    const double vpb = (*shape)[0].get<double>() * (*shape)[1].get<double>();
    const auto z = group.find("zeros_per_block");
    if (z != group.end() && z->is_number() && vpb > 0) fraction = std::min(1.0, z->get<double>() / vpb);
  }
  return std::clamp(level->get<double>(), 0.0, 1.0) * fraction;
}

TensorLifecycle prepare_tensor(const Target& target, const PruneConfig& config, const ResumedTensor* resumed,
                               const Tensor& activation_norms, WorkerScratch& scratch) {
  const io::TensorInfo& info = *target.source->info;
  const size_t n = static_cast<size_t>(info.numel());
  TensorLifecycle lc;
  lc.model = module_tree({*target.source}, /*views=*/true, /*as_layers=*/false);
  lc.sparsifier = make_sparsifier(config.sparsifier, config.defaults);
  ConfigEntry entry(target.entry);
  if (info.transposed) {
    // Blocks and N:M groups are given in torch's (out, in) orientation; the sparsifier sees the stored
    // (in, out) layout, so the group's effective block is swapped once, here (a resumed group is the
    // saved, already stored-layout one).
    Json block = entry.options.contains("sparse_block_shape")
                     ? entry.options["sparse_block_shape"]
                     : lc.sparsifier->defaults().value("sparse_block_shape", Json());
    if (block.is_array() && block.size() == 2) {
      const auto stored = io::stored_block_shape(info, {block[0].get<int64_t>(), block[1].get<int64_t>()});
      entry.options["sparse_block_shape"] = {stored[0], stored[1]};
    }
  }
  uint8_t* mask_buffer = scratch.mask.get(std::max<size_t>(n, 1));
  std::memset(mask_buffer, 1, n);
  entry.mask = Tensor::from_blob(static_cast<void*>(mask_buffer), info.shape, DType::u8);
  if (activation_norms.defined()) {
    auto* wanda = dynamic_cast<WandaSparsifier*>(lc.sparsifier.get());
    SPARSITY_CHECK(wanda != nullptr, Internal, "activation norms for a ", lc.sparsifier->class_name());
    wanda->set_activation_norms(target.fqn, activation_norms);
  }
  lc.sparsifier->prepare(lc.model, std::vector<ConfigEntry>{entry});
  if (!config.scheduler.is_null()) lc.scheduler = make_scheduler(*lc.sparsifier, config.scheduler);
  if (resumed != nullptr) {
    SparsifierStateDict sd;
    sd.groups.push_back(resumed->group);
    TensorState st;
    st.mask = unpack_mask(*resumed->mask);
    st.values = resumed->values;
    sd.state.emplace_back(target.fqn, st);
    lc.sparsifier->load_state_dict(sd);
    if (lc.scheduler) lc.scheduler->load_state_dict(resumed->scheduler);
  }
  return lc;
}

TensorResult prune_tensor(const Target& target, const PruneConfig& config, const ResumedTensor* resumed,
                          const Tensor& activation_norms, int64_t blocks_to_prune, const TensorSinks& sinks,
                          WorkerScratch& scratch) {
  const auto start = std::chrono::steady_clock::now();
  const io::TensorInfo& info = *target.source->info;
  const io::TensorFile& file = *target.source->file;
  const size_t n = static_cast<size_t>(info.numel());
  TensorResult res;
  res.report.fqn = target.fqn;
  res.report.dtype = info.dtype_name;
  res.report.shape = info.shape;

  // ---- the lifecycle on a view of the tensor ---------------------------------------------------------
  file.prefetch(info);
  res.report.zeros_before = count_zeros(file, info, scratch);
  TensorLifecycle lc = prepare_tensor(target, config, resumed, activation_norms, scratch);
  BaseSparsifier* sparsifier = lc.sparsifier.get();
  BaseScheduler* scheduler = lc.scheduler.get();
  if (blocks_to_prune >= 0) {
    auto* wn = dynamic_cast<WeightNormSparsifier*>(sparsifier);
    SPARSITY_CHECK(wn != nullptr, Internal, "a global share for a ", sparsifier->class_name());
    wn->set_blocks_to_prune(0, blocks_to_prune);
  }
  for (int64_t s = 0; s < config.steps; ++s) {
    sparsifier->step();
    if (scheduler) scheduler->step();
    const int64_t kept = count_kept(sparsifier->state_of(target.fqn).mask);
    res.report.sparsity_per_step.push_back(n ? 1.0 - static_cast<double>(kept) / static_cast<double>(n) : 0.0);
  }
  const Tensor mask = sparsifier->state_of(target.fqn).mask.contiguous();
  // A global share is not the group's level: nothing to compare with.
  if (blocks_to_prune < 0) res.report.expected_sparsity = expected_sparsity(sparsifier->groups().at(0).config);

  // ---- outputs, streamed in slices --------------------------------------------------------------------
  {
    // The squash, slice by slice without a full-size copy (squash_mask() leaves exactly these bytes),
    // counted and streamed to the output.
    const size_t esize = size_of(*info.dtype);
    const size_t slice = std::max<size_t>(1, kSliceBytes / esize);
    uint8_t* buf = scratch.slice.get(std::max<size_t>(std::min(n, slice) * (esize + 1), 1));
    uint8_t* mask_buf = buf + std::min(n, slice) * esize;
    const uint8_t* src = file.bytes(info);
    for (size_t off = 0; off < n; off += slice) {
      const size_t cnt = std::min(slice, n - off);
      kernels::apply_mask_bytes(*info.dtype, src + off * esize, mask_slice(mask, off, cnt, mask_buf), buf, cnt);
      res.report.zeros_after += zeros_in(*info.dtype, buf, cnt, mask_buf);
      if (sinks.model != nullptr) sinks.model->write(sinks.model_index, off * esize, buf, cnt * esize);
    }
    if (sinks.model != nullptr) sinks.model->start_writeback();  // the disk starts while the next one runs
  }
  if (sinks.masks != nullptr) {
    // U8 masks hold exactly 0 or 1, whatever the sparsifier wrote.
    const size_t slice = kSliceBytes;
    uint8_t* buf = scratch.slice.get(std::max<size_t>(std::min(n, slice), 1));
    for (size_t off = 0; off < n; off += slice) {
      const size_t cnt = std::min(slice, n - off);
      kernels::mask_to_bytes(mask.dtype(), static_cast<const uint8_t*>(mask.data_ptr()) + off * mask.element_size(),
                             cnt, buf);
      sinks.masks->write(sinks.mask_index, off, buf, cnt);
    }
    sinks.masks->start_writeback();
  }
  if (sinks.state) {
    res.bits = pack_mask(mask);
    const SparsifierStateDict sd = sparsifier->state_dict();
    res.group = sd.groups.at(0);
    if (!sd.state.empty()) res.values = sd.state[0].second.values;
    if (scheduler) res.scheduler = scheduler->state_dict();
  }
  file.release(info);
  res.report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

}  // namespace sparsity::prune

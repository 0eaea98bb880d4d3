// prune_tensor: prepare / load / step on a one-tensor tree, then the squashed weight and mask streamed out.
#include "prune/tensor_job.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "sparsity/core/ops.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"

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

}  // namespace

TensorResult prune_tensor(const Target& target, const PruneConfig& config, const ResumedTensor* resumed,
                          const TensorSinks& sinks, WorkerScratch& scratch) {
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
  const ModulePtr model = module_tree({*target.source});
  auto sparsifier = make_sparsifier(config.sparsifier, config.defaults);
  ConfigEntry entry(target.entry);
  uint8_t* mask_buffer = scratch.mask.get(std::max<size_t>(n, 1));
  std::memset(mask_buffer, 1, n);
  entry.mask = Tensor::from_blob(static_cast<void*>(mask_buffer), info.shape, DType::u8);
  sparsifier->prepare(model, std::vector<ConfigEntry>{entry});
  std::unique_ptr<BaseScheduler> scheduler;
  if (!config.scheduler.is_null()) scheduler = make_scheduler(*sparsifier, config.scheduler);
  if (resumed != nullptr) {
    SparsifierStateDict sd;
    sd.groups.push_back(resumed->group);
    TensorState st;
    st.mask = unpack_mask(*resumed->mask);
    st.values = resumed->values;
    sd.state.emplace_back(target.fqn, st);
    sparsifier->load_state_dict(sd);
    if (scheduler) scheduler->load_state_dict(resumed->scheduler);
  }
  for (int64_t s = 0; s < config.steps; ++s) {
    sparsifier->step();
    if (scheduler) scheduler->step();
    const int64_t kept = count_kept(sparsifier->state_of(target.fqn).mask);
    res.report.sparsity_per_step.push_back(n ? 1.0 - static_cast<double>(kept) / static_cast<double>(n) : 0.0);
  }
  const Tensor mask = sparsifier->state_of(target.fqn).mask.contiguous();

  // ---- outputs, streamed in slices --------------------------------------------------------------------
  if (sinks.model != nullptr) {
    // The squash, without a full-size copy: squash_mask() leaves exactly these bytes.
    const size_t esize = size_of(*info.dtype);
    const size_t slice = std::max<size_t>(1, kSliceBytes / esize);
    uint8_t* buf = scratch.slice.get(std::max<size_t>(std::min(n, slice) * (esize + 1), 1));
    uint8_t* mask_buf = buf + std::min(n, slice) * esize;
    const uint8_t* src = file.bytes(info);
    for (size_t off = 0; off < n; off += slice) {
      const size_t cnt = std::min(slice, n - off);
      kernels::apply_mask_bytes(*info.dtype, src + off * esize, mask_slice(mask, off, cnt, mask_buf), buf, cnt);
      sinks.model->write(sinks.model_index, off * esize, buf, cnt * esize);
    }
    sinks.model->start_writeback();  // the disk starts on this tensor while the next one is computed
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

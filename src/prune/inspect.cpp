// inspect_checkpoint: zero counts and sparsity-pattern detection over mapped tensors.
#include "sparsity/prune/inspect.hpp"

#include <cstring>
#include <set>
#include <unordered_map>

#include "sparsity/core/ops.hpp"
#include "sparsity/io/checkpoint.hpp"
#include "sparsity/io/safetensors.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "sparsity/prune/pack.hpp"
#include "sparsity/prune/state_file.hpp"

namespace sparsity::prune {
namespace {

// Whether -0.0 counts as zero: floats by their DType, and the 8-bit float types no Tensor holds
// (safetensors F8_*, ONNX FLOAT8*) by name.
bool is_float(const io::TensorInfo& info) {
  if (info.dtype) return is_floating(*info.dtype);
  return info.dtype_name.find("F8") != std::string::npos || info.dtype_name.rfind("FLOAT", 0) == 0;
}

// Bytes per element when the data is an array of fixed-size elements (0 for block-quantized types
// such as GGUF's Q4_K, whose elements share bytes).
size_t element_size(const io::TensorInfo& info) {
  if (info.dtype) return size_of(*info.dtype);
  const uint64_t n = info.numel();
  if (n == 0) return 1;
  for (size_t es : {1, 2, 4, 8}) {
    if (info.nbytes() == n * es) return es;
  }
  return 0;
}

// 1 where the element is non-zero; a float's sign bit is ignored (-0.0 is zero).
void nonzero_flags(const uint8_t* p, size_t n, size_t esize, bool is_float, uint8_t* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* e = p + i * esize;
    uint8_t any = 0;
    for (size_t b = 0; b + 1 < esize; ++b) any |= e[b];
    any |= is_float ? (e[esize - 1] & 0x7f) : e[esize - 1];
    out[i] = any != 0;
  }
}

bool blocks_ok(const uint8_t* nz, int64_t rows, int64_t cols, int64_t br, int64_t bc, std::vector<int64_t>& kept) {
  const int64_t tr = (rows + br - 1) / br, tc = (cols + bc - 1) / bc;
  kept.assign(static_cast<size_t>(tr * tc), 0);
  kernels::count_kept_tiles(nz, rows, cols, br, bc, kept.data());
  for (int64_t i = 0; i < tr; ++i) {
    for (int64_t j = 0; j < tc; ++j) {
      const int64_t size = (std::min(rows, (i + 1) * br) - i * br) * (std::min(cols, (j + 1) * bc) - j * bc);
      const int64_t k = kept[static_cast<size_t>(i * tc + j)];
      if (k != 0 && k != size) return false;
    }
  }
  return true;
}

}  // namespace

std::string detect_pattern(const uint8_t* nz, int64_t rows, int64_t cols) {
  const size_t n = static_cast<size_t>(rows * cols);
  const int64_t kept = kernels::count_kept_bytes(nz, n);
  if (kept == static_cast<int64_t>(n)) return "dense";
  if (kept == 0) return "all zero";
  // N:M: the smallest ratio N/M over M in {2, 4, 8, 16, 32} dividing the groups' extent, for groups of M
  // along rows (1 x M tiles) or down the columns (M x 1, a weight stored as (in, out)). N:M only when the
  // groups are (nearly) full: at least 90% of N x groups elements are kept. This keeps block-sparse or
  // random matrices from passing as, say, 28:32.
  auto nm_of = [&](bool down) -> std::string {
    int64_t best_n = 0, best_m = 0;
    for (int64_t m : {2, 4, 8, 16, 32}) {
      if ((down ? rows : cols) % m != 0) continue;
      std::vector<int64_t> per(static_cast<size_t>(rows * cols / m));
      kernels::count_kept_tiles(nz, rows, cols, down ? m : 1, down ? 1 : m, per.data());
      int64_t most = 0;
      for (int64_t v : per) most = std::max(most, v);
      const bool full = kept * 10 >= 9 * most * static_cast<int64_t>(per.size());
      if (most < m && full && (best_m == 0 || most * best_m < best_n * m)) {
        best_n = most;
        best_m = m;
      }
    }
    return best_m ? std::to_string(best_n) + ":" + std::to_string(best_m) : "";
  };
  if (const std::string along_rows = nm_of(false); !along_rows.empty()) return along_rows;
  if (const std::string down = nm_of(true); !down.empty()) return down + " along columns";
  // Aligned blocks: the largest R x C (powers of two up to 64) whose tiles are all-zero or all-kept.
  std::vector<int64_t> scratch;
  int64_t max_c = 1, max_r = 1;
  for (int64_t c = 2; c <= 64 && c <= cols; c *= 2) {
    if (!blocks_ok(nz, rows, cols, 1, c, scratch)) break;
    max_c = c;
  }
  for (int64_t r = 2; r <= 64 && r <= rows; r *= 2) {
    if (!blocks_ok(nz, rows, cols, r, 1, scratch)) break;
    max_r = r;
  }
  int64_t br = 1, bc = 1;
  for (int64_t r = max_r; r >= 1; r /= 2) {
    for (int64_t c = max_c; c >= 1; c /= 2) {
      if (r * c <= br * bc) break;
      if (blocks_ok(nz, rows, cols, r, c, scratch)) {
        br = r;
        bc = c;
      }
    }
  }
  if (br * bc > 1) return std::to_string(br) + "x" + std::to_string(bc) + " blocks";
  return "unstructured";
}

namespace {

// A state file's groups and masks, the masks unpacked to read their patterns.
StateStats state_stats(const std::string& path) {
  const SparsifierCheckpoint c = load_checkpoint(path);
  StateStats st;
  st.sparsifier = c.sparsifier;
  st.steps = c.steps;
  st.scheduler = c.scheduler.is_object();
  for (const auto& [fqn, packed] : c.masks) {
    StateStats::Group g;
    g.mask.name = fqn;
    g.mask.dtype = "mask";
    g.mask.shape = packed.shape;
    const Tensor m = unpack_mask(packed);
    g.mask.numel = static_cast<uint64_t>(m.numel());
    g.mask.zeros = g.mask.numel - static_cast<uint64_t>(count_kept(m));
    const uint8_t* nz = static_cast<const uint8_t*>(m.data_ptr());
    if (packed.shape.size() >= 2 && g.mask.numel) {
      g.mask.pattern =
          detect_pattern(nz, packed.shape[0], static_cast<int64_t>(g.mask.numel) / packed.shape[0]);
    } else {
      g.mask.pattern = g.mask.zeros == 0              ? "dense"
                       : g.mask.zeros == g.mask.numel ? "all zero"
                                                      : "unstructured";
    }
    for (const auto& grp : c.groups) {
      if (grp.value("tensor_fqn", std::string()) == fqn) g.settings = grp;
    }
    st.groups.push_back(std::move(g));
  }
  return st;
}

}  // namespace

CheckpointStats inspect_checkpoint(const std::string& path) {
  const io::Checkpoint ckpt = io::Checkpoint::open(path);
  CheckpointStats out;
  std::vector<uint8_t> flags;
  // Zeros and pattern of `s` (name, shape and numel set) from its elements at `data`.
  auto count = [&](TensorStats& s, const uint8_t* data, size_t esize, bool floating, bool transposed) {
    const size_t n = static_cast<size_t>(s.numel);
    flags.resize(n);
    if (n) nonzero_flags(data, n, esize, floating, flags.data());
    const uint64_t kept = n ? static_cast<uint64_t>(kernels::count_kept_bytes(flags.data(), n)) : 0;
    s.zeros = s.numel - kept;
    if (s.shape.size() >= 2 && n) {
      const int64_t rows = s.shape[0], cols = static_cast<int64_t>(n) / rows;
      s.pattern = detect_pattern(flags.data(), rows, cols);
      if (transposed && s.shape.size() == 2) {
        std::vector<uint8_t> t(n);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c)
            t[static_cast<size_t>(c * rows + r)] = flags[static_cast<size_t>(r * cols + c)];
        }
        s.torch_pattern = detect_pattern(t.data(), cols, rows);
      }
    } else {
      s.pattern = kept == s.numel ? "dense" : kept == 0 ? "all zero" : "unstructured";
    }
    out.numel += s.numel;
    out.zeros += s.zeros;
  };
  // The packed weights of each shard, and which weight each part entry belongs to.
  std::vector<std::vector<PackedWeight>> packed(ckpt.shards().size());
  std::unordered_map<const io::TensorInfo*, const PackedWeight*> owner;
  for (size_t sh = 0; sh < ckpt.shards().size(); ++sh) {
    packed[sh] = packed_weights(*ckpt.shards()[sh]);
    for (const auto& w : packed[sh]) {
      if (w.parts.empty()) read_packed(*ckpt.shards()[sh], w);  // names the missing part
      for (const auto& [part, info] : w.parts) owner.emplace(info, &w);
    }
  }
  std::set<const PackedWeight*> seen;
  for (const auto& e : ckpt.entries()) {
    const io::TensorInfo& info = *e.info;
    TensorStats s;
    if (const auto o = owner.find(&info); o != owner.end()) {
      // A packed weight: one entry, at its first part.
      if (!seen.insert(o->second).second) continue;
      const PackedWeight& w = *o->second;
      const PackedTensor p = read_packed(*e.file, w);
      const Tensor dense = p.unpack();
      s.name = w.name;
      s.dtype = io::dtype_to_safetensors(p.dtype());
      s.shape = p.shape();
      s.numel = static_cast<uint64_t>(dense.numel());
      s.format = p.format().to_string();
      s.bytes = static_cast<uint64_t>(p.bytes());
      s.dense_bytes = dense.nbytes();
      count(s, static_cast<const uint8_t*>(dense.data_ptr()), dense.element_size(), /*floating=*/true,
            /*transposed=*/false);
      for (const auto& [part, pi] : w.parts) e.file->release(*pi);
      ++out.packed;
    } else {
      s.name = info.name;
      s.dtype = info.dtype_name;
      s.shape = info.shape;
      s.numel = info.numel();
      s.bytes = s.dense_bytes = info.nbytes();
      const size_t esize = element_size(info);
      if (esize == 0) {
        s.pattern = "block-quantized (not inspected)";
        s.inspected = false;
      } else {
        count(s, e.file->bytes(info), esize, is_float(info), info.transposed);
        e.file->release(info);
      }
    }
    out.bytes += s.bytes;
    out.dense_bytes += s.dense_bytes;
    out.tensors.push_back(std::move(s));
  }
  if (!ckpt.sharded()) {
    const auto& meta = ckpt.shards()[0]->metadata();
    if (auto f = meta.find("sparsity.format"); f != meta.end()) out.state = state_stats(path);
  }
  return out;
}

}  // namespace sparsity::prune

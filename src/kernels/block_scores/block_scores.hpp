// Block scores: mean of |w| or w^2 over r x c tiles, lanes = neighbouring tiles, each lane summing its
// tile in the reference's row-major order so every ISA gives the reference's bits.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/dispatch.hpp"
#include "kernels/reference.hpp"
#include "kernels/simd_util.hpp"

namespace sparsity::kernels {

/// Block-score kernels of one ISA. A chunk of L full-width tiles of a tile row is one batch: lane l
/// accumulates tile tc + l, reading its elements with a stride-bc gather (a plain load when bc == 1).
/// Partial chunks and the edge tile column go to the reference.
template <class Arch>
struct BlockScores {
  using BF = xsimd::batch<float, Arch>;
  using BD = xsimd::batch<double, Arch>;
  using BI = xsimd::batch<int32_t, Arch>;
  using BU = xsimd::batch<uint32_t, Arch>;
  using BL = xsimd::batch<int64_t, Arch>;

  static void fill(KernelTable& table);

  // Kind: 0 f32, 1 f64, 2 f16, 3 bf16 (the float_index of dispatch.hpp).
  template <int Kind>
  static void run(const void* w, int64_t rows, int64_t cols, int64_t ld, int64_t br, int64_t bc, Norm norm,
                  void* scores, int64_t tr0, int64_t tr1) {
    using Acc = std::conditional_t<Kind == 1, BD, BF>;
    using Idx = std::conditional_t<Kind == 1, BL, BI>;
    using Scalar = typename Acc::value_type;
    constexpr int64_t L = static_cast<int64_t>(Acc::size);
    const int64_t tcols = (cols + bc - 1) / bc;
    const int64_t full_tcols = cols / bc;
    alignas(64) typename Idx::value_type lane_offsets[L];
    for (int64_t l = 0; l < L; ++l) lane_offsets[l] = static_cast<typename Idx::value_type>(l * bc);
    const Idx idx = Idx::load_aligned(lane_offsets);
    Scalar* out = static_cast<Scalar*>(scores);
    for (int64_t tr = tr0; tr < tr1; ++tr) {
      const int64_t r0 = tr * br, r1 = std::min(rows, r0 + br);
      const Acc count(static_cast<Scalar>((r1 - r0) * bc));
      int64_t tc = 0;
      for (; tc + L <= full_tcols; tc += L) {
        Acc acc(Scalar{0});
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t j = 0; j < bc; ++j) acc += element_norm<Kind>(w, r * ld + tc * bc + j, bc, idx, norm);
        }
        finish<Kind>(acc / count).store_unaligned(out + tr * tcols + tc);
      }
      if (tc < tcols) block_scores_tail_reference(Kind, w, rows, cols, ld, br, bc, norm, scores, tr, tc);
    }
  }

 private:
  // norm(w) of the L elements at `base + l * stride`, as the accumulation batch.
  template <int Kind, class Idx>
  static auto element_norm(const void* w, int64_t base, int64_t stride, const Idx& idx, Norm norm) {
    if constexpr (Kind == 0 || Kind == 1) {
      using Acc = std::conditional_t<Kind == 1, BD, BF>;
      using Scalar = typename Acc::value_type;
      const Scalar* p = static_cast<const Scalar*>(w) + base;
      const Acc v = stride == 1 ? Acc::load_unaligned(p) : Acc::gather(p, idx);
      return norm == Norm::L1 ? xsimd::abs(v) : simd::opaque<Arch>(v * v);
    } else {
      const uint16_t* p = static_cast<const uint16_t*>(w) + base;
      const BU h = BU::gather(p, idx);
      const BF v = Kind == 2 ? half_to_float(h) : xsimd::bitwise_cast<BF>(h << 16);
      return round_to<Kind>(norm == Norm::L1 ? xsimd::abs(v) : v * v);
    }
  }

  // The tile mean, rounded for f16/bf16; every NaN becomes the quiet NaN (payloads depend on operand order).
  template <int Kind, class Acc>
  static Acc finish(const Acc& mean) {
    using Scalar = typename Acc::value_type;
    Acc m = mean;
    if constexpr (Kind == 2 || Kind == 3) m = round_to<Kind>(mean);
    return xsimd::select(xsimd::isnan(m), Acc(std::numeric_limits<Scalar>::quiet_NaN()), m);
  }

  // Rounds f32 values to f16 (Kind 2) or bf16 (Kind 3) and back, as Half / BFloat16 do.
  template <int Kind>
  static BF round_to(const BF& v) {
    const BU x = xsimd::bitwise_cast<BU>(v);
    if constexpr (Kind == 3) {
      const BI magnitude = xsimd::bitwise_cast<BI>(x & BU(0x7fffffffu));
      const BU rounded = (x + BU(0x7fffu) + ((x >> 16) & BU(1u))) >> 16;
      const BU nan = (x >> 16) | BU(0x40u);
      return xsimd::bitwise_cast<BF>(sel(magnitude > BI(0x7f800000), nan, rounded) << 16);
    } else {
      return half_to_float(float_to_half(v));
    }
  }

  // select() on u32 values under a condition computed on their int32 view.
  static BU sel(const xsimd::batch_bool<int32_t, Arch>& c, const BU& a, const BU& b) {
    return xsimd::bitwise_cast<BU>(xsimd::select(c, xsimd::bitwise_cast<BI>(a), xsimd::bitwise_cast<BI>(b)));
  }

  static BU float_to_half(const BF& f) {
    const BU x = xsimd::bitwise_cast<BU>(f);
    const BU sign = (x >> 16) & BU(0x8000u);
    const BU abs = x & BU(0x7fffffffu);
    const BI mag = xsimd::bitwise_cast<BI>(abs);  // non-negative: signed compares are exact
    const BU nan = BU(0x7c00u) | sel(mag > BI(0x7f800000), BU(0x200u) | ((abs >> 13) & BU(0x3ffu)), BU(0u));
    const BU subnormal = xsimd::bitwise_cast<BU>(xsimd::bitwise_cast<BF>(abs) + BF(0.5f)) - BU(0x3f000000u);
    const BU normal = (abs + BU(0xc8000fffu) + ((abs >> 13) & BU(1u))) >> 13;
    BU r = sel(mag < BI(0x38800000), subnormal, normal);
    r = sel(mag >= BI(0x477ff000), BU(0x7c00u), r);
    r = sel(mag >= BI(0x7f800000), nan, r);
    return sign | r;
  }

  static BF half_to_float(const BU& h) {
    const BU sign = (h & BU(0x8000u)) << 16;
    const BU exp = (h >> 10) & BU(0x1fu);
    const BU mant = h & BU(0x3ffu);
    const BU normal = sign | ((exp + BU(112u)) << 23) | (mant << 13);
    const BU inf_nan = sign | BU(0x7f800000u) | (mant << 13);
    const BF sub = xsimd::batch_cast<float>(xsimd::bitwise_cast<BI>(mant)) * BF(1.0f / 16777216.0f);
    const BU subnormal = xsimd::bitwise_cast<BU>(sub) | sign;
    return xsimd::bitwise_cast<BF>(
        xsimd::select(exp == BU(0x1fu), inf_nan, xsimd::select(exp == BU(0u), subnormal, normal)));
  }
};

template <class Arch>
void BlockScores<Arch>::fill(KernelTable& t) {
  t.block_scores[0] = &BlockScores::run<0>;
  t.block_scores[1] = &BlockScores::run<1>;
  t.block_scores[2] = &BlockScores::run<2>;
  t.block_scores[3] = &BlockScores::run<3>;
}

SPARSITY_EXTERN_KERNEL_FAMILY(BlockScores)

}  // namespace sparsity::kernels

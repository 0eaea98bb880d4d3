// General-path WeightNorm mask kernels instantiated for avx512 (compiled with the avx512 flags).
#include "kernels/norm_mask/norm_mask.hpp"

namespace sparsity::kernels {

template struct NormMask<xsimd::avx512bw>;

void fill_norm_mask_avx512(KernelTable& table) { NormMask<xsimd::avx512bw>::fill(table); }

}  // namespace sparsity::kernels

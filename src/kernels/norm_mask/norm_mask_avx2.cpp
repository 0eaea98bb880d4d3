// General-path WeightNorm mask kernels instantiated for avx2 (compiled with the avx2 flags).
#include "kernels/norm_mask/norm_mask.hpp"

namespace sparsity::kernels {

template struct NormMask<xsimd::avx2>;

void fill_norm_mask_avx2(KernelTable& table) { NormMask<xsimd::avx2>::fill(table); }

}  // namespace sparsity::kernels

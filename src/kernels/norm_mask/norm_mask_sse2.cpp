// General-path WeightNorm mask kernels instantiated for sse2 (compiled with the sse2 flags).
#include "kernels/norm_mask/norm_mask.hpp"

namespace sparsity::kernels {

template struct NormMask<xsimd::sse2>;

void fill_norm_mask_sse2(KernelTable& table) { NormMask<xsimd::sse2>::fill(table); }

}  // namespace sparsity::kernels

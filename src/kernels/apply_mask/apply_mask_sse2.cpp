// apply-mask kernels instantiated for sse2 (this file is compiled with the sse2 flags).
#include "kernels/apply_mask/apply_mask.hpp"

namespace sparsity::kernels {

template struct ApplyMask<xsimd::sse2>;

void fill_apply_mask_sse2(KernelTable& table) { ApplyMask<xsimd::sse2>::fill(table); }

}  // namespace sparsity::kernels

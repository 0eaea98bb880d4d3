// apply-mask kernels instantiated for avx2 (this file is compiled with the avx2 flags).
#include "kernels/apply_mask/apply_mask.hpp"

namespace sparsity::kernels {

template struct ApplyMask<xsimd::avx2>;

void fill_apply_mask_avx2(KernelTable& table) { ApplyMask<xsimd::avx2>::fill(table); }

}  // namespace sparsity::kernels

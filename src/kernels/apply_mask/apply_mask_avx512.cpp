// apply-mask kernels instantiated for avx512 (this file is compiled with the avx512 flags).
#include "kernels/apply_mask/apply_mask.hpp"

namespace sparsity::kernels {

template struct ApplyMask<xsimd::avx512bw>;

void fill_apply_mask_avx512(KernelTable& table) { ApplyMask<xsimd::avx512bw>::fill(table); }

}  // namespace sparsity::kernels

// Selection kernels instantiated for avx512 (compiled with the avx512 flags).
#include "kernels/select/select.hpp"

namespace sparsity::kernels {

template struct Select<xsimd::avx512bw>;

void fill_select_avx512(KernelTable& table) { Select<xsimd::avx512bw>::fill(table); }

}  // namespace sparsity::kernels

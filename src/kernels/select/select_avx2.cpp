// Selection kernels instantiated for avx2 (compiled with the avx2 flags).
#include "kernels/select/select.hpp"

namespace sparsity::kernels {

template struct Select<xsimd::avx2>;

void fill_select_avx2(KernelTable& table) { Select<xsimd::avx2>::fill(table); }

}  // namespace sparsity::kernels

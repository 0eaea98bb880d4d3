// Selection kernels instantiated for sse2 (compiled with the sse2 flags).
#include "kernels/select/select.hpp"

namespace sparsity::kernels {

template struct Select<xsimd::sse2>;

void fill_select_sse2(KernelTable& table) { Select<xsimd::sse2>::fill(table); }

}  // namespace sparsity::kernels

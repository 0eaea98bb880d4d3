// sparse-linear kernels instantiated for sse2 (this file is compiled with the sse2 flags).
#include "kernels/sparse_linear/sparse_linear.hpp"

namespace sparsity::kernels {

template struct SparseLinear<xsimd::sse2>;

void fill_sparse_linear_sse2(KernelTable& table) { SparseLinear<xsimd::sse2>::fill(table); }

}  // namespace sparsity::kernels

// sparse-linear kernels instantiated for avx2 (this file is compiled with the avx2 flags).
#include "kernels/sparse_linear/sparse_linear.hpp"

namespace sparsity::kernels {

template struct SparseLinear<xsimd::avx2>;

void fill_sparse_linear_avx2(KernelTable& table) { SparseLinear<xsimd::avx2>::fill(table); }

}  // namespace sparsity::kernels

// sparse-linear kernels instantiated for avx512 (this file is compiled with the avx512 flags).
#include "kernels/sparse_linear/sparse_linear.hpp"

namespace sparsity::kernels {

template struct SparseLinear<xsimd::avx512bw>;

void fill_sparse_linear_avx512(KernelTable& table) { SparseLinear<xsimd::avx512bw>::fill(table); }

}  // namespace sparsity::kernels

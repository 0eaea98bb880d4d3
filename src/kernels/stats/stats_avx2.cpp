// Mask statistics and conversion kernels instantiated for avx2 (compiled with the avx2 flags).
#include "kernels/stats/stats.hpp"

namespace sparsity::kernels {

template struct Stats<xsimd::avx2>;

void fill_stats_avx2(KernelTable& table) { Stats<xsimd::avx2>::fill(table); }

}  // namespace sparsity::kernels

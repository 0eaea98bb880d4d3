// Mask statistics and conversion kernels instantiated for avx512 (compiled with the avx512 flags).
#include "kernels/stats/stats.hpp"

namespace sparsity::kernels {

template struct Stats<xsimd::avx512bw>;

void fill_stats_avx512(KernelTable& table) { Stats<xsimd::avx512bw>::fill(table); }

}  // namespace sparsity::kernels

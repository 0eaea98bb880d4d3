// Mask statistics and conversion kernels instantiated for sse2 (compiled with the sse2 flags).
#include "kernels/stats/stats.hpp"

namespace sparsity::kernels {

template struct Stats<xsimd::sse2>;

void fill_stats_sse2(KernelTable& table) { Stats<xsimd::sse2>::fill(table); }

}  // namespace sparsity::kernels

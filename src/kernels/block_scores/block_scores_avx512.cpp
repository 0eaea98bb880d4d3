// Block-score kernels instantiated for avx512 (compiled with the avx512 flags).
#include "kernels/block_scores/block_scores.hpp"

namespace sparsity::kernels {

template struct BlockScores<xsimd::avx512bw>;

void fill_block_scores_avx512(KernelTable& table) { BlockScores<xsimd::avx512bw>::fill(table); }

}  // namespace sparsity::kernels

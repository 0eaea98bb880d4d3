// Block-score kernels instantiated for avx2 (compiled with the avx2 flags).
#include "kernels/block_scores/block_scores.hpp"

namespace sparsity::kernels {

template struct BlockScores<xsimd::avx2>;

void fill_block_scores_avx2(KernelTable& table) { BlockScores<xsimd::avx2>::fill(table); }

}  // namespace sparsity::kernels

// Block-score kernels instantiated for sse2 (compiled with the sse2 flags).
#include "kernels/block_scores/block_scores.hpp"

namespace sparsity::kernels {

template struct BlockScores<xsimd::sse2>;

void fill_block_scores_sse2(KernelTable& table) { BlockScores<xsimd::sse2>::fill(table); }

}  // namespace sparsity::kernels

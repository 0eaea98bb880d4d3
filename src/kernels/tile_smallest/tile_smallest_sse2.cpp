// tile_smallest kernels instantiated for sse2 (compiled with the sse2 flags).
#include "kernels/tile_smallest/tile_smallest.hpp"

namespace sparsity::kernels {

template struct TileSmallest<xsimd::sse2>;

void fill_tile_smallest_sse2(KernelTable& table) { TileSmallest<xsimd::sse2>::fill(table); }

}  // namespace sparsity::kernels

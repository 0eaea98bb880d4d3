// tile_smallest kernels instantiated for avx2 (compiled with the avx2 flags).
#include "kernels/tile_smallest/tile_smallest.hpp"

namespace sparsity::kernels {

template struct TileSmallest<xsimd::avx2>;

void fill_tile_smallest_avx2(KernelTable& table) { TileSmallest<xsimd::avx2>::fill(table); }

}  // namespace sparsity::kernels

// tile_smallest kernels instantiated for avx512 (compiled with the avx512 flags).
#include "kernels/tile_smallest/tile_smallest.hpp"

namespace sparsity::kernels {

template struct TileSmallest<xsimd::avx512bw>;

void fill_tile_smallest_avx512(KernelTable& table) { TileSmallest<xsimd::avx512bw>::fill(table); }

}  // namespace sparsity::kernels

// Flat-tile kernels instantiated for avx2 (compiled with the avx2 flags).
#include "kernels/flat_tiles/flat_tiles.hpp"

namespace sparsity::kernels {

template struct FlatTiles<xsimd::avx2>;

void fill_flat_tiles_avx2(KernelTable& table) { FlatTiles<xsimd::avx2>::fill(table); }

}  // namespace sparsity::kernels

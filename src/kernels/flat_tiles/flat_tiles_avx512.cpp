// Flat-tile kernels instantiated for avx512 (compiled with the avx512 flags).
#include "kernels/flat_tiles/flat_tiles.hpp"

namespace sparsity::kernels {

template struct FlatTiles<xsimd::avx512bw>;

void fill_flat_tiles_avx512(KernelTable& table) { FlatTiles<xsimd::avx512bw>::fill(table); }

}  // namespace sparsity::kernels

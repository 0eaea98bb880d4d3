// Flat-tile kernels instantiated for sse2 (compiled with the sse2 flags).
#include "kernels/flat_tiles/flat_tiles.hpp"

namespace sparsity::kernels {

template struct FlatTiles<xsimd::sse2>;

void fill_flat_tiles_sse2(KernelTable& table) { FlatTiles<xsimd::sse2>::fill(table); }

}  // namespace sparsity::kernels

// Flat-tile kernels, scalar half (baseline flags): tile flags and in-tile choice to mask bits, by table.
#include "kernels/flat_tiles/flat_tiles.hpp"

#include <algorithm>
#include <cstring>

namespace sparsity::kernels {

namespace {

// kSpread<bc>[x]: the 8 tile flags of byte x, each repeated bc times (bc = 16: the low 4 flags only).
struct SpreadTable {
  uint64_t v[256];
};

constexpr SpreadTable make_spread(unsigned bc) {
  SpreadTable s{};
  const uint64_t ones = (uint64_t{1} << bc) - 1;  // bc <= 16
  for (unsigned x = 0; x < 256; ++x) {
    uint64_t o = 0;
    for (unsigned b = 0; b < 8 && b * bc < 64; ++b) {
      if ((x >> b) & 1u) o |= ones << (b * bc);
    }
    s.v[x] = o;
  }
  return s;
}

constexpr SpreadTable kSpread2 = make_spread(2);
constexpr SpreadTable kSpread4 = make_spread(4);
constexpr SpreadTable kSpread8 = make_spread(8);
constexpr SpreadTable kSpread16 = make_spread(16);

}  // namespace

void flat_expand_bits(const uint64_t* selected, size_t e0, size_t ne, size_t bc, const uint8_t* pruned_bits,
                      uint8_t* bits) {
  const SpreadTable* spread = bc == 2 ? &kSpread2 : bc == 4 ? &kSpread4 : bc == 8 ? &kSpread8 : &kSpread16;
  const size_t per_word = 64 / bc;  // tiles per 64 elements
  const uint64_t flags_mask = per_word >= 64 ? ~uint64_t{0} : (uint64_t{1} << per_word) - 1;
  for (size_t w = 0; w * 64 < ne; ++w) {
    const size_t first = w * per_word;
    const uint64_t flags = (selected[first / 64] >> (first % 64)) & flags_mask;
    uint64_t expanded = flags;
    if (bc > 1) {
      expanded = 0;
      for (size_t k = 0; k * 8 < per_word; ++k)
        expanded |= spread->v[(flags >> (8 * k)) & 0xffu] << (8 * bc * k);
    }
    const size_t count = std::min<size_t>(64, ne - w * 64);
    const size_t nbytes = (count + 7) / 8;
    const size_t byte0 = e0 / 8 + w * 8;
    uint64_t pruned = ~uint64_t{0};
    if (pruned_bits != nullptr) {
      pruned = 0;
      std::memcpy(&pruned, pruned_bits + byte0, nbytes);
    }
    uint64_t out = ~(expanded & pruned);
    if (count < 64) out &= (uint64_t{1} << count) - 1;
    std::memcpy(bits + byte0, &out, nbytes);  // little-endian: bit i of the word is bit i % 8 of byte i / 8
  }
}

}  // namespace sparsity::kernels

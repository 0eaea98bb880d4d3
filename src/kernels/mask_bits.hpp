// Bit patterns of mask elements by dtype: the value 1, and the bits that make an element non-zero.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sparsity/base/dtype.hpp"

namespace sparsity::kernels {

/// Bit pattern of the value 1 in `dtype` (integers and bool: 1).
inline uint64_t one_bits(DType dtype) {
  switch (dtype) {
    case DType::f32: return 0x3f800000u;
    case DType::f64: return 0x3ff0000000000000ull;
    case DType::f16: return 0x3c00u;
    case DType::bf16: return 0x3f80u;
    default: return 1u;
  }
}

/// Bits that make an element of `dtype` non-zero: floats drop the sign (-0.0 is zero), integers keep all.
inline uint64_t value_bits(DType dtype) {
  const size_t sz = size_of(dtype);
  const uint64_t all = sz == 8 ? ~0ull : (1ull << (8 * sz)) - 1;
  return is_floating(dtype) ? (all >> 1) : all;
}

}  // namespace sparsity::kernels

// Tensor-level mask operations (apply, squash, conversions, packing), routed to the SIMD kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sparsity/core/tensor.hpp"

namespace sparsity {

/// `mask` kept-elements of `x`, +0.0 elsewhere (select, not multiply), with x's dtype. The mask may be
/// bool/u8/i8/i32/i64 or any float dtype (non-zero = kept) and must have x's shape exactly
/// (InvalidArgument naming both shapes otherwise; no broadcasting).
Tensor apply_mask(const Tensor& x, const Tensor& mask);

/// In place: x = apply_mask(x, mask) (torch's squash).
void apply_mask_(const Tensor& x, const Tensor& mask);

/// Mask as a contiguous u8 tensor of 0/1 (non-zero, including NaN, = 1).
Tensor mask_to_u8(const Tensor& mask);

/// Mask packed as bits, ceil(numel / 8) bytes: element i is bit i % 8 of byte i / 8, 1 = kept
/// (non-zero, including NaN); the unused high bits of the last byte are 0.
std::vector<uint8_t> mask_to_bits(const Tensor& mask);

/// The u8 0/1 mask of `shape` held by packed bits (as mask_to_bits writes them); InvalidArgument when
/// `nbytes` is not ceil(numel / 8).
Tensor mask_from_bits(const uint8_t* bits, size_t nbytes, const Shape& shape);

/// Kept (non-zero, including NaN) elements of a mask of any dtype.
int64_t count_kept(const Tensor& mask);

}  // namespace sparsity

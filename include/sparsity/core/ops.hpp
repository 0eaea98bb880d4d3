// Tensor-level mask operations, routed to the SIMD kernels of kernels.hpp.
#pragma once

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

}  // namespace sparsity

// The dense baseline of the sparse-linear benchmarks: y = x W^T + b through Eigen, one thread.
#pragma once

#include <cstdint>

namespace sparsity::bench {

/// y (batch x out) = x (batch x in) W^T + b for a row-major W (out x in), all f32 and contiguous, with
/// Eigen's GEMV (batch 1) or GEMM, single-threaded. Compiled with the flags of the best kernel ISA of the
/// build (dense_linear_baseline.cpp), so the baseline is vectorised as well as Eigen can.
void dense_linear(const float* w, int64_t out, int64_t in, const float* x, int64_t batch, const float* bias, float* y);

/// The ISA dense_linear() was compiled for ("avx512", "avx2" or "sse2"); the CPU must have it.
const char* dense_linear_isa();

}  // namespace sparsity::bench

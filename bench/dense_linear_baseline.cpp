// The dense baseline of the sparse-linear benchmarks: Eigen GEMV / GEMM, one thread, built with the flags
// of the best kernel ISA (bench/CMakeLists.txt), because a baseline-flag Eigen runs SSE2 code.
#include "dense_linear_baseline.hpp"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

namespace sparsity::bench {

void dense_linear(const float* w, int64_t out, int64_t in, const float* x, int64_t batch, const float* bias,
                  float* y) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowMajor> W(w, out, in);
  Eigen::Map<const Eigen::VectorXf> B(bias, out);
  if (batch == 1) {
    Eigen::Map<const Eigen::VectorXf> X(x, in);
    Eigen::Map<Eigen::VectorXf> Y(y, out);
    Y.noalias() = W * X;
    Y += B;
    return;
  }
  Eigen::Map<const RowMajor> X(x, batch, in);
  Eigen::Map<RowMajor> Y(y, batch, out);
  Y.noalias() = X * W.transpose();
  Y.rowwise() += B.transpose();
}

const char* dense_linear_isa() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "sse2";
#endif
}

}  // namespace sparsity::bench

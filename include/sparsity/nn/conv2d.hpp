// nn::Conv2d: a 2-D convolution over NCHW inputs with weight [out, in, kh, kw] (matched as "Conv2d").
#pragma once

#include <cstdint>
#include <utility>

#include "sparsity/core/module.hpp"

namespace sparsity::nn {

/// Options of Conv2d with fluent setters: `Conv2dOptions(3, 8, 3).stride(2).padding(1).bias(false)`.
struct Conv2dOptions {
  Conv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_{kernel_size, kernel_size} {}
  Conv2dOptions(int64_t in_channels, int64_t out_channels, std::pair<int64_t, int64_t> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  int64_t in_channels_;
  int64_t out_channels_;
  std::pair<int64_t, int64_t> kernel_size_;
  std::pair<int64_t, int64_t> stride_{1, 1};
  std::pair<int64_t, int64_t> padding_{0, 0};
  bool bias_ = true;
  uint64_t seed_ = 0;

  Conv2dOptions& stride(int64_t s) { stride_ = {s, s}; return *this; }
  Conv2dOptions& stride(int64_t sh, int64_t sw) { stride_ = {sh, sw}; return *this; }
  Conv2dOptions& padding(int64_t p) { padding_ = {p, p}; return *this; }
  Conv2dOptions& padding(int64_t ph, int64_t pw) { padding_ = {ph, pw}; return *this; }
  Conv2dOptions& bias(bool on) { bias_ = on; return *this; }
  /// Seed of the deterministic initialisation (as Linear, bound 1/sqrt(in * kh * kw)).
  Conv2dOptions& seed(uint64_t s) { seed_ = s; return *this; }
};

/// Convolution (cross-correlation, zero padding, no dilation or groups) with parameters `weight`
/// [out, in, kh, kw] and optional `bias` [out]. forward: x [N, in, H, W] or [in, H, W] ->
/// [N, out, Ho, Wo] with Ho = (H + 2 ph - kh) / sh + 1; computed in f64, returned in the weight's dtype.
class Conv2d : public Cloneable<Conv2d> {
 public:
  explicit Conv2d(const Conv2dOptions& options);

  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const Conv2dOptions& options() const noexcept { return options_; }

 private:
  Conv2dOptions options_;
};

}  // namespace sparsity::nn

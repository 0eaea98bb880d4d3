// nn::Conv2d: deterministic initialisation and a direct NCHW convolution.
#include "sparsity/nn/conv2d.hpp"

#include <cmath>
#include <vector>

#include "sparsity/nn/linear.hpp"

namespace sparsity::nn {

Conv2d::Conv2d(const Conv2dOptions& o) : Cloneable("Conv2d"), options_(o) {
  SPARSITY_CHECK(o.in_channels_ > 0 && o.out_channels_ > 0 && o.kernel_size_.first > 0 &&
                     o.kernel_size_.second > 0,
                 InvalidArgument, "Conv2d needs positive channels and kernel size, got in=", o.in_channels_,
                 " out=", o.out_channels_, " kernel=(", o.kernel_size_.first, ", ", o.kernel_size_.second, ")");
  SPARSITY_CHECK(o.stride_.first > 0 && o.stride_.second > 0 && o.padding_.first >= 0 && o.padding_.second >= 0,
                 InvalidArgument, "Conv2d needs positive stride and non-negative padding, got stride=(",
                 o.stride_.first, ", ", o.stride_.second, ") padding=(", o.padding_.first, ", ",
                 o.padding_.second, ")");
  const int64_t fan_in = o.in_channels_ * o.kernel_size_.first * o.kernel_size_.second;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  Tensor w = Tensor::empty({o.out_channels_, o.in_channels_, o.kernel_size_.first, o.kernel_size_.second});
  uniform_init_(w, bound, o.seed_);
  register_parameter("weight", w);
  if (o.bias_) {
    Tensor b = Tensor::empty({o.out_channels_});
    uniform_init_(b, bound, o.seed_, static_cast<uint64_t>(w.numel()));
    register_parameter("bias", b);
  }
}

Tensor Conv2d::forward(const Tensor& input) {
  const Tensor w = tensor("weight");
  const Tensor b = has_tensor("bias") ? tensor("bias") : Tensor();
  SPARSITY_CHECK(w.dim() == 4, InvalidArgument, "Conv2d weight must be 4-D, got shape ", shape_to_string(w.shape()));
  const int64_t co = w.size(0), ci = w.size(1), kh = w.size(2), kw = w.size(3);
  SPARSITY_CHECK((input.dim() == 3 || input.dim() == 4) && input.size(-3) == ci, InvalidArgument,
                 "Conv2d(in_channels=", ci, ") got input of shape ", shape_to_string(input.shape()),
                 " (expected [N, ", ci, ", H, W] or [", ci, ", H, W])");
  const Tensor x = input.dim() == 3 ? input.reshape({1, ci, input.size(1), input.size(2)}) : input;
  const int64_t n = x.size(0), h = x.size(2), wd = x.size(3);
  const auto [sh, sw] = options_.stride_;
  const auto [ph, pw] = options_.padding_;
  SPARSITY_CHECK(h + 2 * ph >= kh && wd + 2 * pw >= kw, InvalidArgument, "Conv2d input of shape ",
                 shape_to_string(input.shape()), " is smaller than the kernel (", kh, ", ", kw, ")");
  const int64_t ho = (h + 2 * ph - kh) / sh + 1, wo = (wd + 2 * pw - kw) / sw + 1;
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector();
  const std::vector<double> bv = b.defined() ? b.to_vector() : std::vector<double>(static_cast<size_t>(co), 0.0);
  std::vector<double> yv(static_cast<size_t>(n * co * ho * wo));
  for (int64_t in = 0; in < n; ++in)
    for (int64_t oc = 0; oc < co; ++oc)
      for (int64_t oy = 0; oy < ho; ++oy)
        for (int64_t ox = 0; ox < wo; ++ox) {
          double acc = bv[static_cast<size_t>(oc)];
          for (int64_t ic = 0; ic < ci; ++ic)
            for (int64_t ky = 0; ky < kh; ++ky) {
              const int64_t iy = oy * sh - ph + ky;
              if (iy < 0 || iy >= h) continue;
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t ix = ox * sw - pw + kx;
                if (ix < 0 || ix >= wd) continue;
                acc += xv[static_cast<size_t>(((in * ci + ic) * h + iy) * wd + ix)] *
                       wv[static_cast<size_t>(((oc * ci + ic) * kh + ky) * kw + kx)];
              }
            }
          yv[static_cast<size_t>(((in * co + oc) * ho + oy) * wo + ox)] = acc;
        }
  Tensor y = Tensor::from_values(yv, {n, co, ho, wo}, w.dtype());
  return input.dim() == 3 ? y.view({co, ho, wo}) : y;
}

std::string Conv2d::extra_repr() const {
  const auto& o = options_;
  return std::to_string(o.in_channels_) + ", " + std::to_string(o.out_channels_) + ", kernel_size=(" +
         std::to_string(o.kernel_size_.first) + ", " + std::to_string(o.kernel_size_.second) + "), stride=(" +
         std::to_string(o.stride_.first) + ", " + std::to_string(o.stride_.second) + ")" +
         (o.padding_.first || o.padding_.second
              ? ", padding=(" + std::to_string(o.padding_.first) + ", " + std::to_string(o.padding_.second) + ")"
              : std::string()) +
         (o.bias_ ? "" : ", bias=false");
}

}  // namespace sparsity::nn

// Tensor-level mask operations: shape checks, contiguous copies where needed, then the mask kernels.
#include "sparsity/core/ops.hpp"

#include <cstring>
#include <vector>

#include "sparsity/kernels/kernels.hpp"

namespace sparsity {

namespace {

void check_pair(const Tensor& x, const Tensor& mask, const char* what) {
  SPARSITY_CHECK(x.defined(), InvalidArgument, what, ": undefined tensor");
  SPARSITY_CHECK(mask.defined(), InvalidArgument, what, ": undefined mask");
  SPARSITY_CHECK(x.shape() == mask.shape(), InvalidArgument, what, ": mask shape ",
                 shape_to_string(mask.shape()), " does not match tensor shape ", shape_to_string(x.shape()));
}

// Mask bytes (non-zero = kept) of a contiguous mask; one-byte masks are used as they are.
const uint8_t* mask_bytes(const Tensor& mc, std::vector<uint8_t>& scratch) {
  if (size_of(mc.dtype()) == 1) return static_cast<const uint8_t*>(mc.data_ptr());
  scratch.resize(static_cast<size_t>(mc.numel()));
  kernels::mask_to_bytes(mc.dtype(), mc.data_ptr(), scratch.size(), scratch.data());
  return scratch.data();
}

// dst[i] = keep[i] ? src[i] : 0 for element types the kernels do not take (integers, bool).
void apply_generic(const Tensor& src, const uint8_t* keep, void* dst) {
  const size_t es = src.element_size();
  const char* s = static_cast<const char*>(src.data_ptr());
  char* d = static_cast<char*>(dst);
  const size_t n = static_cast<size_t>(src.numel());
  for (size_t i = 0; i < n; ++i) {
    if (keep[i]) {
      std::memmove(d + i * es, s + i * es, es);
    } else {
      std::memset(d + i * es, 0, es);
    }
  }
}

// out = apply_mask(xc, mc) with xc and mc contiguous; `out` may be xc's own data.
void apply_contiguous(const Tensor& xc, const Tensor& mc, void* out) {
  const size_t n = static_cast<size_t>(xc.numel());
  if (n == 0) return;
  const DType dt = xc.dtype();
  if (is_floating(dt) && mc.dtype() == dt) {
    kernels::apply_mask_float(dt, xc.data_ptr(), mc.data_ptr(), out, n);
    return;
  }
  std::vector<uint8_t> scratch;
  const uint8_t* keep = mask_bytes(mc, scratch);
  if (is_floating(dt)) {
    kernels::apply_mask_bytes(dt, xc.data_ptr(), keep, out, n);
  } else {
    apply_generic(xc, keep, out);
  }
}

}  // namespace

Tensor apply_mask(const Tensor& x, const Tensor& mask) {
  check_pair(x, mask, "apply_mask");
  const Tensor xc = x.contiguous();
  const Tensor mc = mask.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  apply_contiguous(xc, mc, out.mutable_data_ptr());
  return out;
}

void apply_mask_(const Tensor& x, const Tensor& mask) {
  check_pair(x, mask, "apply_mask_");
  SPARSITY_CHECK(!x.is_read_only(), FailedPrecondition, "apply_mask_: tensor of shape ",
                 shape_to_string(x.shape()), " is read-only");
  // A mask sharing x's storage is read from a copy, so writing x cannot change it midway.
  const Tensor mc = (mask.shares_storage(x) && !mask.is_same(x)) ? mask.clone() : mask.contiguous();
  if (x.is_contiguous()) {
    apply_contiguous(x, mc, x.mutable_data_ptr());
  } else {
    x.copy_(apply_mask(x, mc));
  }
}

Tensor mask_to_u8(const Tensor& mask) {
  SPARSITY_CHECK(mask.defined(), InvalidArgument, "mask_to_u8: undefined mask");
  const Tensor mc = mask.contiguous();
  Tensor out = Tensor::empty(mask.shape(), DType::u8);
  const size_t n = static_cast<size_t>(mc.numel());
  if (n > 0) {
    kernels::mask_to_bytes(mc.dtype(), mc.data_ptr(), n, static_cast<uint8_t*>(out.mutable_data_ptr()));
  }
  return out;
}

std::vector<uint8_t> mask_to_bits(const Tensor& mask) {
  SPARSITY_CHECK(mask.defined(), InvalidArgument, "mask_to_bits: undefined mask");
  const Tensor mc = mask.contiguous();
  const size_t n = static_cast<size_t>(mc.numel());
  std::vector<uint8_t> bits((n + 7) / 8, 0);
  if (n == 0) return bits;
  std::vector<uint8_t> scratch;
  kernels::bytes_to_bits(mask_bytes(mc, scratch), n, bits.data());
  return bits;
}

Tensor mask_from_bits(const uint8_t* bits, size_t nbytes, const Shape& shape) {
  Tensor t = Tensor::zeros(shape, DType::u8);
  const size_t n = static_cast<size_t>(t.numel());
  SPARSITY_CHECK(nbytes == (n + 7) / 8, InvalidArgument, "a packed mask of shape ", shape_to_string(shape),
                 " needs ", (n + 7) / 8, " bytes, got ", nbytes);
  if (n) kernels::bits_to_bytes(bits, n, static_cast<uint8_t*>(t.mutable_data_ptr()));
  return t;
}

int64_t count_kept(const Tensor& mask) {
  SPARSITY_CHECK(mask.defined(), InvalidArgument, "count_kept: undefined mask");
  const Tensor mc = mask.contiguous();
  const size_t n = static_cast<size_t>(mc.numel());
  if (n == 0) return 0;
  if (mc.dtype() == DType::u8 || mc.dtype() == DType::bool_ || mc.dtype() == DType::i8) {
    return kernels::count_kept_bytes(static_cast<const uint8_t*>(mc.data_ptr()), n);
  }
  std::vector<uint8_t> scratch;
  return kernels::count_kept_bytes(mask_bytes(mc, scratch), n);
}

}  // namespace sparsity

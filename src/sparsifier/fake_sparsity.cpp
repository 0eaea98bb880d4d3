// FakeSparsity: the mask parametrization (forward goes through sparsity::apply_mask).
#include "sparsity/sparsifier/fake_sparsity.hpp"

#include "sparsity/core/ops.hpp"

namespace sparsity {

FakeSparsity::FakeSparsity(Tensor mask) : Cloneable("FakeSparsity") {
  SPARSITY_CHECK(mask.defined(), InvalidArgument, "FakeSparsity needs a defined mask");
  register_buffer("mask", std::move(mask));
}

Tensor FakeSparsity::forward(const Tensor& x) {
  const Tensor m = mask();
  SPARSITY_CHECK(x.defined() && m.shape() == x.shape(), InvalidArgument, "FakeSparsity: mask of shape ",
                 shape_to_string(m.shape()), " does not match the tensor's shape ",
                 x.defined() ? shape_to_string(x.shape()) : std::string("(undefined)"));
  return apply_mask(x, m);
}

void FakeSparsity::include_in_state_dict(bool on) { include_in_state_dict_ = on; }

}  // namespace sparsity

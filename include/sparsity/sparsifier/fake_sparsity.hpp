// FakeSparsity: the parametrization that multiplies a tensor by its mask (here: selects, +0 elsewhere).
#pragma once

#include "sparsity/core/parametrize.hpp"

namespace sparsity {

/// Holds the mask as buffer `mask` (the very Tensor given, not a copy: the sparsifier's state and
/// this buffer stay the same object while update_mask changes its contents). forward(x) requires
/// mask.shape == x.shape (InvalidArgument naming both, no broadcasting) and returns x where the mask is
/// non-zero, +0.0 elsewhere, in x's dtype. The mask may be bool/u8 or x's float dtype.
///
/// Like torch, its state_dict is empty, so a prepared model's checkpoint holds
/// `parametrizations.weight.original` but no mask, unless include_in_state_dict(true).
class FakeSparsity : public Cloneable<FakeSparsity, Parametrization> {
 public:
  explicit FakeSparsity(Tensor mask);
  Tensor forward(const Tensor& x) override;
  Tensor mask() const { return buffer("mask"); }
  /// Whether the model's state_dict carries this mask as `parametrizations.<name>.<i>.mask`.
  void include_in_state_dict(bool on);
  bool included_in_state_dict() const noexcept { return include_in_state_dict_; }

 protected:
  bool contributes_state() const override { return include_in_state_dict_; }

 private:
  bool include_in_state_dict_ = false;
};

}  // namespace sparsity

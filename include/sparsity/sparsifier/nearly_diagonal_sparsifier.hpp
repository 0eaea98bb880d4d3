// NearlyDiagonalSparsifier: keep a band of `nearliness` diagonals around the main diagonal.
#pragma once

#include "sparsity/sparsifier/base_sparsifier.hpp"

namespace sparsity {

/// Mask of a 2-D weight = 1 where |row - col| <= nearliness / 2, else 0; nearliness <= 0 prunes
/// everything. Even nearliness, or nearliness / 2 >= min(rows, cols), throws InvalidArgument before
/// the mask is touched. Group key read by update_mask: nearliness.
class NearlyDiagonalSparsifier : public SparsifierCloneable<NearlyDiagonalSparsifier> {
 public:
  explicit NearlyDiagonalSparsifier(int64_t nearliness = 1);
  std::string class_name() const override { return "NearlyDiagonalSparsifier"; }

 protected:
  void update_mask(Module& module, const std::string& tensor_name, Group& group) override;
};

}  // namespace sparsity

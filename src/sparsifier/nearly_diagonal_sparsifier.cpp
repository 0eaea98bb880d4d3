// NearlyDiagonalSparsifier::update_mask: a band of `nearliness` diagonals, validated before writing.
#include "sparsity/sparsifier/nearly_diagonal_sparsifier.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/text.hpp"
#include "sparsity/kernels/kernels.hpp"

namespace sparsity {

NearlyDiagonalSparsifier::NearlyDiagonalSparsifier(int64_t nearliness)
    : SparsifierCloneable<NearlyDiagonalSparsifier>(Json{{"nearliness", nearliness}}) {}

void NearlyDiagonalSparsifier::update_mask(Module& module, const std::string& tensor_name, Group& group) {
  const std::string fqn = group.config.value("tensor_fqn", tensor_name);
  const auto it = group.config.find("nearliness");
  SPARSITY_CHECK(it != group.config.end(), InvalidArgument, "NearlyDiagonalSparsifier: group of ",
                 ::sparsity::detail::quote(fqn), " has no 'nearliness'");
  SPARSITY_CHECK(it->is_number_integer(), InvalidArgument, "NearlyDiagonalSparsifier: 'nearliness' of ",
                 ::sparsity::detail::quote(fqn), " must be an integer, got ", it->dump());
  const int64_t nearliness = it->get<int64_t>();
  Tensor mask = mask_of(module, tensor_name);

  // Validate everything before the mask changes (torch zeroes it first).
  if (nearliness > 0) {
    SPARSITY_CHECK(mask.dim() == 2, InvalidArgument,
                   "NearlyDiagonalSparsifier: ", ::sparsity::detail::quote(fqn), " must be 2-D, got shape ",
                   shape_to_string(mask.shape()));
    SPARSITY_CHECK(nearliness % 2 == 1, InvalidArgument, "NearlyDiagonalSparsifier: 'nearliness' of ",
                   ::sparsity::detail::quote(fqn), " can only be an odd number, got ", nearliness);
  }
  if (nearliness <= 0) {
    mask.fill_(0.0);
    return;
  }
  const int64_t rows = mask.size(0), cols = mask.size(1);
  const int64_t d = nearliness / 2;
  SPARSITY_CHECK(d < std::min(rows, cols), InvalidArgument, "NearlyDiagonalSparsifier: 'nearliness' of ",
                 ::sparsity::detail::quote(fqn), " (", nearliness,
                 ") cannot be larger than the dimensions of the tensor ", shape_to_string(mask.shape()));

  Tensor out = mask.is_contiguous() ? mask : mask.contiguous().clone();
  const size_t esz = size_of(out.dtype());
  auto* base = static_cast<uint8_t*>(out.mutable_data_ptr());
  std::vector<uint8_t> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    std::memset(row.data(), 0, row.size());
    const int64_t c0 = std::max<int64_t>(0, r - d), c1 = std::min(cols, r + d + 1);
    if (c1 > c0) std::memset(row.data() + c0, 1, static_cast<size_t>(c1 - c0));
    kernels::bytes_to_mask(row.data(), row.size(), out.dtype(), base + static_cast<size_t>(r * cols) * esz);
  }
  if (!out.is_same(mask)) mask.copy_(out);
}

}  // namespace sparsity

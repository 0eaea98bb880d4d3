// A downstream program: prepare -> step -> squash_mask with its own sparsifier on its own model.
#include <sparsity/sparsity.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

// Zeroes, in every row, the half of the weights with the smallest magnitude (ties: lower column first).
class RowHalfSparsifier : public sparsity::SparsifierCloneable<RowHalfSparsifier> {
 public:
  RowHalfSparsifier() : SparsifierCloneable(sparsity::Json{{"fraction", 0.5}}) {}
  std::string class_name() const override { return "RowHalfSparsifier"; }

 protected:
  void update_mask(sparsity::Module& module, const std::string& tensor_name, sparsity::Group& group) override {
    const sparsity::Tensor mask = mask_of(module, tensor_name);
    const sparsity::Tensor w = sparsity::parametrization_original(module, tensor_name);
    const int64_t rows = w.size(0), cols = w.size(1);
    const auto prune = static_cast<int64_t>(group.config["fraction"].get<double>() * static_cast<double>(cols));
    mask.fill_(1.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < prune; ++k) {
        int64_t best = -1;
        for (int64_t c = 0; c < cols; ++c) {
          if (mask.get({r, c}) == 0.0) continue;
          if (best < 0 || std::fabs(w.get({r, c})) < std::fabs(w.get({r, best}))) best = c;
        }
        mask.set({r, best}, 0.0);
      }
    }
  }
};

int main() {
  auto model = std::make_shared<sparsity::nn::Sequential>();
  model->push_back(std::make_shared<sparsity::nn::Linear>(sparsity::nn::LinearOptions(8, 16).seed(1)));
  model->push_back(std::make_shared<sparsity::nn::ReLU>());
  model->push_back(std::make_shared<sparsity::nn::Linear>(sparsity::nn::LinearOptions(16, 4).seed(2)));

  RowHalfSparsifier sparsifier;
  sparsifier.prepare(model, std::nullopt);
  sparsifier.step();
  const sparsity::Tensor y = (*model)(sparsity::Tensor::ones({2, 8}));
  sparsifier.squash_mask();

  int failures = 0;
  for (const auto& [fqn, w] : model->named_parameters()) {
    if (w.dim() != 2) continue;
    const double zeros = 1.0 - static_cast<double>(sparsity::count_nonzero(w)) / static_cast<double>(w.numel());
    std::printf("%s: %.2f sparse\n", fqn.c_str(), zeros);
    failures += zeros != 0.5;
  }
  failures += y.shape() != sparsity::Shape{2, 4};
  failures += sparsity::is_parametrized(*(*model)[0]);
  try {
    sparsifier.prepare(model, std::nullopt);
    ++failures;
  } catch (const sparsity::Error& e) {
    failures += e.code() != sparsity::ErrorCode::FailedPrecondition;
  }
  std::printf("%s\n", failures == 0 ? "consumer OK" : "consumer FAILED");
  return failures == 0 ? 0 : 1;
}

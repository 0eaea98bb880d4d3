// Parametrizations: registration as child modules, stacking, value access, removal, naming, errors.
#include "sparsity/core/parametrize.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace sparsity {
namespace {

using testing::random_tensor;

/// Doubles its input; right_inverse halves (so assignment works through it).
class Double : public Cloneable<Double, Parametrization> {
 public:
  Double() : Cloneable("Double") {}
  Tensor forward(const Tensor& x) override {
    Tensor y = x.clone();
    for (int64_t i = 0; i < y.numel(); ++i) y.set_flat(i, 2.0 * y.get_flat(i));
    return y;
  }
  bool has_right_inverse() const override { return true; }
  Tensor right_inverse(const Tensor& v) const override {
    Tensor y = v.clone();
    for (int64_t i = 0; i < y.numel(); ++i) y.set_flat(i, 0.5 * y.get_flat(i));
    return y;
  }
};

/// Changes the shape (refused unless unsafe).
class Flatten : public Cloneable<Flatten, Parametrization> {
 public:
  Flatten() : Cloneable("Flatten") {}
  Tensor forward(const Tensor& x) override { return x.reshape({-1}); }
};

/// Changes the dtype (refused).
class ToF64 : public Cloneable<ToF64, Parametrization> {
 public:
  ToF64() : Cloneable("ToF64") {}
  Tensor forward(const Tensor& x) override { return x.to(DType::f64); }
};

TEST(Parametrize, RegisterMovesTheSameTensorToOriginal) {
  auto lin = std::make_shared<nn::Linear>(nn::LinearOptions(3, 2).seed(5));
  const Tensor weight = lin->parameter("weight");
  Tensor mask = Tensor::ones({2, 3});
  mask.set({0, 1}, 0.0);
  register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(mask));
  EXPECT_TRUE(is_parametrized(*lin));
  EXPECT_TRUE(is_parametrized(*lin, "weight"));
  EXPECT_FALSE(is_parametrized(*lin, "bias"));
  EXPECT_FALSE(lin->has_parameter("weight"));
  EXPECT_TRUE(lin->has_tensor("weight"));
  EXPECT_TRUE(parametrization_original(*lin, "weight").is_same(weight));
  EXPECT_EQ(lin->type_name(), "ParametrizedLinear");
  EXPECT_EQ(type_before_parametrizations(*lin), "Linear");
  // Torch's tree: parametrizations (ModuleDict) -> weight (ParametrizationList) -> original, "0".
  EXPECT_EQ(lin->child("parametrizations")->type_name(), "ModuleDict");
  EXPECT_EQ(lin->get_submodule("parametrizations.weight")->type_name(), "ParametrizationList");
  EXPECT_EQ(lin->get_submodule("parametrizations.weight.0")->type_name(), "FakeSparsity");
  std::vector<std::string> names;
  for (const auto& [n, t] : lin->named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"bias", "parametrizations.weight.original"}));
  // The value is recomputed from original and mask at every read.
  const Tensor v = lin->tensor("weight");
  EXPECT_EQ(v.get({0, 1}), 0.0);
  EXPECT_EQ(v.get({1, 2}), weight.get({1, 2}));
  mask.set({1, 2}, 0.0);
  EXPECT_EQ(lin->tensor("weight").get({1, 2}), 0.0);
}

TEST(Parametrize, BuffersStayBuffers) {
  auto m = std::make_shared<Module>("Holder");
  m->register_buffer("table", Tensor::ones({2, 2}));
  register_parametrization(*m, "table", std::make_shared<FakeSparsity>(Tensor::eye(2, 2)));
  EXPECT_TRUE(m->get_submodule("parametrizations.table")->has_buffer("original"));
  remove_parametrizations(*m, "table");
  EXPECT_TRUE(m->has_buffer("table"));
  EXPECT_EQ(count_nonzero(m->buffer("table")), 2);
}

TEST(Parametrize, StackingAppliesInOrder) {
  auto m = std::make_shared<Module>("Holder");
  m->register_parameter("w", Tensor::from_values({1, 2, 3, 4}, {2, 2}));
  register_parametrization(*m, "w", std::make_shared<Double>());
  register_parametrization(*m, "w", std::make_shared<FakeSparsity>(Tensor::from_values({1, 0, 1, 1}, {2, 2})));
  register_parametrization(*m, "w", std::make_shared<Double>());
  EXPECT_EQ(parametrizations_of(*m, "w").size(), 3u);
  EXPECT_EQ(m->tensor("w").to_vector(), (std::vector<double>{4, 0, 12, 16}));
}

TEST(Parametrize, RemoveLeavingParametrizedWritesIntoTheOriginalStorage) {
  auto m = std::make_shared<Module>("Holder");
  std::vector<float> engine_buffer{1, 2, 3, 4};
  const Tensor w = Tensor::from_blob(engine_buffer.data(), {2, 2}, DType::f32);
  m->register_parameter("a", Tensor::ones({1}));
  m->register_parameter("w", w);
  register_parametrization(*m, "w", std::make_shared<FakeSparsity>(Tensor::from_values({0, 1, 1, 0}, {2, 2})));
  remove_parametrizations(*m, "w", /*leave_parametrized=*/true);
  EXPECT_FALSE(is_parametrized(*m));
  EXPECT_FALSE(m->has_child("parametrizations"));
  EXPECT_EQ(m->type_name(), "Holder");
  EXPECT_TRUE(m->parameter("w").is_same(w));
  EXPECT_EQ(engine_buffer, (std::vector<float>{0, 2, 3, 0}));
  // Like torch, the tensor is re-registered after the others.
  std::vector<std::string> names;
  for (const auto& [n, t] : m->named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "w"}));
}

TEST(Parametrize, RemoveWithoutLeavingRestoresTheOriginal) {
  auto lin = std::make_shared<nn::Linear>(3, 2);
  const Tensor before = lin->parameter("weight").clone();
  register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(Tensor::zeros({2, 3})));
  register_parametrization(*lin, "bias", std::make_shared<FakeSparsity>(Tensor::zeros({2})));
  remove_parametrizations(*lin, "weight", /*leave_parametrized=*/false);
  EXPECT_TRUE(bitwise_equal(lin->parameter("weight"), before));
  EXPECT_TRUE(is_parametrized(*lin));  // bias still is
  EXPECT_EQ(lin->type_name(), "ParametrizedLinear");
  remove_parametrizations(*lin, "bias");
  EXPECT_EQ(lin->type_name(), "Linear");
  EXPECT_EQ(count_nonzero(lin->parameter("bias")), 0);
}

TEST(Parametrize, RemoveFromReadOnlyOriginalKeepsIdentity) {
  const std::vector<float> file_bytes{1, 2, 3, 4};
  const Tensor w = Tensor::from_blob(static_cast<const void*>(file_bytes.data()), {4}, DType::f32);
  auto m = std::make_shared<Module>("Holder");
  m->register_parameter("w", w);
  register_parametrization(*m, "w", std::make_shared<FakeSparsity>(Tensor::from_values({1, 0, 0, 1})));
  remove_parametrizations(*m, "w");
  EXPECT_TRUE(m->parameter("w").is_same(w));
  EXPECT_EQ(w.to_vector(), (std::vector<double>{1, 0, 0, 4}));
  EXPECT_FALSE(w.is_read_only());
  EXPECT_EQ(file_bytes, (std::vector<float>{1, 2, 3, 4}));  // the mapped bytes are never written
}

TEST(Parametrize, AssignmentNeedsRightInverse) {
  auto m = std::make_shared<Module>("Holder");
  m->register_parameter("w", Tensor::from_values({1, 2}));
  register_parametrization(*m, "w", std::make_shared<Double>());
  m->set_tensor("w", Tensor::from_values({10, 20}));
  EXPECT_EQ(parametrization_original(*m, "w").to_vector(), (std::vector<double>{5, 10}));
  EXPECT_EQ(m->tensor("w").to_vector(), (std::vector<double>{10, 20}));
  register_parametrization(*m, "w", std::make_shared<FakeSparsity>(Tensor::ones({2})));
  EXPECT_SPARSITY_ERROR(m->set_tensor("w", Tensor::ones({2})), FailedPrecondition, "'w'", "FakeSparsity",
                        "right_inverse");
}

TEST(Parametrize, ConsistencyChecksAndUnsafe) {
  auto m = std::make_shared<Module>("Holder");
  m->register_parameter("w", Tensor::ones({2, 2}));
  EXPECT_SPARSITY_ERROR(register_parametrization(*m, "w", std::make_shared<Flatten>()), InvalidArgument, "'w'",
                        "shape", "[2, 2]", "[4]");
  EXPECT_SPARSITY_ERROR(register_parametrization(*m, "w", std::make_shared<ToF64>()), InvalidArgument, "'w'", "dtype",
                        "f64");
  EXPECT_FALSE(is_parametrized(*m));
  EXPECT_TRUE(m->has_parameter("w"));
  register_parametrization(*m, "w", std::make_shared<Flatten>(), /*unsafe=*/true);
  EXPECT_EQ(m->tensor("w").shape(), (Shape{4}));
  // Stacking is checked against the current value too.
  EXPECT_SPARSITY_ERROR(register_parametrization(*m, "w", std::make_shared<FakeSparsity>(Tensor::ones({2, 2}))),
                        InvalidArgument, "[2, 2]", "[4]");
  EXPECT_EQ(parametrizations_of(*m, "w").size(), 1u);
}

TEST(Parametrize, Errors) {
  auto lin = std::make_shared<nn::Linear>(2, 2);
  EXPECT_SPARSITY_ERROR(register_parametrization(*lin, "gain", std::make_shared<Double>()), NotFound, "'gain'",
                        "Linear");
  EXPECT_SPARSITY_ERROR(register_parametrization(*lin, "weight", nullptr), InvalidArgument, "'weight'");
  EXPECT_SPARSITY_ERROR(remove_parametrizations(*lin, "weight"), InvalidArgument, "'weight'");
  EXPECT_SPARSITY_ERROR(parametrization_original(*lin, "weight"), InvalidArgument, "'weight'");
  EXPECT_TRUE(parametrizations_of(*lin, "weight").empty());
}

TEST(Parametrize, RightInverseDefaultThrows) {
  class NoInverse : public Cloneable<NoInverse, Parametrization> {
   public:
    NoInverse() : Cloneable("NoInverse") {}
  };
  NoInverse p;
  EXPECT_FALSE(p.has_right_inverse());
  EXPECT_SPARSITY_ERROR(p.right_inverse(Tensor::ones({1})), FailedPrecondition, "NoInverse", "right_inverse");
}

TEST(Parametrize, RegisteredNameIsReservedWhileParametrized) {
  auto lin = std::make_shared<nn::Linear>(2, 2);
  register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(Tensor::ones({2, 2})));
  EXPECT_SPARSITY_ERROR(lin->register_parameter("weight", Tensor::ones({2, 2})), InvalidArgument, "'weight'",
                        "parametrized");
  EXPECT_SPARSITY_ERROR(lin->register_buffer("weight", Tensor::ones({2, 2})), InvalidArgument, "'weight'");
}

TEST(Parametrize, TrainingModeFollowsTheModule) {
  auto lin = std::make_shared<nn::Linear>(2, 2);
  lin->eval();
  auto p = std::make_shared<FakeSparsity>(Tensor::ones({2, 2}));
  register_parametrization(*lin, "weight", p);
  EXPECT_FALSE(p->is_training());
  lin->train();
  EXPECT_TRUE(p->is_training());
}

}  // namespace
}  // namespace sparsity

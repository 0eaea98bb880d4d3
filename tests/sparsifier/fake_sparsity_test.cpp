// FakeSparsity: torch's test_parametrization.py (TestFakeSparsity) and the mask/dtype/state rules.
#include "sparsity/sparsifier/fake_sparsity.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "test_util.hpp"

namespace sparsity {
namespace {

using testing::random_tensor;

/// test_parametrization.py's ModelUnderTest(bias=False): linear = Linear(16,16) with weights 1,
/// seq = [Linear(16,16) with weights 2, Linear(16,16) with weights 3].
class ModelUnderTest : public Cloneable<ModelUnderTest> {
 public:
  ModelUnderTest() : Cloneable("ModelUnderTest") {
    linear = register_module("linear", std::make_shared<nn::Linear>(nn::LinearOptions(16, 16).bias(false)));
    seq = register_module("seq", std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
                                     std::make_shared<nn::Linear>(nn::LinearOptions(16, 16).bias(false)),
                                     std::make_shared<nn::Linear>(nn::LinearOptions(16, 16).bias(false))}));
    linear->set_tensor("weight", Tensor::full({16, 16}, 1.0));
    (*seq)[0]->set_tensor("weight", Tensor::full({16, 16}, 2.0));
    (*seq)[1]->set_tensor("weight", Tensor::full({16, 16}, 3.0));
  }
  Tensor forward(const Tensor& x) override { return (*seq)((*linear)(x)); }
  std::shared_ptr<nn::Linear> linear;
  std::shared_ptr<nn::Sequential> seq;
};

Tensor mask_of0(const Module& m) { return parametrizations_of(m, "weight").at(0)->buffer("mask"); }

TEST(TestFakeSparsity, test_masking_logic) {
  auto model = std::make_shared<nn::Linear>(nn::LinearOptions(16, 16).bias(false));
  model->set_tensor("weight", Tensor::eye(16, 16));
  Tensor x = random_tensor({3, 16}, 1);
  EXPECT_TRUE(equal((*model)(x), x));  // F.linear(x, eye) == x

  register_parametrization(*model, "weight", std::make_shared<FakeSparsity>(Tensor::zeros({16, 16})));
  x = random_tensor({3, 16}, 2);
  EXPECT_TRUE(equal((*model)(x), Tensor::zeros({3, 16})));
}

TEST(TestFakeSparsity, test_weights_parametrized) {
  auto model = std::make_shared<ModelUnderTest>();
  EXPECT_FALSE(model->linear->has_child("parametrizations"));
  EXPECT_FALSE((*model->seq)[0]->has_child("parametrizations"));
  EXPECT_FALSE((*model->seq)[1]->has_child("parametrizations"));
  register_parametrization(*model->linear, "weight", std::make_shared<FakeSparsity>(Tensor::eye(16, 16)));
  register_parametrization(*(*model->seq)[0], "weight", std::make_shared<FakeSparsity>(Tensor::eye(16, 16)));
  register_parametrization(*(*model->seq)[1], "weight", std::make_shared<FakeSparsity>(Tensor::eye(16, 16)));
  for (const ModulePtr& m : {ModulePtr(model->linear), (*model->seq)[0], (*model->seq)[1]}) {
    EXPECT_TRUE(m->has_child("parametrizations"));
    EXPECT_TRUE(is_parametrized(*m, "weight"));
  }
}

TEST(TestFakeSparsity, test_state_dict_preserved) {
  auto model_save = std::make_shared<ModelUnderTest>();
  register_parametrization(*model_save->linear, "weight", std::make_shared<FakeSparsity>(Tensor::eye(16, 16)));
  register_parametrization(*(*model_save->seq)[0], "weight", std::make_shared<FakeSparsity>(Tensor::eye(16, 16)));
  register_parametrization(*(*model_save->seq)[1], "weight", std::make_shared<FakeSparsity>(Tensor::eye(16, 16)));
  const StateDict state_dict = model_save->state_dict();

  auto model_load = std::make_shared<ModelUnderTest>();
  // Unlike upstream (where both models start equal), make the originals differ so the load is observable.
  for (const ModulePtr& m : {ModulePtr(model_load->linear), (*model_load->seq)[0], (*model_load->seq)[1]}) {
    m->parameter("weight").fill_(-7.0);
    register_parametrization(*m, "weight", std::make_shared<FakeSparsity>(Tensor::zeros({16, 16})));
  }
  model_load->load_state_dict(state_dict, /*strict=*/false);

  const std::vector<std::pair<ModulePtr, ModulePtr>> pairs{{model_save->linear, model_load->linear},
                                                           {(*model_save->seq)[0], (*model_load->seq)[0]},
                                                           {(*model_save->seq)[1], (*model_load->seq)[1]}};
  for (const auto& [saved, loaded] : pairs) {
    EXPECT_TRUE(loaded->has_child("parametrizations"));
    EXPECT_TRUE(is_parametrized(*loaded, "weight"));
    EXPECT_TRUE(equal(parametrization_original(*saved, "weight"), parametrization_original(*loaded, "weight")));
    EXPECT_FALSE(equal(mask_of0(*saved), mask_of0(*loaded)));  // the mask is not in the state dict
  }
}

// test_jit_trace is not ported: there is no tracer in C++ (the parametrized forward is plain code).

TEST(FakeSparsity, MaskIsTheGivenTensorAndForwardSelects) {
  Tensor mask = Tensor::from_values({1, 0, 1, 0}, {2, 2}, DType::bool_);
  auto fs = std::make_shared<FakeSparsity>(mask);
  EXPECT_EQ(fs->type_name(), "FakeSparsity");
  EXPECT_TRUE(fs->mask().is_same(mask));
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor x = Tensor::from_values({1.5, std::nan(""), -2.0, -inf}, {2, 2});
  const Tensor y = (*fs)(x);
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_EQ(y.get({0, 0}), 1.5);
  EXPECT_EQ(y.get({0, 1}), 0.0);  // pruned NaN becomes +0 (select, not multiply)
  EXPECT_FALSE(std::signbit(y.get({0, 1})));
  EXPECT_EQ(y.get({1, 0}), -2.0);
  EXPECT_EQ(y.get({1, 1}), 0.0);
  EXPECT_FALSE(std::signbit(y.get({1, 1})));
  // Changing the mask's contents changes the result (same tensor).
  mask.set({0, 0}, 0.0);
  EXPECT_EQ((*fs)(x).get({0, 0}), 0.0);
}

TEST(FakeSparsity, WeightDtypeIsKeptForEveryMaskDtype) {
  for (DType wt : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
    for (DType mt : {DType::bool_, DType::u8, wt}) {
      auto lin = std::make_shared<nn::Linear>(nn::LinearOptions(4, 3).dtype(wt).seed(3));
      Tensor mask = Tensor::ones({3, 4}, mt);
      mask.set({1, 2}, 0.0);
      register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(mask));
      const Tensor w = lin->tensor("weight");
      EXPECT_EQ(w.dtype(), wt) << to_string(wt) << " weight, " << to_string(mt) << " mask";
      EXPECT_EQ(w.get({1, 2}), 0.0);
      EXPECT_EQ(w.get({0, 0}), parametrization_original(*lin, "weight").get({0, 0}));
      remove_parametrizations(*lin, "weight");
      EXPECT_EQ(lin->parameter("weight").dtype(), wt);
    }
  }
}

TEST(FakeSparsity, ShapeMismatchIsRefusedNamingBothShapes) {
  auto lin = std::make_shared<nn::Linear>(4, 3);
  EXPECT_SPARSITY_ERROR(register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(Tensor::ones({4, 3}))),
                        InvalidArgument, "[4, 3]", "[3, 4]");
  EXPECT_FALSE(is_parametrized(*lin));
  EXPECT_SPARSITY_ERROR(FakeSparsity{Tensor()}, InvalidArgument, "mask");
  FakeSparsity fs(Tensor::ones({2}));
  EXPECT_SPARSITY_ERROR(fs.forward(Tensor::ones({1, 2})), InvalidArgument, "[2]", "[1, 2]");
}

TEST(FakeSparsity, StateDictIsEmptyUnlessIncluded) {
  auto fs = std::make_shared<FakeSparsity>(Tensor::ones({2, 2}));
  EXPECT_TRUE(fs->state_dict().empty());
  EXPECT_EQ(fs->named_buffers().size(), 1u);  // still a buffer
  fs->include_in_state_dict(true);
  EXPECT_TRUE(fs->included_in_state_dict());
  const StateDict sd = fs->state_dict();
  ASSERT_EQ(sd.size(), 1u);
  EXPECT_EQ(sd[0].first, "mask");
  // The flag survives a clone.
  auto copy = fs->clone();
  EXPECT_EQ(copy->state_dict().size(), 1u);
}

TEST(FakeSparsity, StrictLoadIntoPreparedModelUsesTheSameKeys) {
  // torch reports the hidden mask as a missing key on a strict load; here the keys expected are the
  // keys state_dict() produces, so a prepared checkpoint loads strictly into a prepared model.
  auto a = std::make_shared<nn::Linear>(nn::LinearOptions(3, 2).seed(1));
  auto b = std::make_shared<nn::Linear>(nn::LinearOptions(3, 2).seed(2));
  register_parametrization(*a, "weight", std::make_shared<FakeSparsity>(Tensor::ones({2, 3})));
  register_parametrization(*b, "weight", std::make_shared<FakeSparsity>(Tensor::ones({2, 3})));
  const LoadStateDictResult r = b->load_state_dict(a->state_dict());
  EXPECT_TRUE(r.missing_keys.empty());
  EXPECT_TRUE(equal(b->tensor("weight"), a->tensor("weight")));
  // Prepared and plain checkpoints are not interchangeable (weight vs parametrizations.weight.original).
  auto plain = std::make_shared<nn::Linear>(3, 2);
  EXPECT_SPARSITY_ERROR(plain->load_state_dict(a->state_dict()), InvalidArgument, "'weight'",
                        "parametrizations.weight.original");
}

}  // namespace
}  // namespace sparsity

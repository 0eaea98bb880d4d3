// fqn helpers: torch's test_sparsity_utils.py over equivalent small models, plus the edge cases of §2.8.
#include "sparsity/sparsifier/utils.hpp"

#include <gtest/gtest.h>

#include <functional>

#include "test_util.hpp"

namespace sparsity {
namespace {

ModulePtr plain(const std::string& type, const std::vector<std::pair<std::string, Shape>>& params = {},
                const std::vector<std::pair<std::string, Shape>>& buffers = {}) {
  auto m = std::make_shared<Module>(type);
  for (const auto& [n, s] : params) m->register_parameter(n, Tensor::ones(s));
  for (const auto& [n, s] : buffers) m->register_buffer(n, Tensor::zeros(s));
  return m;
}

// Equivalents of the common_quantization models used upstream (same module trees and tensor names).
ModulePtr conv_model() {  // ConvModel: conv = Conv2d(3, 5, 3, bias=False)
  auto m = std::make_shared<Module>("ConvModel");
  m->register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 5, 3).bias(false)));
  return m;
}
ModulePtr single_layer_linear() {  // SingleLayerLinearModel: fc1 = Linear(5, 5)
  auto m = std::make_shared<Module>("SingleLayerLinearModel");
  m->register_module("fc1", std::make_shared<nn::Linear>(5, 5));
  return m;
}
ModulePtr two_layer_linear() {  // TwoLayerLinearModel: fc1 = Linear(5, 8, bias=False), fc2 = Linear(8, 5)
  auto m = std::make_shared<Module>("TwoLayerLinearModel");
  m->register_module("fc1", std::make_shared<nn::Linear>(nn::LinearOptions(5, 8).bias(false)));
  m->register_module("fc2", std::make_shared<nn::Linear>(8, 5));
  return m;
}
ModulePtr linear_add() {  // LinearAddModel: fc1 = Linear(5, 8), fc2 = Linear(8, 5)
  auto m = std::make_shared<Module>("LinearAddModel");
  m->register_module("fc1", std::make_shared<nn::Linear>(5, 8));
  m->register_module("fc2", std::make_shared<nn::Linear>(8, 5));
  return m;
}
ModulePtr conv_bn_relu() {  // ConvBNReLU: Sequential(Conv2d(3,3,1,bias=False), BatchNorm2d(3), ReLU)
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 3, 1).bias(false)));
  seq->push_back(plain("BatchNorm2d", {{"weight", {3}}, {"bias", {3}}},
                       {{"running_mean", {3}}, {"running_var", {3}}, {"num_batches_tracked", {}}}));
  seq->push_back(std::make_shared<nn::ReLU>());
  return seq;
}
ModulePtr manual_embedding_bag_linear() {  // emb = EmbeddingBag(10, 12), fc = Linear(12, 1), quant stubs
  auto m = std::make_shared<Module>("ManualEmbeddingBagLinear");
  m->register_module("emb", plain("EmbeddingBag", {{"weight", {10, 12}}}));
  m->register_module("fc", std::make_shared<nn::Linear>(12, 1));
  m->register_module("quant", plain("QuantStub"));
  m->register_module("dequant", plain("DeQuantStub"));
  return m;
}
ModulePtr functional_linear() {  // SingleLayerFunctionalLinearModel: linear1 = FunctionalLinear(w, b)
  auto m = std::make_shared<Module>("SingleLayerFunctionalLinearModel");
  m->register_module("linear1", plain("FunctionalLinear", {{"weight", {5, 5}}, {"bias", {5}}}));
  return m;
}

const std::vector<std::function<ModulePtr()>> kModels{conv_model, single_layer_linear, two_layer_linear, linear_add,
                                                      conv_bn_relu, manual_embedding_bag_linear, functional_linear};

std::vector<ModulePtr> modules_and_root(const ModulePtr& model) {
  std::vector<ModulePtr> out;
  for (const auto& [fqn, m] : model->named_modules()) out.push_back(m);
  out.push_back(model);
  return out;
}

// ---- TestSparsityUtilFunctions (test/ao/sparsity/test_sparsity_utils.py) ------------------------------

TEST(TestSparsityUtilFunctions, test_module_to_fqn) {
  for (const auto& make : kModels) {
    const ModulePtr model = make();
    for (const ModulePtr& module : modules_and_root(model)) {
      const auto fqn = module_to_fqn(*model, *module);
      ASSERT_TRUE(fqn.has_value());
      EXPECT_EQ(model->get_submodule(*fqn), module) << *fqn;
    }
  }
}

TEST(TestSparsityUtilFunctions, test_module_to_fqn_fail) {
  for (const auto& make : kModels) {
    const ModulePtr model = make();
    EXPECT_EQ(module_to_fqn(*model, nn::Linear(3, 3)), std::nullopt) << model->type_name();
  }
}

TEST(TestSparsityUtilFunctions, test_module_to_fqn_root) {
  for (const auto& make : kModels) {
    const ModulePtr model = make();
    EXPECT_EQ(module_to_fqn(*model, *model), std::string());
  }
}

TEST(TestSparsityUtilFunctions, test_fqn_to_module) {
  for (const auto& make : kModels) {
    const ModulePtr model = make();
    for (const ModulePtr& module : modules_and_root(model)) {
      const auto fqn = module_to_fqn(*model, *module);
      const FqnTarget target = fqn_to_module(model, *fqn);
      ASSERT_TRUE(std::holds_alternative<ModulePtr>(target)) << *fqn;
      EXPECT_EQ(std::get<ModulePtr>(target), module);
    }
  }
}

TEST(TestSparsityUtilFunctions, test_fqn_to_module_fail) {
  for (const auto& make : kModels) {
    EXPECT_TRUE(std::holds_alternative<std::monostate>(fqn_to_module(make(), "foo.bar.baz")));
  }
}

TEST(TestSparsityUtilFunctions, test_fqn_to_module_for_tensors) {
  for (const auto& make : kModels) {
    const ModulePtr model = make();
    int checked = 0;
    for (const ModulePtr& module : modules_and_root(model)) {
      const std::string module_fqn = *module_to_fqn(*model, *module);
      for (const auto& [tensor_name, tensor] : module->named_parameters(/*recurse=*/false)) {
        const std::string tensor_fqn = module_fqn + (module_fqn.empty() ? "" : ".") + tensor_name;
        const FqnTarget target = fqn_to_module(model, tensor_fqn);
        ASSERT_TRUE(std::holds_alternative<Tensor>(target)) << tensor_fqn;
        EXPECT_TRUE(std::get<Tensor>(target).is_same(tensor)) << tensor_fqn;
        ++checked;
      }
    }
    EXPECT_GT(checked, 0) << model->type_name();
  }
}

TEST(TestSparsityUtilFunctions, test_get_arg_info_from_tensor_fqn) {
  for (const auto& make : kModels) {
    const ModulePtr model = make();
    for (const auto& [unused, module] : model->named_modules()) {
      const std::string module_fqn = *module_to_fqn(*model, *module);
      for (const auto& [tensor_name, tensor] : module->named_parameters(/*recurse=*/false)) {
        const std::string tensor_fqn = module_fqn + (module_fqn.empty() ? "" : ".") + tensor_name;
        const TensorFqnInfo info = get_arg_info_from_tensor_fqn(model, tensor_fqn);
        EXPECT_EQ(info.module, module);
        EXPECT_EQ(info.module_fqn, module_fqn);
        EXPECT_EQ(info.tensor_name, tensor_name);
        EXPECT_EQ(info.tensor_fqn, tensor_fqn);
      }
    }
  }
}

TEST(TestSparsityUtilFunctions, test_get_arg_info_from_tensor_fqn_fail) {
  for (const auto& make : kModels) {
    const TensorFqnInfo info = get_arg_info_from_tensor_fqn(make(), "foo.bar.baz");
    EXPECT_EQ(info.module, nullptr);
    EXPECT_EQ(info.module_fqn, "foo.bar");
    EXPECT_EQ(info.tensor_name, "baz");
    EXPECT_EQ(info.tensor_fqn, "foo.bar.baz");
  }
}

// ---- edge cases of spec §2.8 and the other helpers --------------------------------------------------------

TEST(SparsityUtils, BareAndLeadingDotTensorFqn) {
  auto lin = std::make_shared<nn::Linear>(2, 2);
  TensorFqnInfo bare = get_arg_info_from_tensor_fqn(lin, "weight");
  EXPECT_EQ(bare.module, lin);
  EXPECT_EQ(bare.module_fqn, "");
  EXPECT_EQ(bare.tensor_name, "weight");
  TensorFqnInfo dotted = get_arg_info_from_tensor_fqn(lin, ".weight");
  EXPECT_EQ(dotted.module, lin);
  EXPECT_EQ(dotted.module_fqn, "");
  EXPECT_EQ(dotted.tensor_name, "weight");
  EXPECT_EQ(dotted.tensor_fqn, ".weight");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(fqn_to_module(lin, ".weight")));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(fqn_to_module(lin, "weight.x")));
}

TEST(SparsityUtils, SharedModuleFirstPathWins) {
  auto shared = std::make_shared<nn::Linear>(2, 2);
  auto root = std::make_shared<Module>("Root");
  root->register_module("a", shared);
  root->register_module("b", shared);
  EXPECT_EQ(module_to_fqn(*root, *shared), "a");
}

TEST(SparsityUtils, FqnToModuleSeesParametrizations) {
  auto model = std::make_shared<testing::SimpleLinear>();
  Tensor mask = Tensor::zeros({4, 4});
  register_parametrization(*model->linear1, "weight", std::make_shared<FakeSparsity>(mask));
  const FqnTarget value = fqn_to_module(model, "linear1.weight");
  ASSERT_TRUE(std::holds_alternative<Tensor>(value));
  EXPECT_EQ(count_nonzero(std::get<Tensor>(value)), 0);  // the parametrized value
  const FqnTarget original = fqn_to_module(model, "linear1.parametrizations.weight.original");
  ASSERT_TRUE(std::holds_alternative<Tensor>(original));
  EXPECT_TRUE(std::get<Tensor>(original).is_same(parametrization_original(*model->linear1, "weight")));
  const FqnTarget fs = fqn_to_module(model, "linear1.parametrizations.weight.0");
  ASSERT_TRUE(std::holds_alternative<ModulePtr>(fs));
  EXPECT_EQ(std::get<ModulePtr>(fs)->type_name(), "FakeSparsity");
  EXPECT_SPARSITY_ERROR(fqn_to_module(nullptr, "x"), InvalidArgument, "'x'");
}

TEST(SparsityUtils, ModuleContainsParam) {
  auto lin = std::make_shared<nn::Linear>(2, 2);
  EXPECT_FALSE(module_contains_param(*lin, "FakeSparsity"));
  register_parametrization(*lin, "bias", std::make_shared<FakeSparsity>(Tensor::ones({2})));
  EXPECT_TRUE(module_contains_param(*lin, "FakeSparsity"));
  EXPECT_FALSE(module_contains_param(*lin, "Other"));
}

TEST(SparsityUtils, SwapModuleUsesTypeBeforeParametrizationsAndKeepsHooks) {
  auto lin = std::make_shared<nn::Linear>(3, 2);
  std::vector<std::string> order;
  lin->register_forward_pre_hook([&](Module&, const Tensor&) -> std::optional<Tensor> {
    order.push_back("pre");
    return std::nullopt;
  });
  lin->register_forward_hook([&](Module&, const Tensor&, const Tensor& y) -> std::optional<Tensor> {
    order.push_back("post");
    return zeros_like(y);
  });
  register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(Tensor::ones({2, 3})));
  ModuleMapping mapping{{"Linear", &testing::MockSparseLinear::from_dense}};
  ModulePtr swapped = swap_module(lin, mapping);
  ASSERT_NE(swapped, lin);
  EXPECT_EQ(swapped->type_name(), "MockSparseLinear");
  EXPECT_EQ(swapped->forward_pre_hooks().size(), 1u);
  EXPECT_EQ(swapped->forward_hooks().size(), 1u);
  const Tensor y = (*swapped)(Tensor::ones({3}));
  EXPECT_EQ(order, (std::vector<std::string>{"pre", "post"}));
  EXPECT_EQ(count_nonzero(y), 0);  // the post-hook's result replaced the output
  // A type not in the mapping comes back unchanged.
  auto relu = std::make_shared<nn::ReLU>();
  EXPECT_EQ(swap_module(relu, mapping), relu);
  EXPECT_SPARSITY_ERROR(swap_module(lin, {{"Linear", [](const Module&) { return ModulePtr(); }}}), InvalidArgument,
                        "Linear", "null");
}

}  // namespace
}  // namespace sparsity

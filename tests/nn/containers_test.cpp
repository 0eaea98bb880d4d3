// Sequential, ModuleList, ModuleDict, ReLU, Identity.
#include "sparsity/nn/containers.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.hpp"

namespace sparsity {
namespace {

TEST(Sequential, ChainsChildrenInOrder) {
  auto neg = std::make_shared<nn::Linear>(nn::LinearOptions(2, 2).bias(false));
  neg->set_tensor("weight", Tensor::from_values({-1, 0, 0, 1}, {2, 2}));
  nn::Sequential seq{neg, std::make_shared<nn::ReLU>(), std::make_shared<nn::Identity>()};
  EXPECT_EQ(seq.size(), 3u);
  EXPECT_EQ(seq[1]->type_name(), "ReLU");
  EXPECT_EQ(seq(Tensor::from_values({3, 4})).to_vector(), (std::vector<double>{0, 4}));
  EXPECT_SPARSITY_ERROR(seq[3], OutOfRange, "3");
  std::vector<std::string> names;
  for (const auto& [n, m] : seq.named_children()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0", "1", "2"}));
}

TEST(ModuleList, HoldsWithoutForward) {
  auto list = std::make_shared<nn::ModuleList>(std::initializer_list<ModulePtr>{std::make_shared<nn::Linear>(2, 2)});
  list->push_back(std::make_shared<nn::ReLU>());
  EXPECT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0]->type_name(), "Linear");
  EXPECT_SPARSITY_ERROR((*list)[5], OutOfRange, "5");
  EXPECT_SPARSITY_ERROR((*list)(Tensor::ones({2})), FailedPrecondition, "'ModuleList'");
  EXPECT_EQ(list->named_parameters().size(), 2u);
}

TEST(ModuleDict, NamedChildren) {
  nn::ModuleDict dict;
  EXPECT_TRUE(dict.empty());
  dict.insert("enc", std::make_shared<nn::Identity>());
  EXPECT_TRUE(dict.contains("enc"));
  EXPECT_EQ(dict.at("enc")->type_name(), "Identity");
  EXPECT_SPARSITY_ERROR(dict.at("dec"), NotFound, "'dec'");
  EXPECT_SPARSITY_ERROR(dict.insert("a.b", std::make_shared<nn::Identity>()), InvalidArgument, "'a.b'");
}

TEST(Activations, ReluAndIdentity) {
  const Tensor x = Tensor::from_values({-1, 0, 2, std::nan("")}, DType::f64);
  const Tensor y = nn::ReLU().forward(x);
  EXPECT_EQ(y.dtype(), DType::f64);
  EXPECT_EQ(y.get({0}), 0.0);
  EXPECT_EQ(y.get({2}), 2.0);
  EXPECT_TRUE(std::isnan(y.get({3})));
  EXPECT_EQ(x.get({0}), -1.0);  // not in place
  EXPECT_TRUE(nn::Identity().forward(x).is_same(x));
}

TEST(Containers, CloneKeepsTypes) {
  auto seq = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<nn::Linear>(2, 2), std::make_shared<nn::ReLU>()});
  auto copy = std::dynamic_pointer_cast<nn::Sequential>(seq->clone());
  ASSERT_NE(copy, nullptr);
  EXPECT_NE(std::dynamic_pointer_cast<nn::Linear>((*copy)[0]), nullptr);
  EXPECT_NE(std::dynamic_pointer_cast<nn::ReLU>((*copy)[1]), nullptr);
  EXPECT_EQ(copy->repr(), seq->repr());
}

}  // namespace
}  // namespace sparsity

// Tests of ActivationNormCollector: hand-derived sums, batch shapes and dtypes, hooks, and every misuse.
#include "sparsity/sparsifier/activation_norms.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sparsity/nn/containers.hpp"
#include "sparsity/nn/conv2d.hpp"
#include "sparsity/nn/linear.hpp"

#include "test_util.hpp"

namespace sparsity {
namespace {

using nn::Linear;
using nn::LinearOptions;
using testing::random_tensor;
using testing::simple_linear;

Tensor find(const NamedList<Tensor>& list, const std::string& name) {
  for (const auto& [n, t] : list) {
    if (n == name) return t;
  }
  return {};
}

// Sums of squares of the rows of a 2-D tensor, in double and row order (the definition).
std::vector<double> column_sums(const Tensor& x) {
  std::vector<double> s(static_cast<size_t>(x.size(1)), 0.0);
  for (int64_t i = 0; i < x.size(0); ++i) {
    for (int64_t j = 0; j < x.size(1); ++j) s[j] += x.get({i, j}) * x.get({i, j});
  }
  return s;
}

TEST(ActivationNormCollector, SumsOfSquaresPerFeature) {
  ActivationNormCollector c;
  c.add("fc.weight", Tensor::from_values({1, 2, 3, 4}, {2, 2}));
  c.add("fc.weight", Tensor::from_values({0.5, -1}, {2}));  // one row
  EXPECT_EQ(c.rows("fc.weight"), 3);
  EXPECT_EQ(c.sums_of_squares()[0].second.to_vector(), (std::vector<double>{10.25, 21}));
  const auto norms = c.norms();
  ASSERT_EQ(norms.size(), 1u);
  EXPECT_EQ(norms[0].first, "fc.weight");
  EXPECT_EQ(norms[0].second.dtype(), DType::f32);
  EXPECT_EQ(norms[0].second.shape(), (Shape{2}));
  EXPECT_EQ(norms[0].second.get({0}), static_cast<double>(static_cast<float>(std::sqrt(10.25))));
  EXPECT_EQ(norms[0].second.get({1}), static_cast<double>(static_cast<float>(std::sqrt(21.0))));
}

// Rank > 2 batches and any split of the rows give the same bits; names keep their first-seen order.
TEST(ActivationNormCollector, BatchShapesAndSplitsDoNotMatter) {
  const Tensor x = random_tensor({24, 5}, 7);
  ActivationNormCollector whole, split;
  whole.add("b", Tensor::ones({1, 3}));
  whole.add("a", x);
  split.add("b", Tensor::ones({3}));
  split.add("a", x.narrow(0, 0, 6).contiguous().reshape({2, 3, 5}));
  split.add("a", x.narrow(0, 6, 1).contiguous().reshape({5}));
  split.add("a", x.narrow(0, 7, 0));
  split.add("a", x.narrow(0, 7, 17));  // a strided-free view with an offset
  const auto a = whole.norms(), b = split.norms();
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[0].first, "b");
  EXPECT_EQ(b[0].first, "b");
  EXPECT_TRUE(bitwise_equal(a[1].second, b[1].second));
  EXPECT_EQ(split.rows("a"), 24);
  const auto sums = column_sums(x);
  for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(whole.sums_of_squares()[1].second.get({j}), sums[j]) << j;
}

TEST(ActivationNormCollector, EveryFloatingDtypeAndStrides) {
  const Tensor x = random_tensor({6, 4}, 9);
  for (DType dt : {DType::f64, DType::f16, DType::bf16}) {
    const Tensor xd = x.to(dt);
    ActivationNormCollector c;
    c.add("w", xd);
    const auto sums = column_sums(xd);
    for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(c.sums_of_squares()[0].second.get({j}), sums[j]) << to_string(dt);
  }
  // A transposed (non-contiguous) batch is read in its logical order.
  const Tensor t = random_tensor({4, 6}, 10).t();
  ActivationNormCollector c, d;
  c.add("w", t);
  d.add("w", t.contiguous());
  EXPECT_TRUE(bitwise_equal(c.norms()[0].second, d.norms()[0].second));
}

// Names that saw no row are left out; clear() forgets everything.
TEST(ActivationNormCollector, EmptyBatchesAndClear) {
  ActivationNormCollector c;
  c.add("a", Tensor::empty({0, 4}));
  EXPECT_TRUE(c.norms().empty());
  EXPECT_EQ(c.rows("a"), 0);
  EXPECT_SPARSITY_ERROR(c.add("a", Tensor::ones({2, 3})), InvalidArgument, "'a'", "3 input features", "had 4");
  c.add("a", Tensor::ones({2, 4}));
  EXPECT_EQ(c.norms().size(), 1u);
  c.clear();
  EXPECT_TRUE(c.norms().empty());
  EXPECT_EQ(c.rows("a"), 0);
  c.add("a", Tensor::ones({2, 3}));  // a new width after clear()
  EXPECT_EQ(c.rows("a"), 2);
}

// Pre-hooks see every Linear's input: the first layer's is the model input, the others' the previous
// layer's output (recomputed here layer by layer).
TEST(ActivationNormCollector, HooksOnEveryLinear) {
  auto model = simple_linear();
  ActivationNormCollector c;
  c.attach(model);
  EXPECT_TRUE(c.attached());
  const Tensor x1 = random_tensor({3, 7}, 1), x2 = random_tensor({7}, 2);
  (*model)(x1);
  (*model)(x2);
  c.detach();
  EXPECT_FALSE(c.attached());
  (*model)(x1);  // after detach: nothing more is added
  const auto norms = c.norms();
  ASSERT_EQ(norms.size(), 5u);
  EXPECT_EQ(norms[0].first, "seq.0.weight");
  EXPECT_EQ(norms[4].first, "linear2.weight");
  ActivationNormCollector expected;
  for (const Tensor& x : {x1, x2}) {
    Tensor h = x;
    for (const char* name : {"seq.0", "seq.1", "seq.2", "linear1", "linear2"}) {
      expected.add(std::string(name) + ".weight", h);
      h = model->get_submodule(name)->forward(h);
    }
  }
  for (const auto& [name, t] : expected.norms()) {
    EXPECT_TRUE(bitwise_equal(find(norms, name), t)) << name;
    EXPECT_EQ(c.rows(name), 4) << name;
  }
  EXPECT_TRUE(model->linear1->forward_pre_hooks().empty());
}

// The root itself may be the Linear ("weight"); a prepared (parametrized) Linear still matches.
TEST(ActivationNormCollector, RootAndParametrizedModules) {
  auto lin = std::make_shared<Linear>(LinearOptions(3, 2).bias(false));
  register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(Tensor::ones({2, 3})));
  ActivationNormCollector c;
  c.attach(lin);
  (*lin)(Tensor::ones({2, 3}));
  ASSERT_EQ(c.norms().size(), 1u);
  EXPECT_EQ(c.norms()[0].first, "weight");
  EXPECT_EQ(c.rows("weight"), 2);
}

// A hook copied to a clone does nothing; a collector destroyed first leaves no hook behind.
TEST(ActivationNormCollector, ClonesAndLifetime) {
  auto model = simple_linear();
  {
    ActivationNormCollector c;
    c.attach(model);
    ModulePtr copy = model->clone();
    (*copy)(Tensor::ones({1, 7}));
    EXPECT_TRUE(c.norms().empty());
    (*model)(Tensor::ones({1, 7}));
    EXPECT_EQ(c.rows("seq.0.weight"), 1);
    (*copy)(Tensor::ones({1, 7}));  // the clone's copies of the hooks outlive nothing
    EXPECT_EQ(c.rows("seq.0.weight"), 1);
  }
  for (const auto& [fqn, m] : model->named_modules()) EXPECT_TRUE(m->forward_pre_hooks().empty()) << fqn;
  (*model)(Tensor::ones({1, 7}));
}

TEST(ActivationNormCollector, Errors) {
  ActivationNormCollector c;
  EXPECT_SPARSITY_ERROR(c.add("", Tensor::ones({2})), InvalidArgument, "empty");
  EXPECT_SPARSITY_ERROR(c.add("w", Tensor()), InvalidArgument, "'w'", "undefined");
  EXPECT_SPARSITY_ERROR(c.add("w", Tensor::ones({})), InvalidArgument, "'w'", "scalar");
  EXPECT_SPARSITY_ERROR(c.add("w", Tensor::ones({2, 2}, DType::i32)), InvalidArgument, "'w'", "i32");
  EXPECT_SPARSITY_ERROR(c.attach(nullptr), InvalidArgument, "null");
  auto conv_model = std::make_shared<nn::Sequential>();
  conv_model->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 3, 3)));
  EXPECT_SPARSITY_ERROR(c.attach(conv_model), InvalidArgument, "no module of type 'Linear'");
  EXPECT_SPARSITY_ERROR(c.attach(conv_model, {"Conv2d"}), InvalidArgument, "'0'", "Conv2d", "[3, 2, 3, 3]", "2-D");
  EXPECT_TRUE(conv_model->child("0")->forward_pre_hooks().empty());
  EXPECT_FALSE(c.attached());
  auto model = simple_linear();
  c.attach(model);
  EXPECT_SPARSITY_ERROR(c.attach(model), FailedPrecondition, "already attached");
  // A batch of the wrong width fails in the hook, naming the weight and both widths.
  EXPECT_SPARSITY_ERROR((*model)(Tensor::ones({2, 6})), InvalidArgument, "'seq.0.weight'", "6 input features",
                        "weight has 7");
  EXPECT_SPARSITY_ERROR(c.add("linear1.weight", Tensor::ones({2, 5})), InvalidArgument, "'linear1.weight'", "5", "4");
}

}  // namespace
}  // namespace sparsity

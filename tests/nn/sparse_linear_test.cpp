// nn::SparseLinear: forward against Linear on the same pruned weights, state_dict names, clone and load,
// the prepare -> step -> convert -> squash_mask lifecycle, and misuse errors.
#include "sparsity/nn/sparse_linear.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace sparsity {
namespace {

using nn::SparseLinear;

// Zeroes the weight of `lin` outside a pattern `format` holds: 2:4 / N:M groups keep their first n
// non-zero... positions chosen at random; BSR keeps a third of the blocks; others keep about 30%.
void prune_for(nn::Linear& lin, const PackFormat& f, uint64_t seed) {
  const Tensor w = lin.parameter("weight");
  const int64_t rows = w.size(0), cols = w.size(1);
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> keep(static_cast<size_t>(rows * cols), 0);
  if (!f.is_auto() && f.layout() == kernels::SparseLayout::nm) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g = 0; g < cols; g += f.m()) {
        for (int64_t k = 0; k < f.n();) {
          const int64_t c = g + static_cast<int64_t>(rng() % static_cast<uint64_t>(f.m()));
          if (!keep[static_cast<size_t>(r * cols + c)]) {
            keep[static_cast<size_t>(r * cols + c)] = 1;
            ++k;
          }
        }
      }
    }
  } else if (!f.is_auto() && f.layout() == kernels::SparseLayout::bsr) {
    const int64_t br = f.block_rows(), bc = f.block_cols();
    for (int64_t R = 0; R < rows / br; ++R) {
      for (int64_t B = 0; B < cols / bc; ++B) {
        if (rng() % 3 != 0) continue;
        for (int64_t i = 0; i < br; ++i) {
          for (int64_t e = 0; e < bc; ++e) keep[static_cast<size_t>((R * br + i) * cols + B * bc + e)] = 1;
        }
      }
    }
  } else {
    for (auto& k : keep) k = rng() % 10 < 3;
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!keep[static_cast<size_t>(i)]) w.set_flat(i, 0.0);
  }
}

// |got - want| <= 1e-5 sum_j |W_ij x_j| (+ one unit in the last place of the output dtype) per output.
void expect_close(const Tensor& got, const Tensor& want, const Tensor& w, const Tensor& x, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const double ulp = got.dtype() == DType::bf16 ? 0x1p-7 : got.dtype() == DType::f16 ? 0x1p-10 : 0.0;
  const Tensor x2 = x.dim() == 1 ? x.reshape({1, x.size(0)}) : x;
  const Tensor g2 = got.dim() == 1 ? got.reshape({1, got.size(0)}) : got;
  const Tensor w2 = want.dim() == 1 ? want.reshape({1, want.size(0)}) : want;
  for (int64_t b = 0; b < x2.size(0); ++b) {
    for (int64_t i = 0; i < w.size(0); ++i) {
      double scale = 0;
      for (int64_t j = 0; j < w.size(1); ++j) scale += std::fabs(w.get({i, j}) * x2.get({b, j}));
      const double a = g2.get({b, i}), e = w2.get({b, i});
      EXPECT_LE(std::fabs(a - e), 1e-5 * scale + 2 * ulp * std::fabs(e) + 1e-30)
          << what << " output (" << b << ", " << i << "): " << a << " vs " << e;
    }
  }
}

TEST(SparseLinear, ForwardComputesXWtPlusB) {
  // W = [[1, 0, 3], [0, 0, -1]], b = [0.5, -0.5]: y = [[4.5, -1.5], [-0.5, 0.5]] (worked by hand).
  nn::Linear lin(3, 2);
  lin.set_tensor("weight", Tensor::from_values({1, 0, 3, 0, 0, -1}, {2, 3}));
  lin.set_tensor("bias", Tensor::from_values({0.5, -0.5}));
  for (const PackFormat& f : {PackFormat::csr(), PackFormat::bitmask(), PackFormat::bsr(1, 1), PackFormat::bsr(2, 1)}) {
    auto sparse = SparseLinear::from_dense(lin, f);
    EXPECT_EQ(sparse->type_name(), "SparseLinear");
    EXPECT_EQ(sparse->in_features(), 3);
    EXPECT_EQ(sparse->out_features(), 2);
    const Tensor y = (*sparse)(Tensor::from_values({1, 1, 1, 2, 0, -1}, {2, 3}));
    EXPECT_EQ(y.shape(), (Shape{2, 2}));
    EXPECT_EQ(y.to_vector(), (std::vector<double>{4.5, -1.5, -0.5, 0.5})) << f.to_string();
    const Tensor y1 = (*sparse)(Tensor::from_values({1, 1, 1}));
    EXPECT_EQ(y1.shape(), (Shape{2}));
    EXPECT_EQ(y1.to_vector(), (std::vector<double>{4.5, -1.5}));
    // A strided (transposed) input and an f64 input give the same.
    EXPECT_EQ((*sparse)(Tensor::from_values({1, 2, 1, 0, 1, -1}, {3, 2}).t()).to_vector(), y.to_vector());
    EXPECT_EQ((*sparse)(Tensor::from_values({1, 1, 1, 2, 0, -1}, {2, 3}, DType::f64)).to_vector(), y.to_vector());
  }
}

// The same outputs as Linear on the pruned weight (within 1e-5 of sum |W x| per output, plus the
// rounding to f16/bf16), for every format and value dtype, batches of 1, 5 and 64 and a 1-D input.
TEST(SparseLinear, ForwardMatchesLinearOnThePrunedWeights) {
  const PackFormat formats[] = {PackFormat::nm(2, 4), PackFormat::nm(1, 8), PackFormat::bsr(1, 8), PackFormat::bsr(8, 1),
                                PackFormat::bsr(4, 4), PackFormat::bitmask(), PackFormat::csr(), PackFormat::automatic()};
  uint64_t seed = 10;
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    for (const PackFormat& f : formats) {
      for (bool with_bias : {true, false}) {
        nn::Linear lin(nn::LinearOptions(96, 40).dtype(dtype).bias(with_bias).seed(++seed));
        prune_for(lin, f, seed);
        auto sparse = SparseLinear::from_dense(lin, f);
        if (!f.is_auto()) EXPECT_EQ(sparse->format(), f);
        const std::string what = f.to_string() + " " + to_string(dtype) + (with_bias ? " bias" : "");
        for (int64_t batch : {1, 5, 64}) {
          const Tensor x = testing::random_tensor({batch, 96}, seed * 7 + static_cast<uint64_t>(batch));
          expect_close((*sparse)(x), lin(x), lin.weight(), x, what + " batch " + std::to_string(batch));
        }
        const Tensor x1 = testing::random_tensor({96}, seed);
        expect_close((*sparse)(x1), lin(x1), lin.weight(), x1, what + " 1-D");
      }
    }
  }
}

TEST(SparseLinear, StateDictHoldsThePackedPartsUnderStableNames) {
  nn::Linear lin(nn::LinearOptions(16, 8).seed(3));
  prune_for(lin, PackFormat::nm(2, 4), 3);
  auto names = [](const Module& m) {
    std::vector<std::string> out;
    for (const auto& [k, v] : m.state_dict()) out.push_back(k);
    return out;
  };
  EXPECT_EQ(names(*SparseLinear::from_dense(lin, PackFormat::nm(2, 4))),
            (std::vector<std::string>{"shape", "compressed", "bitmask", "bias"}));
  EXPECT_EQ(names(*SparseLinear::from_dense(lin, PackFormat::bitmask())),
            (std::vector<std::string>{"shape", "compressed", "bitmask", "row_offsets", "bias"}));
  EXPECT_EQ(names(*SparseLinear::from_dense(lin, PackFormat::csr())),
            (std::vector<std::string>{"shape", "compressed", "col_indices", "crow_indices", "bias"}));
  auto seq = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{SparseLinear::from_dense(lin, PackFormat::bsr(1, 4))});
  EXPECT_EQ(names(*seq), (std::vector<std::string>{"0.shape", "0.compressed", "0.col_indices", "0.crow_indices", "0.bias"}));
  // The parts are the packed tensor's: the state dict of a sparse-24-bitmask layer is compressed-tensors'.
  const auto sparse = SparseLinear::from_dense(lin, PackFormat::nm(2, 4));
  const PackedTensor p = pack(lin.weight(), PackFormat::nm(2, 4));
  EXPECT_TRUE(bitwise_equal(sparse->buffer("compressed"), p.part("compressed")));
  EXPECT_TRUE(bitwise_equal(sparse->buffer("bitmask"), p.part("bitmask")));
  EXPECT_TRUE(bitwise_equal(sparse->buffer("shape"), p.part("shape")));
  EXPECT_TRUE(bitwise_equal(sparse->weight().unpack(), lin.weight()));
  EXPECT_EQ(sparse->extra_repr(), "in_features=16, out_features=8, bias=true, format=sparse-24-bitmask");
}

TEST(SparseLinear, LoadStateDictAndCloneCarryThePackedWeight) {
  nn::Linear a(nn::LinearOptions(32, 8).seed(1)), b(nn::LinearOptions(32, 8).seed(2));
  prune_for(a, PackFormat::nm(2, 4), 1);
  prune_for(b, PackFormat::nm(2, 4), 2);
  auto sa = SparseLinear::from_dense(a, PackFormat::nm(2, 4));
  auto sb = SparseLinear::from_dense(b, PackFormat::nm(2, 4));
  const Tensor x = testing::random_tensor({3, 32}, 9);
  EXPECT_FALSE(equal((*sa)(x), (*sb)(x)));
  sb->load_state_dict(sa->state_dict());
  EXPECT_TRUE(bitwise_equal((*sa)(x), (*sb)(x)));
  const ModulePtr copy = sa->clone();
  EXPECT_EQ(copy->type_name(), "SparseLinear");
  EXPECT_TRUE(bitwise_equal((*copy)(x), (*sa)(x)));
  EXPECT_FALSE(copy->buffer("compressed").shares_storage(sa->buffer("compressed")));
  sa->buffer("compressed").zero_();  // the copy keeps its own values
  EXPECT_TRUE(bitwise_equal((*copy)(x), (*sb)(x)));
}

std::shared_ptr<nn::Sequential> small_model() {
  return std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<nn::Linear>(nn::LinearOptions(64, 128).seed(1)), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(nn::LinearOptions(128, 16).seed(2))});
}

// torch's order: convert hands from_dense the still-parametrized modules (their masked weights), then
// squash_mask bakes the masks into the original model; both models compute the same.
TEST(SparseLinear, LifecyclePrepareStepConvertSquash) {
  auto model = small_model();
  WeightNormSparsifier sparsifier(/*sparsity_level=*/1.0, /*sparse_block_shape=*/{1, 4}, /*zeros_per_block=*/2);
  sparsifier.prepare(model, std::nullopt);
  sparsifier.step();
  const ModulePtr converted =
      sparsifier.convert(model, {{"Linear", SparseLinear::converter(PackFormat::automatic())}}, /*inplace=*/false);
  for (const char* name : {"0", "2"}) {
    const auto sparse = std::dynamic_pointer_cast<SparseLinear>(converted->child(name));
    ASSERT_NE(sparse, nullptr) << name;
    EXPECT_EQ(sparse->format(), PackFormat::nm(2, 4)) << name;  // auto: 2:4 is the smallest
  }
  EXPECT_EQ(converted->child("1")->type_name(), "ReLU");
  sparsifier.squash_mask();
  EXPECT_EQ(model->child("0")->type_name(), "Linear");
  const Tensor x = testing::random_tensor({8, 64}, 4);
  const Tensor h = (*model->child("1"))((*model->child("0"))(x));
  expect_close((*converted->child("0"))(x), (*model->child("0"))(x),
               std::dynamic_pointer_cast<nn::Linear>(model->child("0"))->weight(), x, "layer 0");
  expect_close((*converted)(x), (*model)(x), std::dynamic_pointer_cast<nn::Linear>(model->child("2"))->weight(), h,
               "model");
  // The packed weights are the squashed ones, bit for bit.
  for (const char* name : {"0", "2"}) {
    EXPECT_TRUE(bitwise_equal(std::dynamic_pointer_cast<SparseLinear>(converted->child(name))->weight().unpack(),
                              std::dynamic_pointer_cast<nn::Linear>(model->child(name))->weight()))
        << name;
  }
}

// squash_mask first: the masks are gone, so convert (which swaps only modules that still carry a
// FakeSparsity, as torch's) leaves the Linears; swap_module packs a squashed Linear directly.
TEST(SparseLinear, LifecyclePrepareStepSquashThenSwap) {
  auto model = small_model();
  WeightNormSparsifier sparsifier(/*sparsity_level=*/1.0, {1, 4}, /*zeros_per_block=*/2);
  sparsifier.prepare(model, std::nullopt);
  sparsifier.step();
  sparsifier.squash_mask();
  const ModuleMapping mapping{{"Linear", SparseLinear::converter(PackFormat::nm(2, 4))}};
  const ModulePtr unchanged = sparsifier.convert(model, mapping);
  EXPECT_EQ(unchanged->child("0")->type_name(), "Linear");
  for (const char* name : {"0", "2"}) model->replace_module(name, swap_module(model->child(name), mapping));
  EXPECT_EQ(model->child("0")->type_name(), "SparseLinear");
  EXPECT_EQ(model->child("2")->type_name(), "SparseLinear");
  const auto reference = std::dynamic_pointer_cast<nn::Sequential>(unchanged);
  const Tensor x = testing::random_tensor({5, 64}, 6);
  const Tensor h = (*reference->child("1"))((*reference->child("0"))(x));
  expect_close((*model)(x), (*reference)(x), std::dynamic_pointer_cast<nn::Linear>(reference->child("2"))->weight(), h,
               "swapped model");
}

TEST(SparseLinear, MisuseErrorsNameTheProblem) {
  nn::Linear lin(nn::LinearOptions(8, 4).seed(1));
  auto sparse = SparseLinear::from_dense(lin, PackFormat::csr());
  EXPECT_SPARSITY_ERROR((*sparse)(Tensor::zeros({2, 7})), InvalidArgument, "in_features=8", "[2, 7]");
  EXPECT_SPARSITY_ERROR((*sparse)(Tensor::zeros({2, 2, 8})), InvalidArgument, "[2, 2, 8]");
  EXPECT_SPARSITY_ERROR(SparseLinear::from_dense(lin, PackFormat::nm(2, 4)), InvalidArgument, "sparse-24-bitmask",
                        "row 0, column 2");
  nn::Linear wide(nn::LinearOptions(8, 4).dtype(DType::f64));
  EXPECT_SPARSITY_ERROR(SparseLinear::from_dense(wide, PackFormat::csr()), InvalidArgument, "f64");
  nn::Conv2d conv(nn::Conv2dOptions(1, 1, 3));
  EXPECT_SPARSITY_ERROR(SparseLinear::converter(PackFormat::csr())(conv), InvalidArgument, "'Conv2d'", "not a Linear");
  EXPECT_SPARSITY_ERROR(std::make_shared<SparseLinear>(PackedTensor()), InvalidArgument, "undefined");
  EXPECT_SPARSITY_ERROR(std::make_shared<SparseLinear>(pack(lin.weight(), PackFormat::csr()), Tensor::zeros({5})), InvalidArgument,
                        "bias of shape [5]");
  // A buffer replaced by one of another shape is refused at the next forward, naming the part.
  sparse->set_tensor("col_indices", Tensor::zeros({3}, DType::u8));
  EXPECT_SPARSITY_ERROR((*sparse)(Tensor::zeros({1, 8})), InvalidArgument, "'col_indices'");
  auto other = SparseLinear::from_dense(lin, PackFormat::bitmask());
  other->set_tensor("row_offsets", Tensor::zeros({4}, DType::i32));
  EXPECT_SPARSITY_ERROR((*other)(Tensor::zeros({1, 8})), InvalidArgument, "'row_offsets'", "i32");
}

}  // namespace
}  // namespace sparsity

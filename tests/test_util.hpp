// Shared test helpers: seeded random tensors, error assertions, and torch's common_pruning models
// (SimpleLinear, ImplementedSparsifier, MockSparseLinear).
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "sparsity/sparsity.hpp"

namespace sparsity::testing {

/// Uniform [-1, 1) values from std::mt19937_64(seed) (exactly specified, same on every platform).
inline Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype = DType::f32) {
  Tensor t = Tensor::empty(shape, dtype);
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) {
    t.set_flat(i, static_cast<double>(rng() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
  }
  return t;
}

/// Runs `stmt`, expects a sparsity::Error with `code` whose message contains every `parts`.
#define EXPECT_SPARSITY_ERROR(stmt, expected_code, ...)                                              \
  do {                                                                                              \
    bool sparsity_thrown_ = false;                                                                  \
    try {                                                                                           \
      stmt;                                                                                         \
    } catch (const ::sparsity::Error& e) {                                                          \
      sparsity_thrown_ = true;                                                                      \
      EXPECT_EQ(e.code(), ::sparsity::ErrorCode::expected_code) << e.what();                        \
      for (const std::string& part : std::initializer_list<std::string>{__VA_ARGS__}) {             \
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos)                              \
            << "message '" << e.what() << "' lacks '" << part << "'";                               \
      }                                                                                             \
    }                                                                                               \
    EXPECT_TRUE(sparsity_thrown_) << "no sparsity::Error from " #stmt;                              \
  } while (0)

/// torch's common_pruning.SimpleLinear: seq = [Linear(7,5), Linear(5,6), Linear(6,4)], then
/// linear1 = Linear(4,4), linear2 = Linear(4,10); no biases.
class SimpleLinear : public Cloneable<SimpleLinear> {
 public:
  explicit SimpleLinear(uint64_t seed = 0) : Cloneable("SimpleLinear") {
    seq = register_module("seq", std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
                                     std::make_shared<nn::Linear>(nn::LinearOptions(7, 5).bias(false).seed(seed + 1)),
                                     std::make_shared<nn::Linear>(nn::LinearOptions(5, 6).bias(false).seed(seed + 2)),
                                     std::make_shared<nn::Linear>(nn::LinearOptions(6, 4).bias(false).seed(seed + 3))}));
    linear1 = register_module("linear1", std::make_shared<nn::Linear>(nn::LinearOptions(4, 4).bias(false).seed(seed + 4)));
    linear2 = register_module("linear2", std::make_shared<nn::Linear>(nn::LinearOptions(4, 10).bias(false).seed(seed + 5)));
  }
  Tensor forward(const Tensor& x) override {
    return (*child("linear2"))((*child("linear1"))((*child("seq"))(x)));
  }
  // Handles for the tests (a clone's handles still name the source's modules: use child()).
  std::shared_ptr<nn::Sequential> seq;
  std::shared_ptr<nn::Linear> linear1;
  std::shared_ptr<nn::Linear> linear2;
};

/// A fresh SimpleLinear with the default seeds.
inline std::shared_ptr<SimpleLinear> simple_linear() { return std::make_shared<SimpleLinear>(); }

/// torch's ImplementedSparsifier: update_mask zeroes row 0 of the tensor's first mask and counts the
/// calls in state["linear1.weight"]["step_count"], whatever the group.
class ImplementedSparsifier : public SparsifierCloneable<ImplementedSparsifier> {
 public:
  explicit ImplementedSparsifier(Json defaults = Json::object()) : SparsifierCloneable(std::move(defaults)) {}
  std::string class_name() const override { return "ImplementedSparsifier"; }

 protected:
  void update_mask(Module& module, const std::string& tensor_name, Group&) override {
    mask_of(module, tensor_name).select(0, 0).fill_(0.0);
    Json& values = state_of("linear1.weight").values;
    values["step_count"] = values.value("step_count", 0) + 1;
  }
};

/// torch's MockSparseLinear: a Linear subclass whose from_dense makes a fresh one of the same sizes.
class MockSparseLinear : public Cloneable<MockSparseLinear, nn::Linear> {
 public:
  MockSparseLinear(int64_t in, int64_t out) : Cloneable(nn::LinearOptions(in, out), "MockSparseLinear") {}
  static ModulePtr from_dense(const Module& dense) {
    const Tensor w = dense.tensor("weight");
    return std::make_shared<MockSparseLinear>(w.size(1), w.size(0));
  }
};

}  // namespace sparsity::testing

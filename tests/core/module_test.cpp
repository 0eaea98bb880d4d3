// Module: names, enumeration order, state dicts, hooks, repr, clone.
#include "sparsity/core/module.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace sparsity {
namespace {

std::vector<std::string> keys(const StateDict& sd) {
  std::vector<std::string> out;
  for (const auto& [k, t] : sd) out.push_back(k);
  return out;
}
template <class V>
std::vector<std::string> names(const NamedList<V>& l) {
  std::vector<std::string> out;
  for (const auto& [k, v] : l) out.push_back(k);
  return out;
}

/// A user-defined layer: a scale parameter and a running buffer.
class Scale : public Cloneable<Scale> {
 public:
  explicit Scale(double s = 2.0) : Cloneable("Scale") {
    register_parameter("scale", Tensor::full({1}, s));
    register_buffer("calls", Tensor::zeros({1}));
  }
  Tensor forward(const Tensor& x) override {
    buffer("calls").set_flat(0, buffer("calls").item() + 1);
    Tensor y = x.clone();
    for (int64_t i = 0; i < y.numel(); ++i) y.set_flat(i, y.get_flat(i) * tensor("scale").item());
    return y;
  }
};

TEST(Module, NamesAreValidatedAndQuoted) {
  Module m("Block");
  EXPECT_SPARSITY_ERROR(m.register_parameter("", Tensor::ones({1})), InvalidArgument, "empty");
  EXPECT_SPARSITY_ERROR(m.register_parameter("a.b", Tensor::ones({1})), InvalidArgument, "'a.b'", "dot");
  EXPECT_SPARSITY_ERROR(m.register_buffer("x.y", Tensor::ones({1})), InvalidArgument, "'x.y'");
  EXPECT_SPARSITY_ERROR(m.register_module("p.q", std::make_shared<Module>()), InvalidArgument, "'p.q'");
  EXPECT_SPARSITY_ERROR(m.register_module("", std::make_shared<Module>()), InvalidArgument, "empty");
  EXPECT_SPARSITY_ERROR(m.register_parameter("u", Tensor()), InvalidArgument, "'u'", "undefined");
  EXPECT_SPARSITY_ERROR(m.register_module("n", ModulePtr()), InvalidArgument, "'n'", "null");
  EXPECT_SPARSITY_ERROR(Module(""), InvalidArgument, "type name");
}

TEST(Module, NameCollisionsAcrossKinds) {
  auto m = std::make_shared<Module>("Block");
  m->register_parameter("w", Tensor::ones({1}));
  m->register_buffer("b", Tensor::ones({1}));
  m->register_module("c", std::make_shared<Module>());
  EXPECT_SPARSITY_ERROR(m->register_buffer("w", Tensor::ones({1})), InvalidArgument, "'w'", "parameter");
  EXPECT_SPARSITY_ERROR(m->register_parameter("b", Tensor::ones({1})), InvalidArgument, "'b'", "buffer");
  EXPECT_SPARSITY_ERROR(m->register_parameter("c", Tensor::ones({1})), InvalidArgument, "'c'", "child");
  EXPECT_SPARSITY_ERROR(m->register_module("w", std::make_shared<Module>()), InvalidArgument, "'w'");
  // Re-registering the same kind replaces in place (order kept).
  const Tensor w2 = Tensor::zeros({2});
  m->register_parameter("w", w2);
  EXPECT_TRUE(m->parameter("w").is_same(w2));
  EXPECT_EQ(names(m->named_parameters()), std::vector<std::string>{"w"});
}

TEST(Module, CyclesAreRefused) {
  auto a = std::make_shared<Module>("A");
  auto b = std::make_shared<Module>("B");
  a->register_module("b", b);
  EXPECT_SPARSITY_ERROR(b->register_module("a", a), InvalidArgument, "'a'", "cycle");
  EXPECT_SPARSITY_ERROR(a->register_module("self", a), InvalidArgument, "'self'", "itself");
}

TEST(Module, EnumerationOrderAndFqns) {
  auto model = std::make_shared<testing::SimpleLinear>();
  EXPECT_EQ(names(model->named_modules()),
            (std::vector<std::string>{"", "seq", "seq.0", "seq.1", "seq.2", "linear1", "linear2"}));
  EXPECT_EQ(names(model->named_children()), (std::vector<std::string>{"seq", "linear1", "linear2"}));
  EXPECT_EQ(names(model->named_parameters()),
            (std::vector<std::string>{"seq.0.weight", "seq.1.weight", "seq.2.weight", "linear1.weight",
                                      "linear2.weight"}));
  EXPECT_TRUE(model->named_parameters(/*recurse=*/false).empty());
  EXPECT_EQ(names(model->named_modules("m")).at(1), "m.seq");
  EXPECT_EQ(model->get_submodule("seq.1"), (*model->seq)[1]);
  EXPECT_EQ(model->get_submodule(""), model);
  EXPECT_SPARSITY_ERROR(model->get_submodule("seq.7.x"), NotFound, "'seq.7.x'", "'seq'", "'7'");
  EXPECT_SPARSITY_ERROR(model->child("nope"), NotFound, "'nope'");
  EXPECT_SPARSITY_ERROR(model->tensor("nope"), NotFound, "'nope'");
  EXPECT_SPARSITY_ERROR(model->parameter("nope"), NotFound, "'nope'");
  EXPECT_SPARSITY_ERROR(model->buffer("nope"), NotFound, "'nope'");
}

TEST(Module, SharedModulesAndTensorsAreListedOnceButSavedUnderEveryName) {
  auto shared = std::make_shared<nn::Linear>(nn::LinearOptions(2, 2).bias(false));
  auto root = std::make_shared<Module>("Root");
  root->register_module("a", shared);
  root->register_module("b", shared);
  root->register_buffer("tied", shared->parameter("weight"));
  EXPECT_EQ(names(root->named_modules()), (std::vector<std::string>{"", "a"}));
  EXPECT_EQ(names(root->named_children()), (std::vector<std::string>{"a"}));
  EXPECT_EQ(names(root->named_parameters()), (std::vector<std::string>{"a.weight"}));
  EXPECT_EQ(keys(root->state_dict()), (std::vector<std::string>{"tied", "a.weight", "b.weight"}));
}

TEST(Module, NamedBuffersFollowTheTree) {
  auto root = std::make_shared<Module>("Root");
  root->register_buffer("step", Tensor::zeros({1}));
  auto s = root->register_module("scale", std::make_shared<Scale>());
  EXPECT_EQ(names(root->named_buffers()), (std::vector<std::string>{"step", "scale.calls"}));
  EXPECT_EQ(names(root->named_buffers(/*recurse=*/false)), std::vector<std::string>{"step"});
  EXPECT_TRUE(root->named_buffers()[1].second.is_same(s->buffer("calls")));
  EXPECT_EQ(keys(root->state_dict()), (std::vector<std::string>{"step", "scale.scale", "scale.calls"}));
}

TEST(Module, StateDictHoldsTheRegisteredTensors) {
  auto lin = std::make_shared<nn::Linear>(3, 2);
  const StateDict sd = lin->state_dict();
  EXPECT_EQ(keys(sd), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_TRUE(sd[0].second.is_same(lin->parameter("weight")));
}

TEST(Module, LoadStateDictCopiesValuesStrictOrNot) {
  auto a = std::make_shared<nn::Linear>(nn::LinearOptions(3, 2).seed(1));
  auto b = std::make_shared<nn::Linear>(nn::LinearOptions(3, 2).seed(2));
  const Tensor bw = b->parameter("weight");
  EXPECT_FALSE(equal(a->parameter("weight"), bw));
  const LoadStateDictResult r = b->load_state_dict(a->state_dict());
  EXPECT_TRUE(r.missing_keys.empty() && r.unexpected_keys.empty());
  EXPECT_TRUE(b->parameter("weight").is_same(bw));  // copied into, not replaced
  EXPECT_TRUE(equal(bw, a->parameter("weight")));
  EXPECT_FALSE(bw.shares_storage(a->parameter("weight")));

  StateDict partial{{"weight", Tensor::zeros({2, 3}, DType::f64)}, {"extra", Tensor::ones({1})}};
  EXPECT_SPARSITY_ERROR(b->load_state_dict(partial), InvalidArgument, "missing keys: 'bias'",
                        "unexpected keys: 'extra'");
  EXPECT_NE(count_nonzero(bw), 0);  // a failed strict load changes nothing
  const LoadStateDictResult loose = b->load_state_dict(partial, /*strict=*/false);
  EXPECT_EQ(loose.missing_keys, std::vector<std::string>{"bias"});
  EXPECT_EQ(loose.unexpected_keys, std::vector<std::string>{"extra"});
  EXPECT_EQ(count_nonzero(bw), 0);  // f64 values converted into the f32 weight
  EXPECT_EQ(bw.dtype(), DType::f32);

  EXPECT_SPARSITY_ERROR(b->load_state_dict({{"weight", Tensor::zeros({3, 2})}}, false), InvalidArgument, "'weight'",
                        "[3, 2]", "[2, 3]");
  EXPECT_SPARSITY_ERROR(b->load_state_dict({{"bias", Tensor::zeros({2})}, {"bias", Tensor::zeros({2})}}, false),
                        InvalidArgument, "'bias'", "twice");
}

TEST(Module, LoadIntoReadOnlyTensorIsRefused) {
  const std::vector<float> bytes{1, 2};
  auto m = std::make_shared<Module>("Holder");
  m->register_parameter("w", Tensor::from_blob(static_cast<const void*>(bytes.data()), {2}, DType::f32));
  EXPECT_SPARSITY_ERROR(m->load_state_dict({{"w", Tensor::zeros({2})}}), FailedPrecondition, "'w'", "read-only");
}

TEST(Module, HooksRunInOrderAndReplaceValues) {
  auto s = std::make_shared<Scale>(3.0);
  std::vector<std::string> log;
  const int pre = s->register_forward_pre_hook([&](Module& m, const Tensor& x) -> std::optional<Tensor> {
    log.push_back("pre:" + m.type_name());
    return full_like(x, 1.0);
  });
  s->register_forward_hook([&](Module&, const Tensor& in, const Tensor& out) -> std::optional<Tensor> {
    log.push_back("post:" + std::to_string(in.get_flat(0)).substr(0, 3) + "," + std::to_string(out.get_flat(0)).substr(0, 3));
    return std::nullopt;
  });
  const Tensor y = (*s)(Tensor::full({2}, 5.0));
  EXPECT_EQ(y.to_vector(), (std::vector<double>{3, 3}));
  EXPECT_EQ(log, (std::vector<std::string>{"pre:Scale", "post:1.0,3.0"}));
  EXPECT_EQ(s->forward_pre_hooks().size(), 1u);
  s->remove_hook(pre);
  EXPECT_TRUE(s->forward_pre_hooks().empty());
  EXPECT_EQ((*s)(Tensor::full({1}, 5.0)).item(), 15.0);
  EXPECT_SPARSITY_ERROR(s->remove_hook(pre), NotFound, std::to_string(pre));
  EXPECT_SPARSITY_ERROR(s->register_forward_hook(nullptr), InvalidArgument, "Scale");
}

TEST(Module, DefaultForwardThrowsNamingTheType) {
  Module m("Container");
  EXPECT_SPARSITY_ERROR(m(Tensor::ones({1})), FailedPrecondition, "'Container'");
}

TEST(Module, TrainEvalRecurse) {
  auto model = std::make_shared<testing::SimpleLinear>();
  model->eval();
  for (const auto& [n, m] : model->named_modules()) EXPECT_FALSE(m->is_training()) << n;
  model->train();
  for (const auto& [n, m] : model->named_modules()) EXPECT_TRUE(m->is_training()) << n;
}

TEST(Module, SetTensorReplacesTheHandle) {
  auto lin = std::make_shared<nn::Linear>(2, 2);
  const Tensor w = Tensor::eye(2, 2);
  lin->set_tensor("weight", w);
  EXPECT_TRUE(lin->parameter("weight").is_same(w));
  EXPECT_SPARSITY_ERROR(lin->set_tensor("gain", w), NotFound, "'gain'");
  EXPECT_SPARSITY_ERROR(lin->set_tensor("weight", Tensor()), InvalidArgument, "'weight'");
}

TEST(Module, UnregisterAndReplace) {
  auto model = std::make_shared<testing::SimpleLinear>();
  model->replace_module("linear1", std::make_shared<nn::Identity>());
  EXPECT_EQ(model->child("linear1")->type_name(), "Identity");
  EXPECT_EQ(names(model->named_children()), (std::vector<std::string>{"seq", "linear1", "linear2"}));
  model->unregister("linear2");
  EXPECT_FALSE(model->has_child("linear2"));
  EXPECT_SPARSITY_ERROR(model->unregister("linear2"), NotFound, "'linear2'");
}

TEST(Module, ReprFollowsTorch) {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(4, 8).bias(false)));
  seq->push_back(std::make_shared<nn::ReLU>());
  EXPECT_EQ(seq->repr(),
            "Sequential(\n  (0): Linear(in_features=4, out_features=8, bias=false)\n  (1): ReLU()\n)");
  auto lin = std::make_shared<nn::Linear>(2, 2);
  register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(Tensor::ones({2, 2})));
  EXPECT_EQ(lin->repr(),
            "ParametrizedLinear(\n  in_features=2, out_features=2, bias=true\n  (parametrizations): ModuleDict(\n"
            "    (weight): ParametrizationList(\n      (0): FakeSparsity()\n    )\n  )\n)");
}

TEST(Module, CloneIsDeepAndKeepsSharingHooksAndParametrizations) {
  auto shared = std::make_shared<Scale>(2.0);
  auto root = std::make_shared<Module>("Root");
  root->register_module("a", shared);
  root->register_module("b", shared);
  auto lin = root->register_module("lin", std::make_shared<nn::Linear>(2, 2));
  root->register_buffer("tied", lin->parameter("weight"));
  Tensor mask = Tensor::ones({2, 2});
  register_parametrization(*lin, "weight", std::make_shared<FakeSparsity>(mask));
  int hook_calls = 0;
  shared->register_forward_hook([&](Module&, const Tensor&, const Tensor&) -> std::optional<Tensor> {
    ++hook_calls;
    return std::nullopt;
  });
  root->sparse_params = Json{{"k", 1}};

  ModulePtr copy = root->clone();
  EXPECT_EQ(copy->type_name(), "Root");
  EXPECT_EQ(copy->child("a"), copy->child("b"));  // still shared
  EXPECT_NE(copy->child("a"), shared);
  EXPECT_NE(std::dynamic_pointer_cast<Scale>(copy->child("a")), nullptr);  // most-derived type kept
  EXPECT_EQ(copy->sparse_params, root->sparse_params);
  // Tensors are new, and a tensor registered twice is still one tensor in the copy.
  const ModulePtr clin = copy->child("lin");
  EXPECT_TRUE(is_parametrized(*clin, "weight"));
  const Tensor coriginal = parametrization_original(*clin, "weight");
  EXPECT_FALSE(coriginal.shares_storage(parametrization_original(*lin, "weight")));
  EXPECT_TRUE(coriginal.is_same(copy->buffer("tied")));
  EXPECT_TRUE(equal(coriginal, parametrization_original(*lin, "weight")));
  // Masks are independent.
  const Tensor cmask = parametrizations_of(*clin, "weight")[0]->buffer("mask");
  EXPECT_FALSE(cmask.is_same(mask));
  cmask.zero_();
  EXPECT_EQ(count_nonzero(mask), 4);
  EXPECT_EQ(count_nonzero(clin->tensor("weight")), 0);
  // Hooks are kept.
  (*copy->child("a"))(Tensor::ones({1}));
  EXPECT_EQ(hook_calls, 1);
}

TEST(Module, CloneOfASubclassWithoutCloneableIsRefused) {
  class Plain : public Module {
   public:
    Plain() : Module("Plain") {}
  };
  auto root = std::make_shared<Module>("Root");
  root->register_module("p", std::make_shared<Plain>());
  EXPECT_SPARSITY_ERROR(root->clone(), FailedPrecondition, "'Plain'", "Cloneable");
}

TEST(Module, EnumerationNeedsSharedOwnership) {
  Module on_stack("Stack");
  EXPECT_SPARSITY_ERROR(on_stack.named_modules(), FailedPrecondition, "shared_ptr");
}

}  // namespace
}  // namespace sparsity

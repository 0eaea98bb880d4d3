// BaseSparsifier: torch's TestBaseSparsifier cases, the spec §0 decisions of the base, and misuse errors.
#include "sparsity/sparsifier/base_sparsifier.hpp"

#include <gtest/gtest.h>

#include <type_traits>

#include "test_util.hpp"

namespace sparsity {
namespace {

using testing::ImplementedSparsifier;
using testing::MockSparseLinear;
using testing::SimpleLinear;
using testing::simple_linear;


Tensor first_mask(const ModulePtr& m) { return parametrizations_of(*m, "weight").at(0)->buffer("mask"); }

const Group* group_for(const BaseSparsifier& s, const std::string& fqn) {
  for (const Group& g : s.groups()) {
    if (g.tensor_fqn() == fqn) return &g;
  }
  return nullptr;
}

bool states_equal(const NamedList<TensorState>& a, const NamedList<TensorState>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || a[i].second.values != b[i].second.values) return false;
    if (a[i].second.mask.defined() != b[i].second.mask.defined()) return false;
    if (a[i].second.mask.defined() && !equal(a[i].second.mask, b[i].second.mask)) return false;
  }
  return true;
}

// ---- TestBaseSparsifier (test/ao/sparsity/test_sparsifier.py) -----------------------------------------

TEST(TestBaseSparsifier, test_constructor) {
  // Python checks BaseSparsifier() raises TypeError; in C++ the abstract class cannot be instantiated.
  static_assert(std::is_abstract_v<BaseSparsifier>);
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"test", 3}});
  sparsifier.prepare(model, std::nullopt);
  EXPECT_EQ(sparsifier.groups().size(), 5u);
  sparsifier.step();

  ImplementedSparsifier sparsifier2(Json{{"test", 3}});
  sparsifier2.prepare(model = simple_linear(), std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  ASSERT_EQ(sparsifier2.groups().size(), 1u);
  EXPECT_EQ(sparsifier2.groups()[0].tensor_fqn(), "linear1.weight");
  ASSERT_TRUE(sparsifier2.groups()[0].config.contains("test"));
  EXPECT_EQ(sparsifier2.groups()[0].config["test"], 3);
}

TEST(TestBaseSparsifier, test_prepare_config) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"test", 3}});
  EXPECT_FALSE(model->seq->child("0")->has_child("parametrizations"));
  EXPECT_FALSE(model->linear1->has_child("parametrizations"));
  EXPECT_FALSE(model->linear2->has_child("parametrizations"));
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "seq.0.weight"}, {"test", 42}},
                                                     Json{{"tensor_fqn", "linear2.weight"}}});
  ASSERT_EQ(sparsifier.groups().size(), 2u);
  EXPECT_EQ(sparsifier.groups()[0].config["test"], 42);  // the entry overrides the default
  EXPECT_EQ(sparsifier.groups()[1].tensor_fqn(), "linear2.weight");
  EXPECT_EQ(sparsifier.groups()[1].module, model->linear2);
  EXPECT_EQ(sparsifier.groups()[1].config["test"], 3);
  EXPECT_TRUE(model->seq->child("0")->has_child("parametrizations"));
  EXPECT_FALSE(model->linear1->has_child("parametrizations"));
  EXPECT_TRUE(model->linear2->has_child("parametrizations"));
}

TEST(TestBaseSparsifier, test_step) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"test", 3}});
  sparsifier.enable_mask_update = true;
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  EXPECT_EQ(count_nonzero(first_mask(model->linear1).select(0, 0)), 4);
  sparsifier.step();
  EXPECT_TRUE(equal(first_mask(model->linear1).select(0, 0), Tensor::zeros({4})));
  EXPECT_EQ(count_nonzero(first_mask(model->linear1)), 12);
}

TEST(TestBaseSparsifier, test_state_dict) {
  const int step_count = 3;
  auto model0 = simple_linear();
  ImplementedSparsifier sparsifier0(Json{{"test", 3}});
  sparsifier0.prepare(model0, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  Tensor mask = first_mask(model0->linear1);
  mask.set_(Tensor::arange(16, DType::i64).view({4, 4}));  // torch: mask.data = arange(16).reshape
  for (int i = 0; i < step_count; ++i) sparsifier0.step();
  const SparsifierStateDict state_dict = sparsifier0.state_dict();

  ASSERT_EQ(state_dict.state.size(), 1u);
  EXPECT_EQ(state_dict.state[0].first, "linear1.weight");
  ASSERT_TRUE(state_dict.state[0].second.values.contains("step_count"));
  EXPECT_EQ(state_dict.state[0].second.values["step_count"], 3);
  ASSERT_EQ(state_dict.groups.size(), 1u);
  EXPECT_TRUE(state_dict.groups[0].contains("test"));
  ASSERT_TRUE(state_dict.groups[0].contains("tensor_fqn"));
  EXPECT_EQ(state_dict.groups[0]["tensor_fqn"], "linear1.weight");

  auto model1 = simple_linear();
  ImplementedSparsifier sparsifier1;
  sparsifier1.prepare(model1, std::nullopt);
  EXPECT_FALSE(states_equal(sparsifier0.state(), sparsifier1.state()));
  const Tensor mask0 = first_mask(group_for(sparsifier0, "linear1.weight")->module);
  const Tensor mask1 = first_mask(group_for(sparsifier1, "linear1.weight")->module);
  EXPECT_FALSE(equal(mask0, mask1));

  sparsifier1.load_state_dict(state_dict);
  EXPECT_TRUE(states_equal(sparsifier0.state(), sparsifier1.state()));
  ASSERT_EQ(sparsifier0.groups().size(), sparsifier1.groups().size());
  for (size_t i = 0; i < sparsifier0.groups().size(); ++i) {
    const Group& mg0 = sparsifier0.groups()[i];
    const Group& mg1 = sparsifier1.groups()[i];
    for (const auto& [key, value] : mg0.config.items()) {
      ASSERT_TRUE(mg1.config.contains(key)) << key;
      EXPECT_EQ(mg1.config[key], value) << key;
    }
    ASSERT_NE(mg1.module, nullptr);
    const auto p0 = parametrizations_of(*mg0.module, "weight").at(0);
    const auto p1 = parametrizations_of(*mg1.module, "weight").at(0);
    ASSERT_TRUE(p0->has_buffer("mask"));
    ASSERT_TRUE(p1->has_buffer("mask"));
    EXPECT_TRUE(equal(p0->buffer("mask"), p1->buffer("mask")));
    EXPECT_EQ(p0->buffer("mask").dtype(), p1->buffer("mask").dtype());
  }
}

TEST(TestBaseSparsifier, test_convert) {
  ModuleMapping mapping{{"Linear", &MockSparseLinear::from_dense}};
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"test", 3}});
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  ModulePtr new_model = sparsifier.convert(model, mapping, /*inplace=*/false);
  EXPECT_NE(std::dynamic_pointer_cast<MockSparseLinear>(new_model->child("linear1")), nullptr);
  EXPECT_EQ(new_model->child("linear1")->type_name(), "MockSparseLinear");
  EXPECT_EQ(new_model->get_submodule("seq.0")->base_type_name(), "Linear");
  EXPECT_EQ(new_model->child("linear2")->type_name(), "Linear");
  // Not in place: the source model still holds its parametrized Linear.
  EXPECT_EQ(model->child("linear1"), model->linear1);
  EXPECT_EQ(model->linear1->type_name(), "ParametrizedLinear");
}

TEST(TestBaseSparsifier, test_mask_squash) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"test", 3}});
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  EXPECT_TRUE(parametrizations_of(*model->linear1, "weight").at(0)->has_buffer("mask"));
  EXPECT_TRUE(is_parametrized(*model->linear1, "weight"));
  EXPECT_FALSE(is_parametrized(*model->seq->child("0"), "weight"));
  sparsifier.squash_mask();
  EXPECT_FALSE(is_parametrized(*model->seq->child("0"), "weight"));
  EXPECT_FALSE(is_parametrized(*model->linear1, "weight"));
}

TEST(TestBaseSparsifier, test_mask_squash_with_params1) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"foo", 3}, {"bar", 2}, {"baz", 1}});
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}},
                                                     Json{{"tensor_fqn", "seq.0.weight"}}});
  sparsifier.squash_mask({}, {{"linear1", {"foo", "bar"}}, {"seq.0", {"baz"}}});
  const ModulePtr seq0 = model->seq->child("0");
  EXPECT_FALSE(is_parametrized(*seq0, "weight"));
  EXPECT_FALSE(is_parametrized(*model->linear1, "weight"));
  ASSERT_TRUE(seq0->sparse_params.is_object());
  ASSERT_TRUE(model->linear1->sparse_params.is_object());
  EXPECT_FALSE(seq0->sparse_params.contains("foo"));
  EXPECT_FALSE(seq0->sparse_params.contains("bar"));
  EXPECT_EQ(seq0->sparse_params["baz"], 1);
  EXPECT_EQ(model->linear1->sparse_params["foo"], 3);
  EXPECT_EQ(model->linear1->sparse_params["bar"], 2);
  EXPECT_FALSE(model->linear1->sparse_params.contains("baz"));
}

TEST(TestBaseSparsifier, test_mask_squash_with_params2) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"foo", 3}, {"bar", 2}, {"baz", 1}});
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}},
                                                     Json{{"tensor_fqn", "seq.0.weight"}}});
  sparsifier.squash_mask({"foo", "bar"});
  const ModulePtr seq0 = model->seq->child("0");
  EXPECT_FALSE(is_parametrized(*seq0, "weight"));
  EXPECT_FALSE(is_parametrized(*model->linear1, "weight"));
  EXPECT_EQ(seq0->sparse_params, (Json{{"foo", 3}, {"bar", 2}}));
  EXPECT_EQ(model->linear1->sparse_params, (Json{{"foo", 3}, {"bar", 2}}));
  EXPECT_FALSE(seq0->sparse_params.contains("baz"));
  EXPECT_FALSE(model->linear1->sparse_params.contains("baz"));
}

TEST(TestBaseSparsifier, test_mask_squash_with_params3) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"foo", 3}, {"bar", 2}, {"baz", 1}});
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}},
                                                     Json{{"tensor_fqn", "seq.0.weight"}}});
  sparsifier.squash_mask({"foo", "bar"}, {{"seq.0", {"baz"}}});
  const ModulePtr seq0 = model->seq->child("0");
  EXPECT_FALSE(is_parametrized(*seq0, "weight"));
  EXPECT_FALSE(is_parametrized(*model->linear1, "weight"));
  EXPECT_EQ(seq0->sparse_params, (Json{{"foo", 3}, {"bar", 2}, {"baz", 1}}));
  EXPECT_EQ(model->linear1->sparse_params, (Json{{"foo", 3}, {"bar", 2}}));
}

// ---- behaviour beyond the upstream cases -----------------------------------------------------------

TEST(BaseSparsifier, MakeConfigFromModelIsLifoDfsOfExactTypes) {
  // The verified example of spec §2.2: root{a: Seq(Lin, ReLU, Seq(Lin)), b: Lin, c: SubclassOfLinear,
  // d: Seq(Lin)} -> b.weight, d.0.weight, a.0.weight, a.2.0.weight (c skipped: not exactly Linear).
  auto root = std::make_shared<Module>("Root");
  auto a = std::make_shared<nn::Sequential>();
  a->push_back(std::make_shared<nn::Linear>(2, 2));
  a->push_back(std::make_shared<nn::ReLU>());
  a->push_back(std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{std::make_shared<nn::Linear>(2, 2)}));
  root->register_module("a", a);
  root->register_module("b", std::make_shared<nn::Linear>(2, 2));
  root->register_module("c", std::make_shared<MockSparseLinear>(2, 2));
  root->register_module("d", std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{std::make_shared<nn::Linear>(2, 2)}));
  ImplementedSparsifier sparsifier;
  std::vector<std::string> fqns;
  for (const auto& e : sparsifier.make_config_from_model(root)) fqns.push_back(e.options["tensor_fqn"]);
  EXPECT_EQ(fqns, (std::vector<std::string>{"b.weight", "d.0.weight", "a.0.weight", "a.2.0.weight"}));

  // SimpleLinear -> linear1, linear2, seq.0, seq.1, seq.2 (the root is never included).
  fqns.clear();
  for (const auto& e : sparsifier.make_config_from_model(simple_linear())) fqns.push_back(e.options["tensor_fqn"]);
  EXPECT_EQ(fqns, (std::vector<std::string>{"linear1.weight", "linear2.weight", "seq.0.weight", "seq.1.weight",
                                            "seq.2.weight"}));

  // The supported set is configurable (exact type names).
  sparsifier.supported_modules().insert("MockSparseLinear");
  fqns.clear();
  for (const auto& e : sparsifier.make_config_from_model(root)) fqns.push_back(e.options["tensor_fqn"]);
  EXPECT_EQ(fqns, (std::vector<std::string>{"b.weight", "c.weight", "d.0.weight", "a.0.weight", "a.2.0.weight"}));
}

TEST(BaseSparsifier, StateMaskIsTheBufferAndStaysAliasedThroughSteps) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier;
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  const Tensor mask = sparsifier.state_of("linear1.weight").mask;
  EXPECT_TRUE(mask.is_same(first_mask(model->linear1)));
  EXPECT_EQ(mask.dtype(), DType::f32);  // ones_like(weight)
  sparsifier.step();
  EXPECT_TRUE(mask.is_same(first_mask(model->linear1)));
  EXPECT_EQ(count_nonzero(mask), 12);
  // The parametrized weight is the original with row 0 zeroed.
  const Tensor w = model->linear1->tensor("weight");
  const Tensor original = parametrization_original(*model->linear1, "weight");
  for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(w.get({0, c}), 0.0);
  for (int64_t r = 1; r < 4; ++r)
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(w.get({r, c}), original.get({r, c}));
}

TEST(BaseSparsifier, UserMaskAndParametrizationFactoryAreUsed) {
  auto model = simple_linear();
  Tensor user_mask = Tensor::eye(4, 4, DType::bool_);
  int made = 0;
  ConfigEntry entry(Json{{"tensor_fqn", "linear1.weight"}});
  entry.mask = user_mask;
  entry.parametrization = [&](const Tensor& m) {
    ++made;
    return std::make_shared<FakeSparsity>(m);
  };
  ImplementedSparsifier sparsifier;
  sparsifier.prepare(model, std::vector<ConfigEntry>{entry});
  EXPECT_EQ(made, 1);
  EXPECT_TRUE(first_mask(model->linear1).is_same(user_mask));  // by reference, as torch
  EXPECT_TRUE(sparsifier.groups()[0].mask.is_same(user_mask));
  const Tensor w = model->linear1->tensor("weight");
  EXPECT_EQ(count_nonzero(w), 4);
  EXPECT_EQ(w.dtype(), DType::f32);
}

TEST(BaseSparsifier, EnableMaskUpdateFalseSkipsUpdateMask) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier;
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  sparsifier.enable_mask_update = false;
  sparsifier.step();
  EXPECT_EQ(count_nonzero(first_mask(model->linear1)), 16);
  EXPECT_EQ(sparsifier.step_count(), 1);
}

TEST(BaseSparsifier, SquashBakesMaskIntoTheSameTensor) {
  auto model = simple_linear();
  const Tensor weight = model->linear1->parameter("weight");
  const Tensor before = weight.clone();
  ImplementedSparsifier sparsifier;
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  sparsifier.step();
  sparsifier.squash_mask();
  EXPECT_TRUE(model->linear1->parameter("weight").is_same(weight));
  EXPECT_EQ(model->linear1->type_name(), "Linear");
  for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(weight.get({0, c}), 0.0);
  for (int64_t r = 1; r < 4; ++r)
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(weight.get({r, c}), before.get({r, c}));
  EXPECT_TRUE(model->linear1->sparse_params.is_null());  // nothing asked to keep
}

TEST(BaseSparsifier, ConvertInPlaceSwapsAndKeepsHooks) {
  auto model = simple_linear();
  int calls = 0;
  model->linear1->register_forward_hook([&](Module&, const Tensor&, const Tensor&) -> std::optional<Tensor> {
    ++calls;
    return std::nullopt;
  });
  ImplementedSparsifier sparsifier;
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  ModulePtr out = sparsifier.convert(model, {{"Linear", &MockSparseLinear::from_dense}}, /*inplace=*/true);
  EXPECT_EQ(out, model);
  EXPECT_EQ(model->child("linear1")->type_name(), "MockSparseLinear");
  EXPECT_EQ(model->child("linear1")->forward_hooks().size(), 1u);
  (*model)(Tensor::ones({1, 7}));
  EXPECT_EQ(calls, 1);
  // Groups keep pointing at the old module (as torch).
  EXPECT_EQ(sparsifier.groups()[0].module, model->linear1);
}

TEST(BaseSparsifier, ReprFollowsTorch) {
  ImplementedSparsifier empty;
  EXPECT_EQ(empty.repr(), "ImplementedSparsifier ()");
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"test", 3}});
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  const std::string r = sparsifier.repr();
  EXPECT_EQ(r.rfind("ImplementedSparsifier (\n\tGroup 0\n\t    module: ParametrizedLinear(", 0), 0u) << r;
  EXPECT_NE(r.find("\t    module_fqn: linear1\n\t    tensor_fqn: linear1.weight\n\t    tensor_name: weight\n"
                   "\t    test: 3\n)"),
            std::string::npos)
      << r;
}

/// Writes many keys into its group while running (a policy may record derived values there).
class GroupWritingSparsifier : public SparsifierCloneable<GroupWritingSparsifier> {
 public:
  std::string class_name() const override { return "GroupWritingSparsifier"; }
  std::vector<std::string> seen;

 protected:
  void update_mask(Module& module, const std::string& tensor_name, Group& group) override {
    for (int i = 0; i < 64; ++i) group.config["derived_" + std::to_string(i)] = i;
    seen.push_back(tensor_name);  // must still be valid after the group grew
    mask_of(module, tensor_name).fill_(1.0);
  }
};

TEST(BaseSparsifier, UpdateMaskMayGrowItsGroup) {
  GroupWritingSparsifier sparsifier;
  sparsifier.prepare(simple_linear(), std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  sparsifier.step();
  sparsifier.step();
  EXPECT_EQ(sparsifier.seen, (std::vector<std::string>{"weight", "weight"}));
  EXPECT_EQ(sparsifier.groups()[0].config["derived_63"], 63);
  EXPECT_EQ(sparsifier.state_dict().groups[0]["derived_5"], 5);
}

// ---- spec §0 decisions ------------------------------------------------------------------------------

TEST(BaseSparsifierDecisions, D6_PrepareTwiceIsRefused) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier;
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(model, std::nullopt), FailedPrecondition, "already prepared");
  EXPECT_EQ(sparsifier.groups().size(), 1u);
  EXPECT_EQ(parametrizations_of(*model->linear1, "weight").size(), 1u);  // no second FakeSparsity
  sparsifier.squash_mask();  // torch would fail here after a second prepare
  EXPECT_FALSE(is_parametrized(*model->linear1));
}

TEST(BaseSparsifierDecisions, D7_StateDictIsASnapshot) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier;
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  const SparsifierStateDict sd = sparsifier.state_dict();
  EXPECT_FALSE(sd.state[0].second.mask.is_same(first_mask(model->linear1)));
  EXPECT_FALSE(sd.state[0].second.mask.shares_storage(first_mask(model->linear1)));
  sparsifier.step();  // changes the live mask, not the snapshot
  EXPECT_EQ(count_nonzero(sd.state[0].second.mask), 16);
  EXPECT_EQ(count_nonzero(first_mask(model->linear1)), 12);
  // Groups omit module_fqn and tensor_name, as KEYS_NOT_IN_STATE_DICT.
  EXPECT_FALSE(sd.groups[0].contains("module_fqn"));
  EXPECT_FALSE(sd.groups[0].contains("tensor_name"));
}

TEST(BaseSparsifierDecisions, D7_LoadNeverMutatesItsArgumentAndSaveAfterLoadKeepsMasks) {
  auto model0 = simple_linear();
  ImplementedSparsifier s0;
  s0.prepare(model0, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  s0.step();
  const SparsifierStateDict sd = s0.state_dict();
  const Tensor sd_mask = sd.state[0].second.mask;
  const Tensor sd_mask_copy = sd_mask.clone();

  auto model1 = simple_linear();
  ImplementedSparsifier s1;
  s1.prepare(model1, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  const Tensor live = first_mask(model1->linear1);
  s1.load_state_dict(sd);
  // The argument still holds its mask, unchanged and not aliased by the loaded model.
  ASSERT_TRUE(sd.state[0].second.mask.defined());
  EXPECT_TRUE(sd.state[0].second.mask.is_same(sd_mask));
  EXPECT_TRUE(bitwise_equal(sd_mask, sd_mask_copy));
  EXPECT_FALSE(first_mask(model1->linear1).shares_storage(sd_mask));
  // The buffer keeps its identity and the state stays aliased to it.
  EXPECT_TRUE(first_mask(model1->linear1).is_same(live));
  EXPECT_TRUE(s1.state_of("linear1.weight").mask.is_same(live));
  EXPECT_TRUE(equal(live, sd_mask));
  // Saving after loading keeps the masks (torch's second state_dict has none).
  const SparsifierStateDict again = s1.state_dict();
  ASSERT_EQ(again.state.size(), 1u);
  ASSERT_TRUE(again.state[0].second.mask.defined());
  EXPECT_TRUE(equal(again.state[0].second.mask, sd_mask));
  // A step on the loaded sparsifier does not reach the argument.
  first_mask(model1->linear1).fill_(0.0);
  EXPECT_TRUE(bitwise_equal(sd_mask, sd_mask_copy));
}

TEST(BaseSparsifierDecisions, D7_NonStrictLoadSkipsAndReportsMissingTensors) {
  auto model0 = simple_linear();
  ImplementedSparsifier s0;
  s0.prepare(model0, std::nullopt);
  SparsifierStateDict sd = s0.state_dict();
  sd.state.emplace_back("nope.weight", TensorState{Tensor::ones({2, 2}), Json::object()});
  sd.groups.push_back(Json{{"tensor_fqn", "nope.weight"}});

  auto model1 = simple_linear();
  ImplementedSparsifier strict;
  strict.prepare(model1, std::nullopt);
  const Tensor before = first_mask(model1->linear1).clone();
  EXPECT_SPARSITY_ERROR(strict.load_state_dict(sd), NotFound, "nope.weight");
  EXPECT_EQ(strict.groups().size(), 5u);  // untouched by the failed load
  EXPECT_TRUE(bitwise_equal(first_mask(model1->linear1), before));

  auto model2 = simple_linear();
  ImplementedSparsifier lenient;
  lenient.prepare(model2, std::nullopt);
  const auto skipped = lenient.load_state_dict(sd, /*strict=*/false);
  EXPECT_EQ(skipped, std::vector<std::string>{"nope.weight"});
  EXPECT_EQ(lenient.groups().size(), 5u);
  EXPECT_EQ(lenient.state().size(), 5u);
  lenient.step();  // every remaining group is bound
}

TEST(BaseSparsifierDecisions, D8_CloneCanStepOnItsOwnModel) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"test", 3}});
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}},
                                                     Json{{"tensor_fqn", "seq.1.weight"}}});
  sparsifier.enable_mask_update = true;
  std::unique_ptr<BaseSparsifier> copy = sparsifier.clone();
  ASSERT_NE(copy->model(), nullptr);
  EXPECT_NE(copy->model(), sparsifier.model());
  EXPECT_EQ(copy->class_name(), "ImplementedSparsifier");
  EXPECT_EQ(copy->defaults(), sparsifier.defaults());
  EXPECT_TRUE(copy->enable_mask_update);
  ASSERT_EQ(copy->groups().size(), 2u);
  const ModulePtr copy_linear1 = copy->model()->child("linear1");
  EXPECT_EQ(copy->groups()[0].module, copy_linear1);
  EXPECT_EQ(copy->groups()[1].module, copy->model()->get_submodule("seq.1"));
  EXPECT_TRUE(copy->state_of("linear1.weight").mask.is_same(first_mask(copy_linear1)));
  copy->step();
  EXPECT_EQ(count_nonzero(first_mask(copy_linear1)), 12);
  EXPECT_EQ(count_nonzero(first_mask(model->linear1)), 16);  // the source is untouched
  EXPECT_EQ(copy->state_of("linear1.weight").values["step_count"], 2);
  EXPECT_FALSE(sparsifier.state_of("linear1.weight").values.contains("step_count"));
  copy->squash_mask();
  EXPECT_FALSE(is_parametrized(*copy_linear1));
  EXPECT_TRUE(is_parametrized(*model->linear1));
}

TEST(BaseSparsifierDecisions, D10_MasksOptionallyInTheModelStateDict) {
  auto has_key = [](const StateDict& sd, const std::string& key) {
    for (const auto& [k, t] : sd)
      if (k == key) return true;
    return false;
  };
  auto model = simple_linear();
  ImplementedSparsifier plain;
  plain.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  EXPECT_TRUE(has_key(model->state_dict(), "linear1.parametrizations.weight.original"));
  EXPECT_FALSE(has_key(model->state_dict(), "linear1.parametrizations.weight.0.mask"));  // torch

  auto saved_model = simple_linear(/*seed*/);
  ImplementedSparsifier with_masks;
  with_masks.set_masks_in_model_state_dict(true);
  with_masks.prepare(saved_model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  with_masks.step();
  const StateDict checkpoint = saved_model->state_dict();
  EXPECT_TRUE(has_key(checkpoint, "linear1.parametrizations.weight.0.mask"));

  // A freshly prepared model restores the masks from the checkpoint, strictly.
  auto restored = std::make_shared<SimpleLinear>(/*seed=*/100);
  ImplementedSparsifier fresh;
  fresh.set_masks_in_model_state_dict(true);
  fresh.prepare(restored, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  EXPECT_EQ(count_nonzero(first_mask(restored->linear1)), 16);
  restored->load_state_dict(checkpoint);
  EXPECT_EQ(count_nonzero(first_mask(restored->linear1)), 12);
  EXPECT_TRUE(equal(restored->linear1->tensor("weight"), saved_model->linear1->tensor("weight")));

  // Switching it off afterwards hides the masks again.
  with_masks.set_masks_in_model_state_dict(false);
  EXPECT_FALSE(has_key(saved_model->state_dict(), "linear1.parametrizations.weight.0.mask"));
}

// ---- misuse: error type and message -------------------------------------------------------------------

TEST(BaseSparsifierErrors, BadFqnIsNotFoundAndLeavesTheModelUntouched) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier;
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}},
                                                                          Json{{"tensor_fqn", "linear9.weight"}}}),
                        NotFound, "linear9.weight");
  EXPECT_FALSE(is_parametrized(*model->linear1));
  EXPECT_TRUE(sparsifier.groups().empty());
  EXPECT_TRUE(sparsifier.state().empty());
  EXPECT_EQ(sparsifier.model(), nullptr);
  // After the failure the sparsifier can still be prepared.
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  EXPECT_TRUE(is_parametrized(*model->linear1, "weight"));
}

TEST(BaseSparsifierErrors, MissingTensorInAnExistingModule) {
  ImplementedSparsifier sparsifier;
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(simple_linear(), std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.bias"}}}),
                        NotFound, "linear1.bias", "'bias'");
}

TEST(BaseSparsifierErrors, EntryWithoutTensorFqn) {
  ImplementedSparsifier sparsifier;
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(simple_linear(), std::vector<ConfigEntry>{Json{{"test", 1}}}),
                        InvalidArgument, "tensor_fqn", "config entry 0");
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(simple_linear(), std::vector<ConfigEntry>{Json{{"tensor_fqn", 3}}}),
                        InvalidArgument, "tensor_fqn", "string");
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(simple_linear(), std::vector<ConfigEntry>{Json::array({1, 2})}),
                        InvalidArgument, "config entry 0", "JSON object");
}

TEST(BaseSparsifierErrors, KeysDisagreeingWithTensorFqn) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier;
  EXPECT_SPARSITY_ERROR(
      sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}, {"module_fqn", "linear2"}}}),
      InvalidArgument, "module_fqn", "linear1.weight", "agree");
  EXPECT_SPARSITY_ERROR(
      sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}, {"tensor_name", "bias"}}}),
      InvalidArgument, "tensor_name", "agree");
  ConfigEntry wrong_module(Json{{"tensor_fqn", "linear1.weight"}});
  wrong_module.module = model->linear2;
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(model, std::vector<ConfigEntry>{wrong_module}), InvalidArgument,
                        "`module`", "linear1.weight");
  // Agreeing keys are fine.
  ConfigEntry right(Json{{"tensor_fqn", "linear1.weight"}, {"module_fqn", "linear1"}, {"tensor_name", "weight"}});
  right.module = model->linear1;
  sparsifier.prepare(model, std::vector<ConfigEntry>{right});
  EXPECT_EQ(sparsifier.groups().size(), 1u);
}

TEST(BaseSparsifierErrors, DuplicateTensorInConfig) {
  ImplementedSparsifier sparsifier;
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(simple_linear(), std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}},
                                                                                    Json{{"tensor_fqn", "linear1.weight"}}}),
                        InvalidArgument, "linear1.weight", "config entry 1");
}

TEST(BaseSparsifierErrors, WrongShapeMask) {
  auto model = simple_linear();
  ConfigEntry entry(Json{{"tensor_fqn", "linear1.weight"}});
  entry.mask = Tensor::ones({4, 5});
  ImplementedSparsifier sparsifier;
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(model, std::vector<ConfigEntry>{entry}), InvalidArgument, "linear1.weight",
                        "[4, 5]", "[4, 4]");
  EXPECT_FALSE(is_parametrized(*model->linear1));
}

TEST(BaseSparsifierErrors, NullModelAndBadDefaults) {
  ImplementedSparsifier sparsifier;
  EXPECT_SPARSITY_ERROR(sparsifier.prepare(nullptr, std::nullopt), InvalidArgument, "null");
  EXPECT_SPARSITY_ERROR(ImplementedSparsifier(Json::array({1})), InvalidArgument, "defaults");
}

TEST(BaseSparsifierErrors, StepAndSquashAfterSquash) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier;
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  sparsifier.squash_mask();
  EXPECT_SPARSITY_ERROR(sparsifier.step(), FailedPrecondition, "linear1.weight");
  EXPECT_SPARSITY_ERROR(sparsifier.squash_mask(), FailedPrecondition, "linear1.weight");
}

TEST(BaseSparsifierErrors, SquashWithUnknownKeyLeavesEverythingParametrized) {
  auto model = simple_linear();
  ImplementedSparsifier sparsifier(Json{{"foo", 1}});
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}},
                                                     Json{{"tensor_fqn", "seq.0.weight"}}});
  EXPECT_SPARSITY_ERROR(sparsifier.squash_mask({"foo"}, {{"seq.0", {"bar"}}}), NotFound, "'bar'", "seq.0.weight");
  EXPECT_TRUE(is_parametrized(*model->linear1, "weight"));
  EXPECT_TRUE(is_parametrized(*model->seq->child("0"), "weight"));
}

TEST(BaseSparsifierErrors, LoadStateDictBeforePrepareAndWrongMaskShape) {
  ImplementedSparsifier unprepared;
  EXPECT_SPARSITY_ERROR(unprepared.load_state_dict({}), FailedPrecondition, "prepare");

  auto model = simple_linear();
  ImplementedSparsifier sparsifier;
  sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}});
  SparsifierStateDict sd;
  sd.state.emplace_back("linear1.weight", TensorState{Tensor::ones({3, 3}), Json::object()});
  EXPECT_SPARSITY_ERROR(sparsifier.load_state_dict(sd), InvalidArgument, "linear1.weight", "[3, 3]");
  sd.state.clear();
  sd.groups.push_back(Json{{"test", 1}});
  EXPECT_SPARSITY_ERROR(sparsifier.load_state_dict(sd), InvalidArgument, "tensor_fqn");
}

TEST(BaseSparsifierErrors, ConvertWithEmptyMappingAndMaskOfUnparametrized) {
  ImplementedSparsifier sparsifier;
  EXPECT_SPARSITY_ERROR(sparsifier.convert(simple_linear(), {}), InvalidArgument, "mapping");
  struct Probe : ImplementedSparsifier {
    static Tensor probe(const Module& m) { return mask_of(m, "weight"); }
  };
  EXPECT_SPARSITY_ERROR(Probe::probe(nn::Linear(2, 2)), FailedPrecondition, "'weight'", "not parametrized");
}

}  // namespace
}  // namespace sparsity

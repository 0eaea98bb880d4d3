// Tests of BaseScheduler, LambdaSL and CubicSL: torch's test_scheduler.py plus formula, clamp,
// validation and state_dict round trips.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "sparsity/nn/containers.hpp"
#include "sparsity/nn/linear.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"
#include "sparsity/sparsifier/nearly_diagonal_sparsifier.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"
#include "test_util.hpp"

namespace sparsity {
namespace {

using nn::Linear;
using nn::LinearOptions;
using nn::Sequential;
using testing::simple_linear;

// torch's ImplementedScheduler: after epoch 0 every level is halved.
class ImplementedScheduler : public BaseScheduler {
 public:
  explicit ImplementedScheduler(BaseSparsifier& sp) : BaseScheduler(sp) { initial_step(); }

 protected:
  std::vector<double> get_sl() override {
    if (last_epoch() > 0) {
      std::vector<double> out;
      for (const auto& g : sparsifier().groups()) out.push_back(g.config.at("sparsity_level").get<double>() * 0.5);
      return out;
    }
    return base_sl();
  }
};

// Captures scheduler warnings for the lifetime of the object.
class WarningCapture {
 public:
  WarningCapture() {
    previous_ = BaseScheduler::set_warning_handler([this](const std::string& m) { messages.push_back(m); });
  }
  ~WarningCapture() { BaseScheduler::set_warning_handler(previous_); }
  std::vector<std::string> messages;

 private:
  BaseScheduler::WarningHandler previous_;
};

struct Fixture {
  ModulePtr model = simple_linear();
  WeightNormSparsifier sparsifier{0.5, {1, 4}};
  Fixture() { sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}}}); }
  double level(size_t i = 0) const { return sparsifier.groups()[i].config.at("sparsity_level").get<double>(); }
};

TEST(Scheduler, Constructor) {
  Fixture f;
  ImplementedScheduler s(f.sparsifier);
  EXPECT_EQ(&s.sparsifier(), &f.sparsifier);
  EXPECT_EQ(s.step_count(), 1);
  EXPECT_EQ(s.last_epoch(), 0);
  EXPECT_EQ(s.base_sl(), std::vector<double>{0.5});
}

TEST(Scheduler, OrderOfSteps) {
  Fixture f;
  ImplementedScheduler s(f.sparsifier);
  {
    WarningCapture w;
    s.step();  // before any sparsifier.step()
    ASSERT_EQ(w.messages.size(), 1u);
    EXPECT_NE(w.messages[0].find("before `sparsifier.step()`"), std::string::npos) << w.messages[0];
  }
  Fixture g;
  ImplementedScheduler s2(g.sparsifier);
  WarningCapture w;
  g.sparsifier.step();
  s2.step();
  EXPECT_TRUE(w.messages.empty());
}

TEST(Scheduler, Step) {
  Fixture f;
  EXPECT_EQ(f.level(), 0.5);
  ImplementedScheduler s(f.sparsifier);
  EXPECT_EQ(f.level(), 0.5);
  f.sparsifier.step();
  s.step();
  EXPECT_EQ(f.level(), 0.25);
  EXPECT_EQ(s.get_last_sl(), std::vector<double>{0.25});
}

TEST(Scheduler, StepReenablesMaskUpdates) {
  Fixture f;
  ImplementedScheduler s(f.sparsifier);
  f.sparsifier.enable_mask_update = false;
  f.sparsifier.step();
  s.step();
  EXPECT_TRUE(f.sparsifier.enable_mask_update);
}

TEST(Scheduler, GroupWithoutSparsityLevelNamesTheTensor) {
  auto model = simple_linear();
  NearlyDiagonalSparsifier sp(1);
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear2.weight"}}});
  try {
    ImplementedScheduler s(sp);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("linear2.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sparsity_level"), std::string::npos) << e.what();
  }
}

TEST(Scheduler, StateDictRoundTrip) {
  Fixture f;
  ImplementedScheduler s(f.sparsifier);
  f.sparsifier.step();
  s.step();
  const Json sd = s.state_dict();
  EXPECT_EQ(sd.at("last_epoch"), 1);
  EXPECT_EQ(sd.at("_step_count"), 2);
  EXPECT_EQ(sd.at("base_sl"), Json::array({0.5}));
  EXPECT_EQ(sd.at("_last_sl"), Json::array({0.25}));
  Fixture g;
  ImplementedScheduler t(g.sparsifier);
  t.load_state_dict(sd);
  EXPECT_EQ(t.last_epoch(), 1);
  EXPECT_EQ(t.step_count(), 2);
  EXPECT_EQ(t.get_last_sl(), std::vector<double>{0.25});
  EXPECT_THROW(t.load_state_dict(Json{{"last_epoch", "one"}}), Error);
  EXPECT_EQ(t.last_epoch(), 1);  // a rejected state changes nothing
}

TEST(Scheduler, Repr) {
  Fixture f;
  ImplementedScheduler s(f.sparsifier);
  const std::string r = s.repr();
  EXPECT_EQ(r.rfind("BaseScheduler (\nSparsifier WeightNormSparsifier (", 0), 0u) << r;
  EXPECT_NE(r.find("\n    base_sl: [0.5]\n)"), std::string::npos) << r;
}

TEST(Scheduler, VerbosePrintsEveryGroupLevel) {
  Fixture f;
  ::testing::internal::CaptureStdout();
  LambdaSL s(f.sparsifier, [](int epoch) { return 1.0 + epoch; }, -1, /*verbose=*/true);
  f.sparsifier.step();
  s.step();
  EXPECT_EQ(::testing::internal::GetCapturedStdout(),
            "Adjusting sparsity level of group 0 to 5.0000e-01.\n"
            "Adjusting sparsity level of group 0 to 1.0000e+00.\n");
}

TEST(LambdaSL, Step) {
  Fixture f;
  LambdaSL s(f.sparsifier, [](int epoch) { return 10.0 * epoch; });
  EXPECT_EQ(f.level(), 0.0);
  f.sparsifier.step();
  s.step();
  EXPECT_EQ(f.level(), 5.0);  // not clamped
}

TEST(LambdaSL, OneLambdaPerGroup) {
  auto model = simple_linear();
  WeightNormSparsifier sp(0.5, {1, 4});
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "linear1.weight"}},
                                             Json{{"tensor_fqn", "linear2.weight"}, {"sparsity_level", 0.8}}});
  LambdaSL s(sp, std::vector<LambdaSL::Lambda>{[](int e) { return 1.0 + e; }, [](int) { return 0.5; }});
  sp.step();
  s.step();
  EXPECT_EQ(s.get_last_sl(), (std::vector<double>{1.0, 0.4}));
  EXPECT_THROW(LambdaSL(sp, std::vector<LambdaSL::Lambda>{[](int) { return 1.0; }}), Error);
}

// torch's TestCubicScheduler model: Sequential(Linear(13,17), Dropout, Linear(17,3)); groups "0.weight"
// at 0.8 and "2.weight" at 0.4.
struct CubicFixture {
  ModulePtr model;
  WeightNormSparsifier sparsifier;
  CubicFixture() {
    auto seq = std::make_shared<Sequential>();
    seq->push_back(std::make_shared<Linear>(LinearOptions(13, 17).seed(1)));
    seq->push_back(std::make_shared<nn::Identity>());  // stands for Dropout (no parameters)
    seq->push_back(std::make_shared<Linear>(LinearOptions(17, 3).seed(2)));
    model = seq;
    sparsifier.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "0.weight"}, {"sparsity_level", 0.8}},
                                                       Json{{"tensor_fqn", "2.weight"}, {"sparsity_level", 0.4}}});
  }
  std::vector<double> levels() const {
    std::vector<double> out;
    for (const auto& g : sparsifier.groups()) out.push_back(g.config.at("sparsity_level").get<double>());
    return out;
  }
};

TEST(CubicSL, Constructor) {
  {
    CubicFixture f;
    CubicSL s(f.sparsifier, 0.1, 3, 10, 100, /*initially_zero=*/true);
    EXPECT_EQ(s.step_count(), 1);
    EXPECT_EQ(s.base_sl(), (std::vector<double>{0.8, 0.4}));
    EXPECT_EQ(f.levels(), (std::vector<double>{0.0, 0.0}));
  }
  CubicFixture f;
  CubicSL s(f.sparsifier, 0.1, 3, 10, 100, /*initially_zero=*/false);
  EXPECT_EQ(f.levels(), (std::vector<double>{0.1, 0.1}));
}

TEST(CubicSL, Step) {
  CubicFixture f;
  CubicSL s(f.sparsifier, 0.1, 3, /*delta_t=*/2, /*total_t=*/5, /*initially_zero=*/true);
  f.sparsifier.step();
  s.step();  // t = 1
  f.sparsifier.step();
  s.step();  // t = 2
  EXPECT_EQ(f.levels(), (std::vector<double>{0.0, 0.0}));
  EXPECT_EQ(s.step_count(), 3);
  f.sparsifier.step();
  s.step();  // t = 3 = t0: the clamp gives s_0 exactly (raw value 0.0999...98)
  EXPECT_EQ(f.levels(), (std::vector<double>{0.1, 0.1}));
  f.sparsifier.step();
  s.step();  // t = 4: s_f + (s_0 - s_f) * 0.9^3
  EXPECT_NEAR(f.levels()[0], 0.8 - 0.7 * 0.729, 1e-12);  // 0.2897
  EXPECT_NEAR(f.levels()[1], 0.4 - 0.3 * 0.729, 1e-12);  // 0.1813
  for (int i = 0; i < 9; ++i) {
    f.sparsifier.step();
    s.step();
  }
  EXPECT_EQ(f.levels(), (std::vector<double>{0.8, 0.4}));  // t = 13 = t0 + dt * n: exactly s_f
}

TEST(CubicSL, FormulaAndClamp) {
  // Before t0: s_0, or 0 when initially_zero.
  EXPECT_EQ(CubicSL::sparsity_compute_fn(0.2, 0.9, 1, 5, 1, 10, false), 0.2);
  EXPECT_EQ(CubicSL::sparsity_compute_fn(0.2, 0.9, 1, 5, 1, 10, true), 0.0);
  // Midway: t - t0 = 5 of dt * n = 10 -> 0.9 - 0.7 * 0.125.
  EXPECT_NEAR(CubicSL::sparsity_compute_fn(0.2, 0.9, 10, 5, 2, 5, false), 0.9 - 0.7 * 0.125, 1e-15);
  // Past the ramp: s_f.
  EXPECT_EQ(CubicSL::sparsity_compute_fn(0.2, 0.9, 100, 5, 2, 5, false), 0.9);
  // s_0 > s_f: stuck at s_0.
  EXPECT_EQ(CubicSL::sparsity_compute_fn(0.9, 0.2, 7, 5, 2, 5, false), 0.9);
  EXPECT_THROW(CubicSL::sparsity_compute_fn(0.1, 0.5, 1, 0, 0, 10, false), Error);
}

TEST(CubicSL, PerGroupOptionsAndStateDict) {
  CubicFixture f;
  CubicSL::Options o;
  o.init_sl = {0.1, 0.2};
  o.init_t = {0};
  o.delta_t = {1};
  o.total_t = {4, 2};
  CubicSL s(f.sparsifier, o);
  EXPECT_EQ(f.levels(), (std::vector<double>{0.1, 0.2}));
  f.sparsifier.step();
  s.step();  // t = 1: group 0 at 1/4 of its ramp, group 1 at 1/2
  EXPECT_NEAR(f.levels()[0], 0.8 - 0.7 * std::pow(0.75, 3), 1e-15);
  EXPECT_NEAR(f.levels()[1], 0.4 - 0.2 * std::pow(0.5, 3), 1e-15);
  const Json sd = s.state_dict();
  EXPECT_EQ(sd.at("total_t"), Json::array({4, 2}));
  EXPECT_EQ(sd.at("last_epoch"), 1);

  CubicFixture g;
  CubicSL t(g.sparsifier);
  t.load_state_dict(sd);
  EXPECT_EQ(t.last_epoch(), 1);
  g.sparsifier.step();
  t.step();
  f.sparsifier.step();
  s.step();
  EXPECT_EQ(g.levels(), f.levels());

  CubicSL::Options bad;
  bad.total_t = {1, 2, 3};
  EXPECT_THROW(CubicSL(f.sparsifier, bad), Error);
  EXPECT_THROW(t.load_state_dict(Json{{"init_t", {1, 2, 3}}}), Error);
}

}  // namespace
}  // namespace sparsity

namespace sparsity {
namespace {

// t - t0 of two ints overflows an int: torch's unbounded integers give the final level.
TEST(CubicScheduler, ExtremeInitTDoesNotOverflow) {
  EXPECT_DOUBLE_EQ(CubicSL::sparsity_compute_fn(0.0, 0.5, 0, INT_MIN, 1, 1, false), 0.5);
  EXPECT_DOUBLE_EQ(CubicSL::sparsity_compute_fn(0.0, 0.5, INT_MAX, INT_MIN, 1, 1, false), 0.5);
  EXPECT_DOUBLE_EQ(CubicSL::sparsity_compute_fn(0.1, 0.5, INT_MIN, INT_MAX, 1, 1, false), 0.1);
}

TEST(Scheduler, EpochCountsOutsideIntAreRefused) {
  auto model = std::make_shared<nn::Linear>(nn::LinearOptions(4, 4).bias(false));
  WeightNormSparsifier sp(0.5, {1, 1});
  sp.prepare(model, std::vector<ConfigEntry>{Json{{"tensor_fqn", "weight"}}});
  CubicSL sched(sp);
  Json st = sched.state_dict();
  st["last_epoch"] = int64_t{1} << 40;
  EXPECT_SPARSITY_ERROR(sched.load_state_dict(st), InvalidArgument, "last_epoch", "must be an integer in");
  st["last_epoch"] = INT_MAX;
  sched.load_state_dict(st);
  sp.step();
  EXPECT_SPARSITY_ERROR(sched.step(), OutOfRange, "epoch count would pass");
}

}  // namespace
}  // namespace sparsity

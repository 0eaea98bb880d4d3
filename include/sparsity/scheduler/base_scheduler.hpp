// Sparsity-level schedulers: BaseScheduler, LambdaSL and CubicSL (torch.ao.pruning.scheduler).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "sparsity/sparsifier/base_sparsifier.hpp"

namespace sparsity {

/// Sets every group's "sparsity_level" from get_sl() at each step(). The constructor runs one step
/// (so last_epoch() == last_epoch + 1 and step_count() == 1 afterwards). The first user step() before
/// any sparsifier step() emits a warning through the warning handler (default: stderr).
///
///   sparsity::CubicSL sched(sparsifier, /*init_sl=*/0.0, /*init_t=*/0, /*delta_t=*/10, /*total_t=*/100);
///   for (int epoch = 0; epoch < 20; ++epoch) { sparsifier.step(); sched.step(); }
class BaseScheduler {
 public:
  BaseScheduler(BaseSparsifier& sparsifier, int last_epoch = -1, bool verbose = false);
  virtual ~BaseScheduler() = default;

  void step();
  /// Levels computed at the last step.
  const std::vector<double>& get_last_sl() const noexcept { return last_sl_; }
  const std::vector<double>& base_sl() const noexcept { return base_sl_; }
  int last_epoch() const noexcept { return last_epoch_; }
  int step_count() const noexcept { return step_count_; }
  BaseSparsifier& sparsifier() const noexcept { return sparsifier_; }

  /// Serializable state: {"base_sl", "last_epoch", "_step_count", "_last_sl", "verbose", ...subclass}.
  virtual Json state_dict() const;
  virtual void load_state_dict(const Json& state);
  std::string repr() const;
  virtual std::string class_name() const { return "BaseScheduler"; }

  using WarningHandler = std::function<void(const std::string&)>;
  /// Where warnings go (tests capture them); returns the previous handler.
  static WarningHandler set_warning_handler(WarningHandler handler);

 protected:
  /// Levels for the current last_epoch(), one per group.
  virtual std::vector<double> get_sl() = 0;
  /// Must be called by the most-derived constructor once its own fields are set (torch's base ctor
  /// runs the first step; here the subclass finishes construction first).
  void initial_step();
  static void warn(const std::string& message);

  bool in_step_ = false;

 private:
  BaseSparsifier& sparsifier_;
  std::vector<double> base_sl_;
  std::vector<double> last_sl_;
  int last_epoch_;
  int step_count_ = 0;
  int sparsifier_steps_at_start_ = 0;  ///< sparsifier.step_count() when the scheduler was built
  bool verbose_;
};

/// sl_i = base_sl_i * lambda_i(last_epoch) (not clamped).
class LambdaSL : public BaseScheduler {
 public:
  using Lambda = std::function<double(int)>;
  /// One lambda for every group, or one per group (InvalidArgument when the count differs).
  LambdaSL(BaseSparsifier& sparsifier, std::vector<Lambda> sl_lambdas, int last_epoch = -1, bool verbose = false);
  LambdaSL(BaseSparsifier& sparsifier, Lambda sl_lambda, int last_epoch = -1, bool verbose = false);
  std::string class_name() const override { return "LambdaSL"; }

 protected:
  std::vector<double> get_sl() override;

 private:
  std::vector<Lambda> lambdas_;
};

/// Zhu & Gupta cubic ramp: s = s_f + (s_0 - s_f) (1 - (t - t0) / (dt n))^3 clamped to
/// [s_0, s_f], with s = 0 before t0 when initially_zero. Scalars apply to every group; vectors give one
/// value per group.
class CubicSL : public BaseScheduler {
 public:
  struct Options {
    std::vector<double> init_sl{0.0};
    std::vector<int> init_t{0};
    std::vector<int> delta_t{10};
    std::vector<int> total_t{100};
    std::vector<bool> initially_zero{false};
  };
  CubicSL(BaseSparsifier& sparsifier, double init_sl = 0.0, int init_t = 0, int delta_t = 10, int total_t = 100,
          bool initially_zero = false, int last_epoch = -1, bool verbose = false);
  CubicSL(BaseSparsifier& sparsifier, Options options, int last_epoch = -1, bool verbose = false);
  std::string class_name() const override { return "CubicSL"; }
  Json state_dict() const override;
  void load_state_dict(const Json& state) override;

  /// The formula itself; InvalidArgument when delta_t * total_t == 0.
  static double sparsity_compute_fn(double s_0, double s_f, int t, int t_0, int dt, int n, bool initially_zero);

 protected:
  std::vector<double> get_sl() override;

 private:
  Options options_;
};

}  // namespace sparsity

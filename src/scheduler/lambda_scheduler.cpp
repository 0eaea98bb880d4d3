// LambdaSL: sparsity level = base level x a user function of the epoch.
#include "base/text.hpp"
#include "sparsity/scheduler/base_scheduler.hpp"

namespace sparsity {

LambdaSL::LambdaSL(BaseSparsifier& sparsifier, std::vector<Lambda> sl_lambdas, int last_epoch, bool verbose)
    : BaseScheduler(sparsifier, last_epoch, verbose), lambdas_(std::move(sl_lambdas)) {
  SPARSITY_CHECK(lambdas_.size() == sparsifier.groups().size(), InvalidArgument, "LambdaSL: expected ",
                 sparsifier.groups().size(), " sl_lambdas (one per group), but got ", lambdas_.size());
  for (size_t i = 0; i < lambdas_.size(); ++i) {
    SPARSITY_CHECK(
        static_cast<bool>(lambdas_[i]), InvalidArgument, "LambdaSL: sl_lambda ", i, " (tensor_fqn ",
        ::sparsity::detail::quote(sparsifier.groups()[i].config.value("tensor_fqn", std::string())),
        ") is empty");
  }
  initial_step();
}

LambdaSL::LambdaSL(BaseSparsifier& sparsifier, Lambda sl_lambda, int last_epoch, bool verbose)
    : LambdaSL(sparsifier, std::vector<Lambda>(sparsifier.groups().size(), sl_lambda), last_epoch, verbose) {
  SPARSITY_CHECK(static_cast<bool>(sl_lambda), InvalidArgument, "LambdaSL: sl_lambda is empty");
}

std::vector<double> LambdaSL::get_sl() {
  std::vector<double> out;
  out.reserve(lambdas_.size());
  for (size_t i = 0; i < lambdas_.size(); ++i) out.push_back(base_sl()[i] * lambdas_[i](last_epoch()));
  return out;
}

}  // namespace sparsity

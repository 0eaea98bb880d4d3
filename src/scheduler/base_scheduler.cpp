// BaseScheduler: per-step sparsity levels written into the sparsifier's groups, with torch's warnings.
#include "sparsity/scheduler/base_scheduler.hpp"

#include <climits>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>
#include <utility>

#include "base/text.hpp"

namespace sparsity {
namespace {

std::mutex& handler_mutex() {
  static std::mutex m;
  return m;
}

BaseScheduler::WarningHandler& handler_slot() {
  static BaseScheduler::WarningHandler handler;
  return handler;
}

// Python's str() of a float list, e.g. "[0.8, 0.4]" (shortest round-trip digits, as repr(float)).
std::string python_list(const std::vector<double>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ", ";
    out += Json(values[i]).dump();
  }
  return out + "]";
}

double level_of(const Group& group, size_t index) {
  const auto it = group.config.find("sparsity_level");
  SPARSITY_CHECK(it != group.config.end(), InvalidArgument, "scheduler: group ", index, " (tensor_fqn ",
                 ::sparsity::detail::quote(group.config.value("tensor_fqn", std::string())),
                 ") has no 'sparsity_level'");
  SPARSITY_CHECK(it->is_number(), InvalidArgument, "scheduler: 'sparsity_level' of group ", index,
                 " (tensor_fqn ", ::sparsity::detail::quote(group.config.value("tensor_fqn", std::string())),
                 ") is not a number: ", it->dump());
  return it->get<double>();
}

}  // namespace

BaseScheduler::BaseScheduler(BaseSparsifier& sparsifier, int last_epoch, bool verbose)
    : sparsifier_(sparsifier), last_epoch_(last_epoch), verbose_(verbose) {
  const auto& groups = sparsifier_.groups();
  base_sl_.reserve(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) base_sl_.push_back(level_of(groups[i], i));
  sparsifier_steps_at_start_ = sparsifier_.step_count();
}

BaseScheduler::WarningHandler BaseScheduler::set_warning_handler(WarningHandler handler) {
  std::lock_guard<std::mutex> lock(handler_mutex());
  WarningHandler previous = std::move(handler_slot());
  handler_slot() = std::move(handler);
  return previous;
}

void BaseScheduler::warn(const std::string& message) {
  WarningHandler handler;
  {
    std::lock_guard<std::mutex> lock(handler_mutex());
    handler = handler_slot();
  }
  if (handler) {
    handler(message);
  } else {
    std::cerr << "warning: " << message << "\n";
  }
}

void BaseScheduler::initial_step() { step(); }

void BaseScheduler::step() {
  if (step_count_ == 1 && sparsifier_.step_count() - sparsifier_steps_at_start_ < 1) {
    warn("Detected call of `scheduler.step()` before `sparsifier.step()`. You have to make sure you run the "
         "sparsifier.step() BEFORE any calls to the scheduler.step().");
  }
  SPARSITY_CHECK(last_epoch_ < INT_MAX && step_count_ < INT_MAX, OutOfRange,
                 "scheduler step: the epoch count would pass ", INT_MAX);
  ++step_count_;
  in_step_ = true;
  ++last_epoch_;
  std::vector<double> values;
  try {
    values = get_sl();
  } catch (...) {
    in_step_ = false;
    throw;
  }
  in_step_ = false;
  auto& groups = sparsifier_.groups();
  // zip(groups, values): the shorter one decides, as torch.
  const size_t n = std::min(groups.size(), values.size());
  for (size_t i = 0; i < n; ++i) {
    groups[i].config["sparsity_level"] = values[i];
    if (verbose_) {
      char buf[96];
      std::snprintf(buf, sizeof(buf), "Adjusting sparsity level of group %zu to %.4e.", i, values[i]);
      std::cout << buf << "\n";
    }
  }
  last_sl_.clear();
  for (size_t i = 0; i < groups.size(); ++i) last_sl_.push_back(level_of(groups[i], i));
  sparsifier_.enable_mask_update = true;
}

Json BaseScheduler::state_dict() const {
  Json j = Json::object();
  j["_get_sl_called_within_step"] = in_step_;
  j["_last_sl"] = last_sl_;
  j["_step_count"] = step_count_;
  j["base_sl"] = base_sl_;
  j["last_epoch"] = last_epoch_;
  j["verbose"] = verbose_;
  return j;
}

void BaseScheduler::load_state_dict(const Json& state) {
  SPARSITY_CHECK(state.is_object(), InvalidArgument, "scheduler state_dict must be a JSON object, got ",
                 state.type_name());
  auto number_list = [](const Json& v, const char* key) {
    SPARSITY_CHECK(v.is_array(), InvalidArgument, "scheduler state_dict key ", ::sparsity::detail::quote(key),
                   " must be a list of numbers");
    std::vector<double> out;
    for (const auto& x : v) {
      SPARSITY_CHECK(x.is_number(), InvalidArgument, "scheduler state_dict key ",
                     ::sparsity::detail::quote(key), " holds a non-number: ", x.dump());
      out.push_back(x.get<double>());
    }
    return out;
  };
  auto integer = [](const Json& v, const char* key) {
    const bool in_range =
        v.is_number_integer() &&
        (v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t{INT_MAX}
                                : v.get<int64_t>() >= INT_MIN && v.get<int64_t>() <= INT_MAX);
    SPARSITY_CHECK(in_range, InvalidArgument, "scheduler state_dict key ", ::sparsity::detail::quote(key),
                   " must be an integer in [", INT_MIN, ", ", INT_MAX, "], got ", v.dump().substr(0, 40));
    return v.get<int>();
  };
  auto boolean = [](const Json& v, const char* key) {
    SPARSITY_CHECK(v.is_boolean(), InvalidArgument, "scheduler state_dict key ",
                   ::sparsity::detail::quote(key), " must be a bool, got ", v.dump());
    return v.get<bool>();
  };
  // Validate everything first so a bad entry leaves the scheduler untouched.
  std::vector<double> base_sl = base_sl_, last_sl = last_sl_;
  int last_epoch = last_epoch_, step_count = step_count_;
  bool verbose = verbose_;
  for (const auto& [key, value] : state.items()) {
    if (key == "base_sl") {
      base_sl = number_list(value, "base_sl");
    } else if (key == "_last_sl") {
      last_sl = number_list(value, "_last_sl");
    } else if (key == "last_epoch") {
      last_epoch = integer(value, "last_epoch");
    } else if (key == "_step_count") {
      step_count = integer(value, "_step_count");
    } else if (key == "verbose") {
      verbose = boolean(value, "verbose");
    } else if (key == "_get_sl_called_within_step") {
      boolean(value, "_get_sl_called_within_step");
    }
    // Other keys belong to subclasses, which read them in their own load_state_dict.
  }
  base_sl_ = std::move(base_sl);
  last_sl_ = std::move(last_sl);
  last_epoch_ = last_epoch;
  step_count_ = step_count;
  verbose_ = verbose;
}

std::string BaseScheduler::repr() const {
  std::ostringstream os;
  os << class_name() << " (\n"
     << "Sparsifier " << sparsifier_.repr() << "\n"
     << "    base_sl: " << python_list(base_sl_) << "\n"
     << ")";
  return os.str();
}

}  // namespace sparsity

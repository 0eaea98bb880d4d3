// sparsity::Error: the one error channel of the C++ API, and the SPARSITY_CHECK macro that raises it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace sparsity {

/// What kind of misuse or failure an Error reports (names follow abseil's status codes).
enum class ErrorCode {
  InvalidArgument,     ///< a value is malformed or out of its domain (bad shape, bad config key, ...)
  NotFound,            ///< a named module, tensor, key or file does not exist
  FailedPrecondition,  ///< the call is not valid in the current state (e.g. prepare twice)
  OutOfRange,          ///< an index, offset or size lies outside its bounds
  Io,                  ///< reading or writing a file failed
  Internal,            ///< a broken invariant inside the library
};

/// Short lower-case name of a code, e.g. "invalid argument".
const char* to_string(ErrorCode code) noexcept;

/// Exception thrown by every public entry point on misuse. `what()` names the offending key, fqn,
/// tensor or byte offset.
///
///   try { sparsifier.prepare(model, config); }
///   catch (const sparsity::Error& e) { if (e.code() == sparsity::ErrorCode::NotFound) ...; }
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

namespace detail {
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void throw_error(ErrorCode code, const std::string& message);
}  // namespace detail

}  // namespace sparsity

/// Raise `sparsity::Error(code, message...)` unless `cond` holds; the message parts are streamed.
///   SPARSITY_CHECK(!name.empty(), InvalidArgument, "parameter name must not be empty");
#define SPARSITY_CHECK(cond, code, ...)                                                   \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      ::sparsity::detail::throw_error(::sparsity::ErrorCode::code,                        \
                                      ::sparsity::detail::str_cat(__VA_ARGS__));          \
    }                                                                                     \
  } while (0)

/// Unconditionally raise `sparsity::Error(code, message...)`.
#define SPARSITY_FAIL(code, ...) \
  ::sparsity::detail::throw_error(::sparsity::ErrorCode::code, ::sparsity::detail::str_cat(__VA_ARGS__))

/// Debug-only invariant check for kernels (compiled out with NDEBUG; never in hot loops).
#ifdef NDEBUG
#define SPARSITY_DCHECK(cond) ((void)0)
#else
#define SPARSITY_DCHECK(cond) SPARSITY_CHECK(cond, Internal, "internal check failed: " #cond)
#endif

// sparsity::Error: the one error channel of the C++ API, and the SPARSITY_CHECK macro that raises it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

/// Exception thrown by every public entry point on misuse. `what()` is "<message> (<where>)": the
/// message names the offending key, fqn or tensor, and the location (file, tensor, key, byte offset)
/// travels as data, so a caller can add one where the thrower had none (`located()`, `at()`).
///
///   try { sparsifier.prepare(model, config); }
///   catch (const sparsity::Error& e) { if (e.code() == sparsity::ErrorCode::NotFound) ...; }
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message, std::vector<std::string> where = {})
      : std::runtime_error(format(message, where)), code_(code), message_(message), where_(std::move(where)) {}
  ErrorCode code() const noexcept { return code_; }
  /// The message without its location.
  const std::string& message() const noexcept { return message_; }
  /// Location parts, outermost first, e.g. {"model.safetensors", "tensor 'fc.weight'"}.
  const std::vector<std::string>& where() const noexcept { return where_; }
  bool located() const noexcept { return !where_.empty(); }
  /// The same error with `where` as its location when it has none yet (else unchanged).
  Error at(std::vector<std::string> where) const {
    return located() ? *this : Error(code_, message_, std::move(where));
  }

 private:
  static std::string format(const std::string& message, const std::vector<std::string>& where) {
    if (where.empty()) return message;
    std::string s = message + " (";
    for (size_t i = 0; i < where.size(); ++i) s += (i ? ", " : "") + where[i];
    return s + ")";
  }
  ErrorCode code_;
  std::string message_;
  std::vector<std::string> where_;
};

namespace detail {
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void throw_error(ErrorCode code, const std::string& message);
[[noreturn]] void throw_error_at(ErrorCode code, const std::string& message, std::vector<std::string> where);
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

/// Raise `sparsity::Error(code, message...)` located at `where` (a std::vector<std::string> of parts)
/// unless `cond` holds.
///   SPARSITY_CHECK_AT(n <= size, InvalidArgument, (where_of(file, offset)), "header length ", n, " ...");
#define SPARSITY_CHECK_AT(cond, code, where, ...)                                                    \
  do {                                                                                              \
    if (!(cond)) {                                                                                  \
      ::sparsity::detail::throw_error_at(::sparsity::ErrorCode::code,                               \
                                         ::sparsity::detail::str_cat(__VA_ARGS__), where);           \
    }                                                                                               \
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

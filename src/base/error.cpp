// sparsity::Error: code names and the throw helpers behind SPARSITY_CHECK.
#include "sparsity/base/error.hpp"

namespace sparsity {

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::NotFound: return "not found";
    case ErrorCode::FailedPrecondition: return "failed precondition";
    case ErrorCode::OutOfRange: return "out of range";
    case ErrorCode::Io: return "i/o error";
    case ErrorCode::Internal: return "internal error";
  }
  return "unknown error";
}

namespace detail {
void throw_error(ErrorCode code, const std::string& message) { throw Error(code, message); }
void throw_error_at(ErrorCode code, const std::string& message, std::vector<std::string> where) {
  throw Error(code, message, std::move(where));
}
}  // namespace detail

}  // namespace sparsity

// Library version string.
#include "sparsity/base/version.hpp"

#define SPARSITY_STR2(x) #x
#define SPARSITY_STR(x) SPARSITY_STR2(x)

namespace sparsity {
const char* version_string() noexcept {
  return SPARSITY_STR(SPARSITY_VERSION_MAJOR) "." SPARSITY_STR(SPARSITY_VERSION_MINOR) "." SPARSITY_STR(
      SPARSITY_VERSION_PATCH);
}
}  // namespace sparsity

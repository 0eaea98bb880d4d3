// Library version.
#pragma once

#define SPARSITY_VERSION_MAJOR 0
#define SPARSITY_VERSION_MINOR 1
#define SPARSITY_VERSION_PATCH 0

namespace sparsity {
/// "MAJOR.MINOR.PATCH" of the library the program links against.
const char* version_string() noexcept;
}  // namespace sparsity

// libFuzzer target: any text given as CONFIG.json is accepted or rejected with a one-line Error.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "sparsity/prune/registry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto config =
        sparsity::parse_prune_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
    // An accepted configuration must build its sparsifier and survive a round trip.
    auto sparsifier = sparsity::make_sparsifier(config.sparsifier, config.defaults);
    if (!sparsifier) __builtin_trap();
    const auto again = sparsity::parse_prune_config(config.to_json(), "round trip");
    if (again.to_json() != config.to_json()) __builtin_trap();
  } catch (const sparsity::Error& e) {
    if (std::strchr(e.what(), '\n') != nullptr) __builtin_trap();  // messages are one line
  }
  return 0;
}

// sparsity::Json: the dynamic config value type, a JSON whose objects keep insertion order and find
// keys in constant time.
#pragma once

#include <nlohmann/json.hpp>

#include "sparsity/base/ordered_map.hpp"

namespace sparsity {

/// The dynamic value type of configs, groups and states (nlohmann's JSON with insertion-ordered objects,
/// as torch's dicts, and O(1) key lookup).
using Json = nlohmann::basic_json<IndexedOrderedMap>;

}  // namespace sparsity

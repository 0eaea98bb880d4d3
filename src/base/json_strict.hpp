// Strict JSON parsing of untrusted text: duplicate keys and deep nesting are errors, not surprises.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "sparsity/base/json.hpp"

namespace sparsity::detail {

/// Why parse_strict failed: kind 0 = syntax (at byte `offset`), 1 = duplicate key `key`, 2 = too deep.
struct StrictJsonError {
  int kind = 0;
  size_t offset = 0;
  std::string key;
};

/// Parses [begin, end) into `out`; returns false and fills `err` on a syntax error, a key repeated in
/// one object, or nesting deeper than `max_depth`.
inline bool parse_strict(const char* begin, const char* end, Json& out, StrictJsonError& err,
                         int max_depth = 64) {
  struct Stop {};
  std::vector<std::set<std::string>> keys;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    using E = Json::parse_event_t;
    if (depth > max_depth) {
      err.kind = 2;
      throw Stop{};
    }
    if (event == E::object_start) {
      keys.emplace_back();
    } else if (event == E::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == E::key) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.empty() && !keys.back().insert(k).second) {
        err.kind = 1;
        err.key = k;
        throw Stop{};
      }
    }
    return true;
  };
  try {
    out = Json::parse(begin, end, callback, /*allow_exceptions=*/true);
    return true;
  } catch (const Json::parse_error& e) {
    err.kind = 0;
    err.offset = e.byte > 0 ? e.byte - 1 : 0;
  } catch (const Json::exception&) {
    err.kind = 0;
    err.offset = 0;
  } catch (const Stop&) {
  }
  return false;
}

}  // namespace sparsity::detail

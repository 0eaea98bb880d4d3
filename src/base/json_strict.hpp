// Strict JSON parsing of untrusted text in linear time: duplicate keys and deep nesting are errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sparsity/base/json.hpp"

namespace sparsity::detail {

/// Why parse_strict failed: kind 0 = syntax (at byte `offset`), 1 = duplicate key `key`, 2 = too deep.
struct StrictJsonError {
  int kind = 0;
  size_t offset = 0;
  std::string key;
};

/// SAX handler building the document itself (nlohmann's callback parser rescans the parent object after
/// every nested one: O(n^2) on a header of n entries). Duplicate keys are found through the object's
/// index, so the whole parse is linear.
class StrictJsonBuilder {
 public:
  StrictJsonBuilder(Json& root, StrictJsonError& err, int max_depth)
      : root_(root), err_(err), max_depth_(max_depth) {}

  bool null() { return value(Json(nullptr)); }
  bool boolean(bool v) { return value(Json(v)); }
  bool number_integer(Json::number_integer_t v) { return value(Json(v)); }
  bool number_unsigned(Json::number_unsigned_t v) { return value(Json(v)); }
  bool number_float(Json::number_float_t v, const std::string&) { return value(Json(v)); }
  bool string(std::string& v) { return value(Json(std::move(v))); }
  bool binary(Json::binary_t& v) { return value(Json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(Json::object()); }
  bool start_array(std::size_t) { return open(Json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(std::string& k) {
    Json& obj = *stack_.back();
    if (obj.contains(k)) {
      err_.kind = 1;
      err_.key = k;
      return false;
    }
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) {
    err_.kind = 0;
    err_.offset = position > 0 ? position - 1 : 0;
    return false;
  }

 private:
  // Places `v` where the parser is (root, array element or the value of the last key); returns it.
  Json* place(Json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    return &(parent[key_] = std::move(v));
  }
  bool value(Json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(Json&& container) {
    if (static_cast<int>(stack_.size()) + 1 > max_depth_) {
      err_.kind = 2;
      return false;
    }
    stack_.push_back(place(std::move(container)));
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  Json& root_;
  StrictJsonError& err_;
  int max_depth_;
  std::vector<Json*> stack_;  // open containers; pointers stay valid: a container only grows while open
  std::string key_;
};

/// Parses [begin, end) into `out` in linear time; returns false and fills `err` on a syntax error, a key
/// repeated in one object, or nesting deeper than `max_depth`.
inline bool parse_strict(const char* begin, const char* end, Json& out, StrictJsonError& err,
                         int max_depth = 64) {
  out = Json();
  StrictJsonBuilder builder(out, err, max_depth);
  err = StrictJsonError{};
  err.offset = SIZE_MAX;
  const bool ok =
      Json::sax_parse(begin, end, &builder, nlohmann::detail::input_format_t::json, /*strict=*/true);
  if (ok) return true;
  if (err.kind == 0 && err.offset == SIZE_MAX) err.offset = 0;
  return false;
}

}  // namespace sparsity::detail

// Untrusted text (tensor names, keys, paths) in one-line messages: quoting, and the location parts of an Error.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparsity/base/error.hpp"

namespace sparsity::detail {

/// `text` in single quotes with control and non-ASCII bytes escaped as \xNN, cut after 120 bytes, so
/// a message built from untrusted input always stays one printable line.
inline std::string quote(std::string_view text) {
  std::string out = "'";
  size_t shown = 0;
  for (unsigned char c : text) {
    if (shown++ == 120) {
      out += "...";
      break;
    }
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "'";
  return out;
}

/// A path for a message: printable bytes as is, others escaped, long paths cut (no quotes).
inline std::string printable(std::string_view text) {
  std::string q = quote(text);
  return q.substr(1, q.size() - 2);
}

/// Location parts of a sparsity::Error (Error::where()), so every message names places the same way.
inline std::string at_file(std::string_view path) { return printable(path); }
inline std::string at_tensor(std::string_view name) { return "tensor " + quote(name); }
inline std::string at_key(std::string_view key) { return "key " + printable(key); }
inline std::string at_offset(uint64_t offset) { return "byte offset " + std::to_string(offset); }

/// Throws Error(code, what) located at `file` and, when not empty, at `where` inside it (a part made by
/// at_tensor, at_key or at_offset).
[[noreturn]] inline void fail_at_file(ErrorCode code, const std::string& what, std::string_view file,
                                      std::string where = {}) {
  std::vector<std::string> at = {at_file(file)};
  if (!where.empty()) at.push_back(std::move(where));
  throw Error(code, what, std::move(at));
}

/// Up to `max` of `candidates` closest to `query` by edit distance (at most a third of the query's
/// length), closest first, ties in candidate order: the names of a "did you mean" hint.
std::vector<std::string> closest_names(std::string_view query, const std::vector<std::string>& candidates,
                                       size_t max = 3);

/// A whole message made safe for one terminal line: bytes below 0x20 (NUL, ESC, newlines) and DEL are
/// escaped as \xNN, and the text is cut after `limit` bytes. The last guard before stderr or stdout;
/// names inside messages are already quote()d.
inline std::string one_line(std::string_view text, size_t limit = 4096) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace sparsity::detail

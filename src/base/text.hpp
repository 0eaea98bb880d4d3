// Quoting of untrusted text (tensor names, keys, paths) for one-line error messages.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

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


}  // namespace sparsity::detail

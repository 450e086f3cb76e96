// Small text helpers that libqexp, the plugins and the tools share, each written once.
#pragma once

#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace qexp {

// "[2, 5, 40]": a tensor shape as every message writes it ("[]" for a scalar).
std::string shape_text(c10::IntArrayRef shape);

// The non-empty entries of a ':'-separated list such as QEXP_PLUGIN_PATH or QEXP_DATA_PATH, in
// order; none for a null or empty text.
std::vector<std::string> split_path_list(const char* text);

// "a, b, c" for join({"a", "b", "c"}, ", "); "" for none (a separator follows only text so far).
std::string join(const std::vector<std::string>& parts, const std::string& separator);

// `text` as one line: newlines, tabs and runs of spaces become one space, leading and trailing ones
// go; with `limit` > 0, more than `limit` characters are cut and end in "...".
std::string one_line(const std::string& text, std::size_t limit = 0);

// What `e` says, as one line: libtorch's c10::Error without the C++ backtrace it carries, any
// other exception's what(). Every message that reaches a log line or results.json goes through it.
std::string error_message(const std::exception& e);

// Decodes one code point at `p` the way Python's strict UTF-8 decoder accepts it (no surrogates,
// no overlong forms, nothing above U+10FFFF). Returns its byte length, or 0 when the byte at `p`
// does not start a valid sequence.
inline std::size_t decode_utf8(const unsigned char* p, const unsigned char* end, std::int32_t& cp) {
  const unsigned char b0 = p[0];
  const std::size_t left = static_cast<std::size_t>(end - p);
  auto cont = [](unsigned char b) { return (b & 0xC0) == 0x80; };
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (left < 2 || !cont(p[1])) return 0;
    cp = ((b0 & 0x1F) << 6) | (p[1] & 0x3F);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3 || !cont(p[1]) || !cont(p[2])) return 0;
    if (b0 == 0xE0 && p[1] < 0xA0) return 0;   // overlong
    if (b0 == 0xED && p[1] >= 0xA0) return 0;  // UTF-16 surrogate
    cp = ((b0 & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4 || !cont(p[1]) || !cont(p[2]) || !cont(p[3])) return 0;
    if (b0 == 0xF0 && p[1] < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && p[1] >= 0x90) return 0;  // above U+10FFFF
    cp = ((b0 & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    return 4;
  }
  return 0;
}

// The byte offset of the first byte of `text` that is not valid UTF-8 (decode_utf8), or npos.
std::size_t invalid_utf8_offset(std::string_view text);

}  // namespace qexp

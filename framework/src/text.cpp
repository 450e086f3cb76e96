#include "qexp/text.h"

#include <c10/util/Exception.h>

#include <sstream>

namespace qexp {

std::string shape_text(c10::IntArrayRef shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<std::string> split_path_list(const char* text) {
  std::vector<std::string> parts;
  if (!text) return parts;
  std::stringstream s(text);
  std::string part;
  while (std::getline(s, part, ':'))
    if (!part.empty()) parts.push_back(part);
  return parts;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : separator) + p;
  return out;
}

std::string one_line(const std::string& text, std::size_t limit) {
  std::string out;
  bool space = false;
  for (char ch : text) {
    if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += ch;
  }
  if (limit > 0 && out.size() > limit) out = out.substr(0, limit) + "...";
  return out;
}

std::string error_message(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return one_line(c10_error->what_without_backtrace());
  return one_line(e.what());
}

std::size_t invalid_utf8_offset(std::string_view text) {
  const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = begin + text.size();
  for (const auto* p = begin; p < end;) {
    std::int32_t cp = 0;
    const std::size_t length = decode_utf8(p, end, cp);
    if (length == 0) return static_cast<std::size_t>(p - begin);
    p += length;
  }
  return std::string_view::npos;
}

}  // namespace qexp

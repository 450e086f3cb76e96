#include "qexp/text.h"

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

}  // namespace qexp

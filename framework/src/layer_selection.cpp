#include "qexp/layer_selection.h"

#include <fnmatch.h>

namespace qexp {
namespace {

bool matches_any(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns)
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

}  // namespace

bool layer_selection::selects(const std::string& layer_name) const {
  return matches_any(include, layer_name) && !matches_any(exclude, layer_name);
}

std::vector<std::string> layer_selection::apply(const std::vector<std::string>& layer_names) const {
  std::vector<std::string> out;
  for (const auto& name : layer_names)
    if (selects(name)) out.push_back(name);
  return out;
}

}  // namespace qexp

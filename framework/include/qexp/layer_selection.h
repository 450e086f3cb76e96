// Which Linear layers a quantizer replaces: glob patterns on Hugging Face module names.
#pragma once

#include <string>
#include <vector>

namespace qexp {

struct layer_selection {
  std::vector<std::string> include{"*"};  // fnmatch globs; a layer must match one
  std::vector<std::string> exclude;       // ...and none of these

  bool selects(const std::string& layer_name) const;
  // The selected names, in the given order.
  std::vector<std::string> apply(const std::vector<std::string>& layer_names) const;
};

}  // namespace qexp

// Sites: the places in a model a quantizer can take over. Every Linear is a site, and so is each
// embedding table. A recipe (qexp/recipe.h) gives each site to at most one plugin.
#pragma once

#include <string>

namespace qexp {

enum class site_kind { linear, table };

const char* to_string(site_kind kind);

struct site {
  std::string name;   // Hugging Face module name: "distilbert.transformer.layer.0.ffn.lin1"
  site_kind kind = site_kind::linear;
  std::string group;  // Linears reading the same input share it ("...layer.0.attention.qkv")
};

}  // namespace qexp

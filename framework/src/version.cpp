#include "qexp/version.h"

#include <torch/version.h>

#include <dnnl.hpp>
#include <string>

namespace qexp {

const char* version_string() { return QEXP_VERSION; }

const char* torch_version_string() { return TORCH_VERSION; }

const char* onednn_version_string() {
  static const std::string text = [] {
    const dnnl_version_t* v = dnnl_version();
    return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch);
  }();
  return text.c_str();
}

}  // namespace qexp

// Entry point of the dynamic-int8 plugin: PyTorch's dynamic INT8 Linear (quantize_dynamic), run
// through libtorch's own quantized ops, plus a reference integer kernel for per-token activations.
#include <qexp/plugin_api.h>

#include "dynamic_int8.h"

namespace {

int dynamic_int8_supported(const char** /*reason*/) { return 1; }

qexp::linear_quantizer* dynamic_int8_create(const qexp::option_values& options, std::string* error) {
  try {
    return qexp::dynamic_int8::make_quantizer(qexp::dynamic_int8::parse_settings(options)).release();
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}

}  // namespace

QEXP_PLUGIN("dynamic-int8", "1.0.0",
            "PyTorch dynamic INT8 Linear (torch quantize_dynamic): s8 symmetric weights, u8 "
            "activations quantized at run time; libtorch onednn/qnnpack ops or a reference kernel",
            qexp::dynamic_int8::options, dynamic_int8_supported, dynamic_int8_create)

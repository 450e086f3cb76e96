// Entry point of the onednn-int8 plugin: the fastest INT8 Linear this CPU allows, a oneDNN s8
// matmul on the AVX-512 VNNI brgemm kernel with activations quantized per call.
#include <qexp/plugin_api.h>

#include "onednn_int8.h"

namespace {

int onednn_int8_supported(const char** reason) { return qexp::onednn_int8::cpu_supported(reason) ? 1 : 0; }

qexp::linear_quantizer* onednn_int8_create(const qexp::option_values& options, std::string* error) {
  try {
    return qexp::onednn_int8::make_quantizer(qexp::onednn_int8::parse_settings(options)).release();
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}

}  // namespace

QEXP_PLUGIN("onednn-int8", "1.0.0",
            "INT8 Linear on oneDNN's AVX-512 VNNI matmul: s8 weights packed once, u8/s8 "
            "activations quantized per call (per tensor or per token), one fused dequantize pass",
            qexp::onednn_int8::options, onednn_int8_supported, onednn_int8_create)

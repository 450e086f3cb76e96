// Entry point of the onednn-int8 plugin: the fastest INT8 Linear this CPU allows, a oneDNN s8
// matmul on the AVX-512 VNNI brgemm kernel with activations quantized per call.
#include <qexp/plugin_api.h>

#include "onednn_int8.h"

namespace {

int onednn_int8_supported(const char** reason) { return qexp::onednn_int8::cpu_supported(reason) ? 1 : 0; }

qexp::linear_quantizer* onednn_int8_create(const qexp::option_values& options, std::string* /*error*/) {
  // Whatever this throws, the registry reports as the factory's error (plugin_registry.cpp).
  return qexp::onednn_int8::make_quantizer(qexp::onednn_int8::parse_settings(options)).release();
}

// Each figure is about 3x the largest normalised MSE the conformance suite measured (docs/plugins.md
// lists them): activation error (u8 or s8) plus weight error (per channel or per tensor).
void onednn_int8_budget(const qexp::option_values& options, qexp::conformance_budget* out) {
  using namespace qexp::onednn_int8;
  const settings s = parse_settings(options);
  const double activations = s.activation_dtype == qexp::activation_type::s8 ? 1e-4 : 8e-5;
  const double weights = s.weights == qexp::weight_granularity::per_tensor ? 2.5e-4 : 5e-5;
  out->output_nmse = 3 * (activations + weights);
  out->weight_nmse = 3 * weights;
  out->bytes_per_weight = 1.0;
}

// Combinations no single option change reaches.
const char* const onednn_int8_variants[] = {
    "activation_type=s8,activation_granularity=per_token",
    "granularity=per_tensor,activation_granularity=per_token",
    nullptr,
};

}  // namespace

QEXP_PLUGIN("onednn-int8", "1.0.0",
            "INT8 Linear on oneDNN's AVX-512 VNNI matmul: s8 weights packed once, u8/s8 "
            "activations quantized per call (per tensor or per token), one fused dequantize pass",
            qexp::onednn_int8::options, onednn_int8_supported, onednn_int8_create, nullptr,
            onednn_int8_budget, onednn_int8_variants)

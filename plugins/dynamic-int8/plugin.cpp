// Entry point of the dynamic-int8 plugin: PyTorch's dynamic INT8 Linear (quantize_dynamic), run
// through libtorch's own quantized ops, plus a reference integer kernel for per-token activations.
#include <qexp/plugin_api.h>

#include "dynamic_int8.h"

namespace {

int dynamic_int8_supported(const char** /*reason*/) { return 1; }

qexp::linear_quantizer* dynamic_int8_create(const qexp::option_values& options, std::string* /*error*/) {
  // Whatever this throws, the registry reports as the factory's error (plugin_registry.cpp).
  return qexp::dynamic_int8::make_quantizer(qexp::dynamic_int8::parse_settings(options)).release();
}

// Each figure is about 3x the largest normalised MSE the conformance suite measured (docs/plugins.md
// lists them): activation error (7-bit or 8-bit u8) plus weight error (per tensor or per channel).
void dynamic_int8_budget(const qexp::option_values& options, qexp::conformance_budget* out) {
  using namespace qexp::dynamic_int8;
  const settings s = parse_settings(options);
  // 7-bit activations with reduce_range (what quantize_dynamic does); qnnpack ignores the flag.
  const bool seven_bit = s.reduce_range && s.engine != engine_kind::qnnpack;
  const double activations = seven_bit ? 3e-4 : 8e-5;
  const double weights = s.weights == qexp::weight_granularity::per_channel ? 5e-5 : 2.5e-4;
  out->output_nmse = 3 * (activations + weights);
  out->weight_nmse = 3 * weights;
  out->bytes_per_weight = 1.0;
}

// Combinations no single option change reaches.
const char* const dynamic_int8_variants[] = {
    "granularity=per_channel,engine=qnnpack",
    "granularity=per_channel,activation_granularity=per_token,reduce_range=false",
    nullptr,
};

}  // namespace

QEXP_PLUGIN("dynamic-int8", "1.0.0",
            "PyTorch dynamic INT8 Linear (torch quantize_dynamic): s8 symmetric weights, u8 "
            "activations quantized at run time; libtorch onednn/qnnpack ops or a reference kernel",
            qexp::dynamic_int8::options, dynamic_int8_supported, dynamic_int8_create, nullptr,
            dynamic_int8_budget, dynamic_int8_variants)

// Entry point of the static-int8 plugin: static W8A8 on oneDNN's AVX-512 VNNI int8 matmul, the
// activation scale fixed at calibration (minmax, percentile, entropy or mse), optional SmoothQuant.
#include <qexp/plugin_api.h>

#include <cmath>

#include "static_int8.h"

namespace {

// Runs everywhere: without AVX-512 VNNI the portable kernels take over (slower, same results up
// to float rounding of the output scaling).
int static_int8_supported(const char**) { return 1; }

qexp::linear_quantizer* static_int8_create(const qexp::option_values& options, std::string* /*error*/) {
  // Whatever this throws, the registry reports as the factory's error (plugin_registry.cpp).
  return qexp::static_int8::make_quantizer(qexp::static_int8::parse_settings(options)).release();
}

// About 3x what the conformance suite measures (docs/plugins.md lists the figures).
// - Weights: 3.2e-5 per channel, 1.25e-4 per tensor. SmoothQuant moves the calibration data's
//   outlier channel (20x) into a weight column, 20^alpha larger than the rest, and the weight error
//   grows with its square: 1.04e-4 / 1.32e-3 at alpha 0.5, 2.33e-3 / 3.88e-2 at alpha 1 (per
//   channel / per tensor), about base * (1 + c * 400^alpha) with c = 0.2 / 0.8.
// - Static activations: the outlier check feeds inputs of 300 and -250 that a calibrated range
//   clips, so its NMSE is close to 1 whatever the calibrator (0.65 to 0.98 measured) and its 10x
//   budget must exceed that; on Gaussian inputs the worst case is 4.8e-2 (alpha 0 or s8 minmax),
//   and a low percentile clips the constant inputs of -3 (0.19 at p = 90).
// - Dynamic activations: 1.4e-4 (u8) to 4.3e-4 (s8 with SmoothQuant), plus the weights' share.
void static_int8_budget(const qexp::option_values& options, qexp::conformance_budget* out) {
  using namespace qexp::static_int8;
  const settings s = parse_settings(options);
  const bool per_tensor = s.weights == qexp::weight_granularity::per_tensor;
  double weights = per_tensor ? 3.75e-4 : 9.6e-5;
  if (s.smoothquant) weights *= 1.0 + (per_tensor ? 0.8 : 0.2) * std::pow(400.0, s.alpha);
  out->weight_nmse = weights;
  double clipped = 0;  // the percentile calibrator clips (100 - p)% of the calibration values:
  // constant inputs of -3 land beyond the range (0.19 measured at p = 90)
  if (s.calib == qexp::static_int8::calibrator::percentile) clipped = (100.0 - s.percentile) / 20.0;
  out->output_nmse = s.mode == activation_mode::dynamic ? 4.5e-4 + 2.0 * weights : 0.15 + clipped + weights;
  out->bytes_per_weight = 1.0;
}

// Combinations no single option change reaches.
const char* const static_int8_variants[] = {
    "smoothquant=true,calibrator=entropy",
    "smoothquant=true,calibrator=percentile,activation_type=s8",
    "smoothquant=true,calibrator=mse,granularity=per_tensor",
    "smoothquant=true,activations=dynamic",
    "smoothquant=true,activations=dynamic,activation_type=s8",
    "smoothquant=true,alpha=0",
    "smoothquant=true,alpha=1",
    "smoothquant=true,alpha=1,granularity=per_tensor",
    "calibrator=entropy,activation_type=s8",
    "calibrator=mse,activation_type=s8",
    "calibrator=percentile,percentile=90",
    "calibrator=percentile,percentile=90,activation_type=s8",
    "kernel=portable,smoothquant=true,calibrator=entropy",
    "kernel=portable,activations=dynamic,smoothquant=true",
    "kernel=portable,activation_type=s8,granularity=per_tensor",
    nullptr,
};

}  // namespace

QEXP_PLUGIN("static-int8", "1.0.0",
            "static W8A8: s8 weights, u8/s8 activations with a scale fixed at calibration (minmax, percentile, "
            "entropy, mse), optional SmoothQuant, on oneDNN's AVX-512 VNNI matmul",
            qexp::static_int8::options, static_int8_supported, static_int8_create, nullptr, static_int8_budget,
            static_int8_variants)

// static-int8: static W8A8 Linears on oneDNN 2.6's int8 matmul.
//
// Weights: s8 symmetric in [-127, 127], per output channel or per tensor. Activations: one scale
// per tensor fixed at calibration (u8 with a zero point, or s8 symmetric), chosen by a calibrator
// (minmax, percentile, entropy, mse) from what the Linears of one input group saw, so a call makes
// one pass over its input (quantize) instead of two. Optional SmoothQuant: per input channel
// s_j = max|X_j|^alpha / max|W_j|^(1-alpha) (W over every Linear of the input group), W' = W diag(s),
// and 1/s folded into the quantization pass. `activations: dynamic` keeps the range per call.
//
// The matmul: u8 codes [M, K] x s8 [K, N] on qexp's int8_gemm (qexp/int8_gemm.h), which applies
// the zero point, the scales and the bias as each output tile leaves the registers; AVX-512 VNNI
// where the CPU has it, its portable C++ build elsewhere or with `kernel: portable` (bit-identical
// results). `kernel: onednn` runs oneDNN's brgemm (s32 out) and a dequantize pass instead, for
// comparison.
#pragma once

#include <qexp/plugin_api.h>

#include <memory>

#include "calibration.h"

namespace qexp::static_int8 {

enum class activation_mode { fixed, dynamic };  // `activations: static|dynamic`
enum class kernel_choice { automatic, onednn, portable };  // `kernel: auto|onednn|portable`

struct settings {
  weight_granularity weights = weight_granularity::per_channel;
  activation_type act_type = activation_type::u8;
  activation_mode mode = activation_mode::fixed;
  calibrator calib = calibrator::minmax;
  double percentile = 99.99;
  bool smoothquant = false;
  double alpha = 0.5;
  kernel_choice kernel = kernel_choice::automatic;
};

extern const option_spec options[8];

settings parse_settings(const option_values& values);
std::unique_ptr<linear_quantizer> make_quantizer(const settings& s);
// AVX-512 (F, BW, DQ, VL) with VNNI: `kernel: auto` runs int8_gemm's VNNI kernel.
bool fast_path_supported(const char** reason);

}  // namespace qexp::static_int8

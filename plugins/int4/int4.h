// int4: group-wise INT4 weights for Linears (issue 14).
//
// Weights: 4-bit codes in groups of `group_size` (32, 64, 128) consecutive input channels, a float
// scale per output channel and group, symmetric (zero point 8) or asymmetric (a zero point per
// group), computed by a method (methods.h: rtn, gptq, awq). Activations: u8 per token,
// quantized at each call (W4A8 on qexp's int4_gemm kernel), or float (`activations: float`: the
// weight is dequantized once at prepare and run by the float Linear, so only the accuracy of the
// 4-bit weights is measured).
//
// Checkpoint: <prefix>.weight_int4 uint8 [out, ceil(in / 2)] (two codes a byte, the even input
// channel in the low nibble), <prefix>.shape int64 [out, in], <prefix>.weight_scale float32
// [out, groups], <prefix>.weight_zero_point uint8 [out, groups] (asymmetric), <prefix>.input_scale
// float32 [in] (methods that rescale inputs), <prefix>.bias float32 [out] (optional).
#pragma once

#include <qexp/plugin_api.h>

#include <memory>
#include <string>

#include "methods.h"

namespace qexp::int4 {

enum class activation_mode { int8, float32 };  // `activations: int8|float`
enum class kernel_choice { automatic, portable };  // `kernel: auto|portable`

struct settings {
  std::string method = "rtn";
  method_options method_params;
  weight_format format;
  activation_mode activations = activation_mode::int8;
  kernel_choice kernel = kernel_choice::automatic;
};

extern const option_spec options[7];

settings parse_settings(const option_values& values);
std::unique_ptr<linear_quantizer> make_quantizer(const settings& s);

// What packed_bytes() is per weight (for the conformance budget): half a byte of codes, a float
// scale (and a byte zero point) per group, and the float weight too in weight-only mode.
double bytes_per_weight(const settings& s);

}  // namespace qexp::int4

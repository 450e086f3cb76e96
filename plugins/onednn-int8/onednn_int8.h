// onednn-int8: a dynamic INT8 Linear built directly on oneDNN 2.6's int8 matmul.
//
// Weights: s8 symmetric (range [-127, 127]) per tensor or per output channel, reordered once into
// the blocked layout oneDNN's brgemm kernel wants. Activations: quantized per call by an AVX-512
// pass, u8 asymmetric (scale and zero point from min/max) or s8 symmetric, per tensor or per row.
// The matmul writes s32 with no attributes, the only setting under which oneDNN 2.6 keeps its
// `brg:avx512_core_vnni` kernel; zero-point compensation, both scales and the bias are then applied
// in one pass: y = (acc - zp * sum_k w) * (x_scale * w_scale) + b.
#pragma once

#include <qexp/int8_options.h>
#include <qexp/plugin_api.h>

#include <memory>

namespace qexp::onednn_int8 {

struct settings {
  weight_granularity weights = weight_granularity::per_channel;
  activation_granularity activations = activation_granularity::per_tensor;
  activation_type activation_dtype = activation_type::u8;
};

extern const option_spec options[3];

settings parse_settings(const option_values& values);
std::unique_ptr<linear_quantizer> make_quantizer(const settings& s);
// AVX-512 (F, BW, DQ, VL) with VNNI, and oneDNN allowed to use it (ONEDNN_MAX_CPU_ISA).
bool cpu_supported(const char** reason);

}  // namespace qexp::onednn_int8

// dynamic-int8: what torch.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
// does to a Linear, as a qexp plugin. Weights are quantized once (s8, symmetric, per tensor or per
// output channel, with PyTorch's MinMax observer formula); activations are quantized per call (u8,
// asymmetric, from the min and max of the input), by libtorch's own quantized::linear_dynamic op
// or, for per-token activations that libtorch has no op for, by a reference integer kernel here.
#pragma once

#include <qexp/int8_options.h>
#include <qexp/plugin_api.h>

#include <memory>

namespace qexp::dynamic_int8 {

// onednn / qnnpack: libtorch's quantized engines (Debian's libtorch has no fbgemm).
// reference: the integer kernel in this plugin (always used for per-token activations).
enum class engine_kind { onednn, qnnpack, reference };

struct settings {
  weight_granularity weights = weight_granularity::per_tensor;
  activation_granularity activations = activation_granularity::per_tensor;
  // 7-bit activations ([0, 127]), the flag quantize_dynamic's modules pass to linear_dynamic;
  // libtorch's qnnpack engine ignores it, so the qnnpack engine here always uses 8 bits.
  bool reduce_range = true;
  engine_kind engine = engine_kind::onednn;
};

extern const option_spec options[4];

settings parse_settings(const option_values& values);
std::unique_ptr<linear_quantizer> make_quantizer(const settings& s);

}  // namespace qexp::dynamic_int8

#include "qexp/int8_weights.h"

#include <ATen/ATen.h>

#include "qexp/errors.h"
#include "qexp/text.h"

namespace qexp {

std::string describe_tensor(const at::Tensor& t) {
  return std::string(c10::toString(t.scalar_type())) + " " + shape_text(t.sizes());
}

void save_int8_weights(tensor_writer& out, const std::string& prefix, const int8_weights& w) {
  out.add_tensor(prefix + ".weight_int8", w.weight_int8);
  out.add_tensor(prefix + ".weight_scale", w.scales);
  if (w.bias.defined()) out.add_tensor(prefix + ".bias", w.bias);
}

int8_weights load_int8_weights(const tensor_reader& in, const std::string& prefix, const std::string& plugin_id,
                               bool per_tensor) {
  int8_weights w;
  w.weight_int8 = in.tensor(prefix + ".weight_int8");
  w.scales = in.tensor(prefix + ".weight_scale");
  const std::string who = plugin_id + ": tensor '" + prefix;
  if (w.weight_int8.scalar_type() != at::kChar || w.weight_int8.dim() != 2)
    throw checkpoint_error(who + ".weight_int8' must be a 2-D int8 [out, in] tensor, found " +
                           describe_tensor(w.weight_int8));
  const int64_t n = w.weight_int8.size(0);
  const int64_t expected_scales = per_tensor ? 1 : n;
  if (w.scales.scalar_type() != at::kFloat || w.scales.dim() != 1 || w.scales.size(0) != expected_scales)
    throw checkpoint_error(who + ".weight_scale' must be float32 [" + std::to_string(expected_scales) +
                           "] for granularity " + (per_tensor ? "per_tensor" : "per_channel") + ", found " +
                           describe_tensor(w.scales));
  if (in.has_tensor(prefix + ".bias")) {
    w.bias = in.tensor(prefix + ".bias");
    if (w.bias.scalar_type() != at::kFloat || w.bias.dim() != 1 || w.bias.size(0) != n)
      throw checkpoint_error(who + ".bias' must be float32 [" + std::to_string(n) + "], found " +
                             describe_tensor(w.bias));
    w.bias = w.bias.contiguous();
  }
  w.weight_int8 = w.weight_int8.contiguous();
  w.scales = w.scales.contiguous();
  return w;
}

int8_weights quantize_symmetric_int8(const at::Tensor& w, bool per_tensor, const std::string& non_finite_message) {
  auto amax = per_tensor ? w.abs().max().reshape({1}) : std::get<0>(w.abs().max(1));
  if (!at::isfinite(amax).all().item<bool>()) throw input_error(non_finite_message);
  auto scales = at::where(amax > 0, amax / 127.0, at::ones_like(amax)).to(at::kFloat).contiguous();
  auto q = at::round(w / scales.reshape({-1, 1})).clamp(-127, 127).to(at::kChar).contiguous();
  return {q, scales, at::Tensor()};
}

}  // namespace qexp

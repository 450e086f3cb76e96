#include "dynamic_int8.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <qexp/errors.h>
#include <qexp/int8_weights.h>
#include <qexp/plugin_helpers.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace qexp::dynamic_int8 {

const option_spec options[4] = {
    int8_options::weight_granularity("per_tensor",
                                     "Weight scales: one per tensor (what quantize_dynamic does) or one per output "
                                     "channel (symmetric s8, codes in [-127, 127])"),
    int8_options::activation_granularity("per_tensor",
                                         "Activation scale and zero point: one per call (libtorch) or one per row "
                                         "(token; reference kernel, whatever the engine)"),
    {"reduce_range", option_type::boolean, "true",
     "7-bit activations [0,127], the flag quantize_dynamic passes to linear_dynamic (qnnpack "
     "ignores it, as libtorch does)",
     nullptr},
    {"engine", option_type::choice, "onednn",
     "libtorch quantized engine running quantized::linear_dynamic, or this plugin's reference "
     "integer kernel",
     "onednn|qnnpack|reference"},
};

settings parse_settings(const option_values& values) {
  settings s;
  s.weights = int8_options::read_weight_granularity(values);
  s.activations = int8_options::read_activation_granularity(values);
  s.reduce_range = values.get_bool("reduce_range");
  s.engine = get_choice(values, options, "engine", {engine_kind::onednn, engine_kind::qnnpack, engine_kind::reference});
  return s;
}

namespace {

using packed_params_ptr = c10::intrusive_ptr<LinearPackedParamsBase>;

// The integer kernel accumulates u8 * s8 products in int32: 255 * 128 * K must stay below 2^31.
constexpr int64_t max_in_features = 65535;

bool uses_reference_kernel(const settings& s) {
  return s.engine == engine_kind::reference || s.activations == activation_granularity::per_token;
}

// PyTorch's MinMaxObserver / PerChannelMinMaxObserver for qint8 with a symmetric qscheme, written
// with the same ATen ops in the same order so that the scales (float32) are bit-identical:
// scale = max(-min(w_min, 0), max(w_max, 0)) / ((127 - -128) / 2), at least float32 epsilon.
at::Tensor weight_scales(const at::Tensor& w, weight_granularity g) {
  at::Tensor w_min, w_max;
  if (g == weight_granularity::per_tensor) {
    std::tie(w_min, w_max) = at::aminmax(w);
  } else {
    std::tie(w_min, w_max) = at::aminmax(w, 1);
  }
  auto min_neg = at::min(w_min, at::zeros_like(w_min));
  auto max_pos = at::max(w_max, at::zeros_like(w_max));
  max_pos = at::max(-min_neg, max_pos);
  auto scale = max_pos / (static_cast<double>(127 - (-128)) / 2);
  auto eps = at::full_like(scale, std::numeric_limits<float>::epsilon());
  scale = at::max(scale, eps);
  return scale.reshape({-1}).contiguous();  // [1] or [out]
}

// The libtorch quantized tensor (qint8) for int8 values and float32 scales; quantize_dynamic uses
// per_tensor_affine / per_channel_affine with zero points 0.
at::Tensor make_qweight(const at::Tensor& w_int8, const at::Tensor& scales, weight_granularity g) {
  if (g == weight_granularity::per_tensor)
    return at::_make_per_tensor_quantized_tensor(w_int8, scales.item<float>(), 0);
  return at::_make_per_channel_quantized_tensor(w_int8, scales.to(at::kDouble),
                                                at::zeros({scales.size(0)}, at::kLong), 0);
}

class qengine_guard {
 public:
  explicit qengine_guard(at::QEngine engine) : previous_(at::globalContext().qEngine()) {
    at::globalContext().setQEngine(engine);
  }
  ~qengine_guard() { at::globalContext().setQEngine(previous_); }
  qengine_guard(const qengine_guard&) = delete;
  qengine_guard& operator=(const qengine_guard&) = delete;

 private:
  at::QEngine previous_;
};

// Activation quantization parameters, as libtorch's quant_utils::ChooseQuantizationParams
// computes them (qmin 0, qmax 255 or 127), so the reference kernel with per-tensor activations
// quantizes exactly like quantized::linear_dynamic.
struct activation_params {
  double scale;
  int32_t zero_point;
};

activation_params choose_activation_params(float min, float max, bool reduce_range) {
  const int32_t qmin = 0, qmax = reduce_range ? 127 : 255;
  min = std::min(min, 0.f);
  max = std::max(max, 0.f);
  double scale = (static_cast<double>(max) - min) / (qmax - qmin);
  // An all-zero input gives scale 0: any positive scale quantizes it exactly to the zero point.
  if (static_cast<float>(scale) == 0.0f || std::isinf(1.0f / static_cast<float>(scale))) scale = 0.1;
  constexpr float small_scale_threshold = 6.1e-5f;
  if (scale < small_scale_threshold) {
    const float original = static_cast<float>(scale);
    scale = small_scale_threshold;
    if (min == 0.0f) {
      max = small_scale_threshold * (qmax - qmin);
    } else if (max == 0.0f) {
      min = -small_scale_threshold * (qmax - qmin);
    } else {
      const float amplifier = small_scale_threshold / original;
      min *= amplifier;
      max *= amplifier;
    }
  }
  const double zp_from_min = qmin - min / scale;
  const double zp_from_max = qmax - max / scale;
  const double zp_from_min_error = std::abs(qmin) - std::abs(min / scale);
  const double zp_from_max_error = std::abs(qmax) - std::abs(max / scale);
  const double initial = zp_from_min_error < zp_from_max_error ? zp_from_min : zp_from_max;
  int32_t zp = 0;
  if (initial < qmin) zp = qmin;
  else if (initial > qmax) zp = qmax;
  else zp = static_cast<int32_t>(std::nearbyint(initial));
  return {scale, zp};
}

// min and max over the finite values of [begin, end); false when a NaN or Inf was met.
bool finite_min_max(const float* begin, const float* end, float& min, float& max) {
  bool all_finite = true;
  for (const float* p = begin; p != end; ++p) {
    const float v = *p;
    if (!std::isfinite(v)) {
      all_finite = false;
      continue;
    }
    min = std::min(min, v);
    max = std::max(max, v);
  }
  return all_finite;
}

void quantize_row(const float* x, int64_t k, const activation_params& p, int32_t qmax, uint8_t* q) {
  const float inv_scale = 1.0f / static_cast<float>(p.scale);
  for (int64_t i = 0; i < k; ++i) {
    const float v = x[i];
    // Non-finite values quantize to the zero point; their rows are set to NaN afterwards.
    int32_t r = std::isfinite(v) ? static_cast<int32_t>(std::nearbyint(v * inv_scale)) + p.zero_point
                                 : p.zero_point;
    q[i] = static_cast<uint8_t>(std::clamp<int32_t>(r, 0, qmax));
  }
}

int32_t dot_u8_s8(const uint8_t* a, const int8_t* b, int64_t k) {
  int32_t sum = 0;
  for (int64_t i = 0; i < k; ++i) sum += static_cast<int32_t>(a[i]) * static_cast<int32_t>(b[i]);
  return sum;
}

class dynamic_int8_linear final : public packed_linear {
 public:
  // w_int8: [out, in] int8; scales: [1] or [out] float32; bias: [out] float32 or undefined.
  dynamic_int8_linear(const settings& s, at::Tensor w_int8, at::Tensor scales, at::Tensor bias)
      : settings_(s), w_int8_(std::move(w_int8)), scales_(std::move(scales)), bias_(std::move(bias)) {
    const int64_t n = w_int8_.size(0);
    if (uses_reference_kernel(settings_)) {
      // Zero-point compensation: sum_k (q - zp) w = sum_k q w - zp * sum_k w.
      row_sums_ = w_int8_.to(at::kInt).sum(1, /*keepdim=*/false, at::kInt).contiguous();
      channel_scales_ = scales_.numel() == 1 ? scales_.expand({n}).contiguous() : scales_;
      return;
    }
    auto qweight = make_qweight(w_int8_, scales_, settings_.weights);
    qengine_guard guard(settings_.engine == engine_kind::onednn ? at::kONEDNN : at::kQNNPACK);
    static auto prepack = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("quantized::linear_prepack", "")
                              .typed<packed_params_ptr(at::Tensor, c10::optional<at::Tensor>)>();
    packed_ = prepack.call(qweight, bias_.defined() ? c10::optional<at::Tensor>(bias_) : c10::nullopt);
  }

  at::Tensor forward(const at::Tensor& x) override {
    const int64_t k = w_int8_.size(1), n = w_int8_.size(0);
    const auto in = linear_input_of(x, k, n, "dynamic-int8");
    if (in.m() == 0) return at::empty(in.out_shape, in.rows.options());
    at::Tensor y = uses_reference_kernel(settings_) ? forward_reference(in.rows) : forward_libtorch(in.rows);
    return y.view(in.out_shape);
  }

  // Per-token ranges are each row's own; a per-tensor range is taken over the whole call.
  bool rows_independent() const override { return settings_.activations == activation_granularity::per_token; }

  std::size_t packed_bytes() const override {
    return w_int8_.nbytes() + scales_.nbytes() + (bias_.defined() ? bias_.nbytes() : 0) +
           (row_sums_.defined() ? row_sums_.nbytes() : 0);
  }

  at::Tensor dequantized_weight() const override {
    return w_int8_.to(at::kFloat) * scales_.reshape({-1, 1});
  }

  void save(tensor_writer& out, const std::string& prefix) const override {
    save_int8_weights(out, prefix, {w_int8_, scales_, bias_});
  }

 private:
  // qnnpack ignores reduce_range and warns on every call when it is set; passing false there
  // changes nothing but the log.
  bool op_reduce_range() const { return settings_.reduce_range && settings_.engine != engine_kind::qnnpack; }

  at::Tensor forward_libtorch(const at::Tensor& x2) {
    static auto linear_dynamic = c10::Dispatcher::singleton()
                                     .findSchemaOrThrow("quantized::linear_dynamic", "")
                                     .typed<at::Tensor(at::Tensor, const packed_params_ptr&, bool)>();
    // libtorch takes min/max over everything, so one NaN or Inf would poison the whole call.
    auto [x_min, x_max] = at::aminmax(x2);
    if (std::isfinite(x_min.item<float>()) && std::isfinite(x_max.item<float>()))
      return linear_dynamic.call(x2, packed_, op_reduce_range());
    auto finite = at::isfinite(x2);
    auto bad_rows = finite.logical_not().any(1);
    auto y = linear_dynamic.call(at::where(finite, x2, at::zeros({}, x2.options())), packed_,
                                 op_reduce_range());
    y.index_put_({bad_rows}, std::numeric_limits<float>::quiet_NaN());
    return y;
  }

  at::Tensor forward_reference(const at::Tensor& x2) {
    const int64_t m = x2.size(0), k = x2.size(1), n = w_int8_.size(0);
    const int32_t qmax = settings_.reduce_range ? 127 : 255;
    const float* x = x2.data_ptr<float>();
    std::vector<uint8_t> q(static_cast<std::size_t>(m * k));
    std::vector<activation_params> params(static_cast<std::size_t>(m));
    std::vector<char> row_ok(static_cast<std::size_t>(m), 1);
    if (settings_.activations == activation_granularity::per_token) {
      for (int64_t r = 0; r < m; ++r) {
        float mn = 0.f, mx = 0.f;
        row_ok[r] = finite_min_max(x + r * k, x + (r + 1) * k, mn, mx);
        params[r] = choose_activation_params(mn, mx, settings_.reduce_range);
      }
    } else {
      float mn = 0.f, mx = 0.f;
      for (int64_t r = 0; r < m; ++r) row_ok[r] = finite_min_max(x + r * k, x + (r + 1) * k, mn, mx);
      std::fill(params.begin(), params.end(), choose_activation_params(mn, mx, settings_.reduce_range));
    }
    for (int64_t r = 0; r < m; ++r) quantize_row(x + r * k, k, params[r], qmax, q.data() + r * k);

    auto y = at::empty({m, n}, x2.options());
    float* yp = y.data_ptr<float>();
    const int8_t* w = w_int8_.data_ptr<int8_t>();
    const int32_t* row_sums = row_sums_.data_ptr<int32_t>();
    const float* w_scale = channel_scales_.data_ptr<float>();
    const float* b = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
    // Blocks of output channels keep a slice of W in cache while every row passes over it.
    constexpr int64_t block = 32;
    for (int64_t n0 = 0; n0 < n; n0 += block) {
      const int64_t n1 = std::min(n, n0 + block);
      for (int64_t r = 0; r < m; ++r) {
        const uint8_t* qr = q.data() + r * k;
        const float x_scale = static_cast<float>(params[r].scale);
        for (int64_t c = n0; c < n1; ++c) {
          const int32_t acc = dot_u8_s8(qr, w + c * k, k) - params[r].zero_point * row_sums[c];
          yp[r * n + c] = static_cast<float>(acc) * (x_scale * w_scale[c]) + (b ? b[c] : 0.f);
        }
      }
    }
    for (int64_t r = 0; r < m; ++r)
      if (!row_ok[r]) std::fill(yp + r * n, yp + (r + 1) * n, std::numeric_limits<float>::quiet_NaN());
    return y;
  }

  settings settings_;
  at::Tensor w_int8_;          // [out, in] int8
  at::Tensor scales_;          // [1] or [out] float32
  at::Tensor bias_;            // [out] float32 or undefined
  packed_params_ptr packed_;   // libtorch engines: the prepacked weight (and bias)
  at::Tensor row_sums_;        // reference kernel: sum over in of the int8 weight, [out] int32
  at::Tensor channel_scales_;  // reference kernel: weight scale per output channel, [out] float32
};

void check_in_features(const std::string& name, int64_t k) {
  if (k > max_in_features)
    throw input_error("dynamic-int8: Linear '" + name + "' has " + std::to_string(k) +
                      " input features; the int32 accumulator allows at most " +
                      std::to_string(max_in_features));
}

class dynamic_int8_quantizer final : public linear_quantizer {
 public:
  explicit dynamic_int8_quantizer(const settings& s) : settings_(s) {}

  std::unique_ptr<packed_linear> prepare(const layer& l) override {
    check_layer(l, "dynamic-int8", false);  // the weight's NaN or Inf: refused below; its bias is not checked
    const int64_t n = l.weight.size(0);
    check_in_features(l.name, l.weight.size(1));
    auto w = l.weight.to(at::kFloat).contiguous();
    // A NaN or Inf would become a NaN scale and finite garbage codes: refused, as the other INT8
    // plugins refuse it.
    if (w.numel() > 0 && !at::isfinite(w).all().item<bool>())
      throw input_error("dynamic-int8: Linear '" + l.name + "': the weight holds NaN or Inf; it cannot be quantized");
    auto scales = weight_scales(w, settings_.weights);
    // quantize_per_channel / quantize_per_tensor, as quantize_dynamic's _quantize_weight calls them.
    auto qweight = settings_.weights == weight_granularity::per_tensor
                       ? at::quantize_per_tensor(w, scales.item<float>(), 0, at::kQInt8)
                       : at::quantize_per_channel(w, scales.to(at::kDouble), at::zeros({n}, at::kLong),
                                                  0, at::kQInt8);
    auto w_int8 = qweight.int_repr().contiguous();
    auto bias = l.bias.defined() ? l.bias.to(at::kFloat).contiguous() : at::Tensor();
    return std::make_unique<dynamic_int8_linear>(settings_, w_int8, scales, bias);
  }

  std::unique_ptr<packed_linear> load(const tensor_reader& in, const std::string& prefix) const override {
    auto w = load_int8_weights(in, prefix, "dynamic-int8", settings_.weights == weight_granularity::per_tensor);
    check_in_features(prefix, w.weight_int8.size(1));
    return std::make_unique<dynamic_int8_linear>(settings_, w.weight_int8, w.scales, w.bias);
  }

 private:
  settings settings_;
};

}  // namespace

std::unique_ptr<linear_quantizer> make_quantizer(const settings& s) {
  if (s.engine != engine_kind::reference && s.activations == activation_granularity::per_tensor) {
    const auto wanted = s.engine == engine_kind::onednn ? at::kONEDNN : at::kQNNPACK;
    const auto& engines = at::globalContext().supportedQEngines();
    if (std::find(engines.begin(), engines.end(), wanted) == engines.end())
      throw plugin_error(std::string("dynamic-int8: option 'engine' is '") +
                         (s.engine == engine_kind::onednn ? "onednn" : "qnnpack") +
                         "', but this libtorch has no such quantized engine; use engine: reference");
  }
  return std::make_unique<dynamic_int8_quantizer>(s);
}

}  // namespace qexp::dynamic_int8

#include "onednn_int8.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <qexp/errors.h>
#include <qexp/int8_gemm.h>
#include <qexp/int8_options.h>
#include <qexp/int8_weights.h>
#include <qexp/onednn_support.h>
#include <qexp/plugin_helpers.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "activation_kernels.h"

namespace qexp::onednn_int8 {

const option_spec options[3] = {
    int8_options::weight_granularity("per_channel"),
    int8_options::activation_granularity("per_tensor"),
    int8_options::activation_type("u8"),
};

settings parse_settings(const option_values& values) {
  settings s;
  s.weights = int8_options::read_weight_granularity(values);
  s.activations = int8_options::read_activation_granularity(values);
  s.activation_dtype = int8_options::read_activation_type(values);
  return s;
}

bool cpu_supported(const char** reason) { return onednn_int8_vnni_available(reason); }

namespace {

// Distinct sequence lengths whose primitive a layer keeps.
constexpr std::size_t max_cached_primitives = 128;

// Activation parameters: scale (and zero point for u8) covering [min(min, 0), max(max, 0)].
struct activation_params {
  float scale = 1.f;
  float inv_scale = 1.f;
  int32_t zero_point = 0;
};

activation_params choose_params(const range& r, activation_type type) {
  activation_params p;
  const float lo = std::min(r.min, 0.f), hi = std::max(r.max, 0.f);
  const float span = type == activation_type::u8 ? hi - lo : std::max(-lo, hi);
  const float scale = span / (type == activation_type::u8 ? 255.f : 127.f);
  const float inv = 1.f / scale;
  // All-zero (or all-subnormal) input: no finite reciprocal; scale 1 sends every value to code 0,
  // so the row computes to the bias instead of dividing by zero.
  if (!(scale > 0.f) || !std::isfinite(inv)) return p;
  p.scale = scale;
  p.inv_scale = inv;
  if (type == activation_type::u8)
    p.zero_point = static_cast<int32_t>(std::min(255.f, std::max(0.f, std::nearbyint(-lo * inv))));
  return p;
}

class onednn_int8_linear final : public packed_linear {
 public:
  // w_int8: [out, in] int8 in [-127, 127]; scales: [1] or [out] float32; bias [out] or undefined.
  onednn_int8_linear(const settings& s, const at::Tensor& w_int8, at::Tensor scales, at::Tensor bias)
      : settings_(s), n_(w_int8.size(0)), k_(w_int8.size(1)), scales_(std::move(scales)), bias_(std::move(bias)),
        matmul_(w_int8.data_ptr<int8_t>(), n_, k_, s.activation_dtype == activation_type::u8, max_cached_primitives) {
    channel_scales_ = scales_.numel() == 1 ? scales_.expand({n_}).contiguous() : scales_;
    w_sum_ = w_int8.to(at::kInt).sum(1, /*keepdim=*/false, at::kInt).contiguous();
  }

  at::Tensor forward(const at::Tensor& x) override {
    const auto in = linear_input_of(x, k_, n_, "onednn-int8");
    const at::Tensor& x2 = in.rows;
    const int64_t m = in.m();
    auto y = at::empty({m, n_}, x2.options());
    if (m == 0) return y.view(in.out_shape);

    const float* xp = x2.data_ptr<float>();
    thread_local std::vector<uint8_t> q;  // u8 or s8 codes, reused across calls
    q.resize(static_cast<std::size_t>(m * k_));
    uint8_t* codes = q.data();  // the lambdas below may run on other threads, with other q's
    std::vector<activation_params> params(static_cast<std::size_t>(m));
    std::vector<char> row_finite(static_cast<std::size_t>(m), 1);
    const bool per_token = settings_.activations == activation_granularity::per_token;
    const auto type = settings_.activation_dtype;

    if (!per_token) {
      range whole;
      for (int64_t r = 0; r < m; ++r) {
        range row;
        row.all_finite = int8_gemm::row_range(xp + r * k_, k_, row.min, row.max);
        whole.min = std::min(whole.min, row.min);
        whole.max = std::max(whole.max, row.max);
        row_finite[r] = row.all_finite;
      }
      std::fill(params.begin(), params.end(), choose_params(whole, type));
    }
    at::parallel_for(0, m, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (per_token) {
          range row;
          row.all_finite = int8_gemm::row_range(xp + r * k_, k_, row.min, row.max);
          row_finite[r] = row.all_finite;
          params[r] = choose_params(row, type);
        }
        if (type == activation_type::u8)
          quantize_u8(xp + r * k_, k_, params[r].inv_scale, params[r].zero_point, 255, codes + r * k_);
        else
          quantize_s8(xp + r * k_, k_, params[r].inv_scale, reinterpret_cast<int8_t*>(codes + r * k_));
      }
    });

    // The matmul writes s32 accumulators straight into y's buffer (same size as f32), and the
    // dequantize pass turns them into floats in place.
    auto* acc = static_cast<int32_t*>(y.data_ptr());
    matmul_.multiply(codes, m, acc);
    const int32_t* w_sum = w_sum_.data_ptr<int32_t>();
    const float* w_scale = channel_scales_.data_ptr<float>();
    const float* b = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
    at::parallel_for(0, m, 8, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        float* yr = reinterpret_cast<float*>(acc + r * n_);
        if (!row_finite[r]) {
          std::fill(yr, yr + n_, std::numeric_limits<float>::quiet_NaN());
          continue;
        }
        dequantize_row(acc + r * n_, n_, params[r].zero_point, w_sum, params[r].scale, w_scale, b);
      }
    });
    return y.view(in.out_shape);
  }

  // Per-token ranges are each row's own; a per-tensor range is taken over the whole call.
  bool rows_independent() const override { return settings_.activations == activation_granularity::per_token; }

  std::size_t packed_bytes() const override {
    return matmul_.packed_bytes() + scales_.nbytes() + w_sum_.nbytes() +
           (bias_.defined() ? bias_.nbytes() : 0);
  }

  at::Tensor dequantized_weight() const override {
    return plain_weight().to(at::kFloat) * scales_.reshape({-1, 1});
  }

  void save(tensor_writer& out, const std::string& prefix) const override {
    save_int8_weights(out, prefix, {plain_weight(), scales_, bias_});
  }

 private:
  // The [out, in] int8 weight, read back from the packed layout (nothing else keeps a copy).
  at::Tensor plain_weight() const {
    auto w = at::empty({n_, k_}, at::kChar);
    matmul_.unpack(w.data_ptr<int8_t>());
    return w;
  }

  settings settings_;
  int64_t n_, k_;
  at::Tensor scales_;          // [1] or [out] float32, as saved
  at::Tensor channel_scales_;  // [out] float32
  at::Tensor w_sum_;           // [out] int32: sum over in of the int8 weight, for the zero point
  at::Tensor bias_;            // [out] float32 or undefined
  onednn_s8_matmul matmul_;    // s8 weights in oneDNN's blocked layout, a primitive per row count
};

class onednn_int8_quantizer final : public linear_quantizer {
 public:
  explicit onednn_int8_quantizer(const settings& s) : settings_(s) {}

  std::unique_ptr<packed_linear> prepare(const layer& l) override {
    check_layer(l, "onednn-int8", false);  // NaN and Inf: refused by quantize_symmetric_int8
    auto w = l.weight.to(at::kFloat).contiguous();
    auto q = quantize_symmetric_int8(w, settings_.weights == weight_granularity::per_tensor,
                                     "onednn-int8: the weight holds NaN or Inf; it cannot be quantized");
    auto bias = l.bias.defined() ? l.bias.to(at::kFloat).contiguous() : at::Tensor();
    return std::make_unique<onednn_int8_linear>(settings_, q.weight_int8, q.scales, bias);
  }

  std::unique_ptr<packed_linear> load(const tensor_reader& in, const std::string& prefix) const override {
    auto w = load_int8_weights(in, prefix, "onednn-int8", settings_.weights == weight_granularity::per_tensor);
    // -128 would break the [-127, 127] contract the kernels rely on (s8 activations' compensation).
    if (w.weight_int8.numel() > 0 && w.weight_int8.min().item<int8_t>() < -127)
      throw checkpoint_error("onednn-int8: tensor '" + prefix + ".weight_int8' holds -128; expected [-127, 127]");
    return std::make_unique<onednn_int8_linear>(settings_, w.weight_int8, w.scales, w.bias);
  }

 private:
  settings settings_;
};

}  // namespace

std::unique_ptr<linear_quantizer> make_quantizer(const settings& s) {
  const char* reason = nullptr;
  if (!cpu_supported(&reason)) throw plugin_error(std::string("onednn-int8: ") + reason);
  return std::make_unique<onednn_int8_quantizer>(s);
}

}  // namespace qexp::onednn_int8

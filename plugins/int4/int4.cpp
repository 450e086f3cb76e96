#include "int4.h"

#include <ATen/ATen.h>
#include <qexp/errors.h>
#include <qexp/float_linear.h>
#include <qexp/int4_gemm.h>
#include <qexp/int8_weights.h>
#include <qexp/plugin_helpers.h>

#include <cstring>
#include <limits>
#include <vector>

namespace qexp::int4 {

const option_spec options[7] = {
    {"method", option_type::choice, "rtn",
     "How codes and scales are chosen: rtn (round to nearest per group); gptq (GPTQ on the calibration rows' "
     "X^T X); awq (activation-aware input-channel scales, searched per shared-input group)",
     "rtn|gptq|awq"},
    {"damp", option_type::number, "0.01", "gptq: added to the diagonal of X^T X, as a fraction of its mean", nullptr,
     "0.001", "1"},
    {"act_order", option_type::boolean, "false",
     "gptq: quantize columns in descending diag(X^T X) (group grids then fixed before the loop)"},
    {"group_size", option_type::choice, "128", "Input channels sharing one scale (and zero point)", "32|64|128"},
    {"symmetric", option_type::boolean, "false",
     "true: scale = max|w| / 7, codes -7..7; false: a zero point per group, [min(w, 0), max(w, 0)] on 0..15"},
    {"activations", option_type::choice, "int8",
     "int8: u8 per token at each call (W4A8 on int4_gemm); float: weight-only (dequantized weight, float matmul)",
     "int8|float"},
    {"kernel", option_type::choice, "auto",
     "auto: int4_gemm's AVX-512 VNNI kernel where the CPU has one; portable: its C++ build (same results)",
     "auto|portable"},
};

// The host has checked every value against `options` before this runs; group_size's choices are
// numbers, so its canonical text reads as one.
settings parse_settings(const option_values& values) {
  settings s;
  s.method = values.get_string("method");
  s.format.group_size = values.get_int("group_size");
  s.format.symmetric = values.get_bool("symmetric");
  s.activations = get_choice(values, options, "activations", {activation_mode::int8, activation_mode::float32});
  s.kernel = get_choice(values, options, "kernel", {kernel_choice::automatic, kernel_choice::portable});
  s.method_params.damp = values.get_number("damp");
  s.method_params.act_order = values.get_bool("act_order");
  make_method(s.method, s.method_params);  // an unknown method fails here, before any Linear
  return s;
}

double bytes_per_weight(const settings& s) {
  const double per_group = s.format.symmetric ? 4.0 : 5.0;
  const double packed = 0.5 + per_group / static_cast<double>(s.format.group_size);
  return s.activations == activation_mode::int8 ? packed : packed + 4.0;
}

namespace {

at::Tensor to_tensor(const std::vector<float>& v, std::int64_t rows, std::int64_t cols) {
  auto t = at::empty({rows, cols}, at::kFloat);
  if (!v.empty()) std::memcpy(t.data_ptr<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

class int4_linear final : public packed_linear {
 public:
  int4_linear(const settings& s, const std::string& name, const int4_gemm::quantized_weights& q, at::Tensor bias,
              at::Tensor input_scale)
      : n_(q.n), k_(q.k), fast_(s.kernel == kernel_choice::automatic), packed_(q), bias_(std::move(bias)),
        input_scale_(std::move(input_scale)) {
    if (s.activations == activation_mode::float32) {
      std::vector<float> w(static_cast<std::size_t>(n_ * k_));
      q.dequantize(w.data());
      float_ = make_float_linear(layer{name, to_tensor(w, n_, k_), bias_});
    }
  }

  at::Tensor forward(const at::Tensor& x) override {
    const auto in = linear_input_of(x, k_, n_, "int4");
    at::Tensor x2 = in.rows;
    if (input_scale_.defined()) x2 = (x2 / input_scale_).contiguous();
    const std::int64_t m = in.m();
    const auto& shape = in.out_shape;
    if (float_) return float_->forward(x2).view(shape);
    auto y = at::empty({m, n_}, x2.options());
    if (m == 0) return y.view(shape);

    const std::int64_t lda = int4_gemm::padded_k(k_);
    thread_local std::vector<std::uint8_t> codes;
    thread_local std::vector<float> scales;
    thread_local std::vector<std::int32_t> zero_points;
    thread_local std::vector<char> row_ok;
    codes.resize(static_cast<std::size_t>(m * lda));
    scales.resize(static_cast<std::size_t>(m));
    zero_points.resize(static_cast<std::size_t>(m));
    row_ok.resize(static_cast<std::size_t>(m));
    int4_gemm::quantize_rows(x2.data_ptr<float>(), m, k_, codes.data(), scales.data(), zero_points.data(),
                             row_ok.data(), fast_);
    int4_gemm::dequantize_args d;
    d.a_scale = scales.data();
    d.a_zero_point = zero_points.data();
    d.per_row = true;
    d.bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
    float* yp = y.data_ptr<float>();
    int4_gemm::multiply(codes.data(), m, packed_, d, yp, fast_);
    // Clamping made an Inf finite: rows that held a NaN or an Inf are NaN, the others untouched.
    for (std::int64_t r = 0; r < m; ++r)
      if (!row_ok[r]) std::fill(yp + r * n_, yp + (r + 1) * n_, std::numeric_limits<float>::quiet_NaN());
    return y.view(shape);
  }

  // INT8 activations are quantized row by row (quantize_rows); float activations need no range.
  bool rows_independent() const override { return true; }

  std::size_t packed_bytes() const override {
    std::size_t bytes = packed_.bytes() + (input_scale_.defined() ? input_scale_.nbytes() : 0);
    // The float Linear holds the bias too.
    return bytes + (float_ ? float_->packed_bytes() : (bias_.defined() ? bias_.nbytes() : 0));
  }

  at::Tensor dequantized_weight() const override {
    const auto q = packed_.unpack();
    std::vector<float> w(static_cast<std::size_t>(n_ * k_));
    q.dequantize(w.data());
    auto t = to_tensor(w, n_, k_);
    if (input_scale_.defined()) t = t / input_scale_.reshape({1, -1});
    return t.contiguous();
  }

  void save(tensor_writer& out, const std::string& prefix) const override {
    const auto q = packed_.unpack();
    const std::int64_t half = (k_ + 1) / 2, gs = q.groups();
    auto codes = at::zeros({n_, half}, at::kByte);
    std::uint8_t* c = codes.data_ptr<std::uint8_t>();
    for (std::int64_t row = 0; row < n_; ++row)
      for (std::int64_t j = 0; j < k_; ++j)
        c[row * half + j / 2] |= static_cast<std::uint8_t>(q.codes[static_cast<std::size_t>(row * k_ + j)] << (4 * (j % 2)));
    out.add_tensor(prefix + ".weight_int4", codes);
    out.add_tensor(prefix + ".shape", at::tensor(std::vector<std::int64_t>{n_, k_}, at::kLong));
    out.add_tensor(prefix + ".weight_scale", to_tensor(q.scales, n_, gs));
    if (!q.symmetric()) {
      auto z = at::empty({n_, gs}, at::kByte);
      if (!q.zero_points.empty()) std::memcpy(z.data_ptr<std::uint8_t>(), q.zero_points.data(), q.zero_points.size());
      out.add_tensor(prefix + ".weight_zero_point", z);
    }
    if (input_scale_.defined()) out.add_tensor(prefix + ".input_scale", input_scale_);
    if (bias_.defined()) out.add_tensor(prefix + ".bias", bias_);
  }

 private:
  std::int64_t n_, k_;
  bool fast_;
  int4_gemm::packed_weights packed_;
  at::Tensor bias_;                        // [out] float32 or undefined
  at::Tensor input_scale_;                 // [in] float32 or undefined
  std::unique_ptr<packed_linear> float_;   // activations: float
};


class int4_quantizer final : public linear_quantizer {
 public:
  explicit int4_quantizer(const settings& s) : settings_(s), method_(make_method(s.method, s.method_params)) {}

  void begin(const quantizer_context& context) override { method_->begin(context); }
  bool wants_calibration() const override { return method_->wants_calibration(); }
  void observe(const std::string& site, const at::Tensor& rows) override { method_->observe(site, rows); }
  void finish_calibration(const std::vector<std::string>& sites) override { method_->finish_calibration(sites); }

  std::unique_ptr<packed_linear> prepare(const layer& l) override {
    check_layer(l, "int4", true);
    layer plain{l.name, l.weight.to(at::kFloat).contiguous(), l.bias};
    method_result r = method_->quantize(plain, settings_.format);
    auto bias = l.bias.defined() ? l.bias.to(at::kFloat).contiguous().clone() : at::Tensor();
    return std::make_unique<int4_linear>(settings_, l.name, r.weights, bias, r.input_scale);
  }

  std::unique_ptr<packed_linear> load(const tensor_reader& in, const std::string& prefix) const override {
    const auto shape = read(in, prefix + ".shape", at::kLong, {2});
    const std::int64_t n = shape[0].item<std::int64_t>(), k = shape[1].item<std::int64_t>();
    if (n < 0 || k < 0)
      throw checkpoint_error("int4: tensor '" + prefix + ".shape' holds a negative size");
    int4_gemm::quantized_weights q;
    q.n = n;
    q.k = k;
    q.group_size = settings_.format.group_size;
    const std::int64_t half = (k + 1) / 2, gs = q.groups();
    const auto packed = read(in, prefix + ".weight_int4", at::kByte, {n, half});
    const std::uint8_t* c = packed.data_ptr<std::uint8_t>();
    q.codes.resize(static_cast<std::size_t>(n * k));
    for (std::int64_t row = 0; row < n; ++row)
      for (std::int64_t j = 0; j < k; ++j)
        q.codes[static_cast<std::size_t>(row * k + j)] = (c[row * half + j / 2] >> (4 * (j % 2))) & 0x0F;
    const auto scales = read(in, prefix + ".weight_scale", at::kFloat, {n, gs});
    q.scales.assign(scales.data_ptr<float>(), scales.data_ptr<float>() + n * gs);
    if (!settings_.format.symmetric) {
      const auto z = read(in, prefix + ".weight_zero_point", at::kByte, {n, gs});
      q.zero_points.assign(z.data_ptr<std::uint8_t>(), z.data_ptr<std::uint8_t>() + n * gs);
    }
    try {
      q.check();
    } catch (const std::invalid_argument& e) {
      throw checkpoint_error("int4: tensors '" + prefix + ".*': " + e.what());
    }
    at::Tensor input_scale;
    if (in.has_tensor(prefix + ".input_scale")) {
      input_scale = read(in, prefix + ".input_scale", at::kFloat, {k});
      if (!at::isfinite(input_scale).all().item<bool>() || !(input_scale > 0).all().item<bool>())
        throw checkpoint_error("int4: tensor '" + prefix + ".input_scale' must hold finite positive factors");
    }
    at::Tensor bias;
    if (in.has_tensor(prefix + ".bias")) bias = read(in, prefix + ".bias", at::kFloat, {n});
    return std::make_unique<int4_linear>(settings_, prefix, q, bias, input_scale);
  }

 private:
  static at::Tensor read(const tensor_reader& in, const std::string& name, at::ScalarType type,
                         std::vector<std::int64_t> sizes) {
    auto t = in.tensor(name);
    if (t.scalar_type() != type || t.sizes() != at::IntArrayRef(sizes)) {
      std::string expected;
      for (std::size_t i = 0; i < sizes.size(); ++i) expected += (i ? ", " : "") + std::to_string(sizes[i]);
      throw checkpoint_error("int4: tensor '" + name + "' must be " + std::string(c10::toString(type)) + " [" +
                             expected + "], found " + describe_tensor(t));
    }
    return t.contiguous();
  }

  settings settings_;
  std::unique_ptr<weight_method> method_;
};

}  // namespace

std::unique_ptr<linear_quantizer> make_quantizer(const settings& s) { return std::make_unique<int4_quantizer>(s); }

}  // namespace qexp::int4

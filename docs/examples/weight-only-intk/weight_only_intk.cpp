// weight-only-intk: round-to-nearest symmetric k-bit weights, one scale per output channel, float
// activations. The simplest scheme that shows the whole plugin seam in one file: options, a packed
// Linear, its checkpoint, and the entry point.
#include <qexp/plugin_api.h>
#include <qexp/plugin_helpers.h>

#include <ATen/ATen.h>

#include <string>

namespace {

const qexp::option_spec options[] = {
    // The host refuses values outside [min, max] before create() runs, and `qexp check-plugin`
    // tests both ends.
    {"bits", qexp::option_type::integer, "4", "bits per weight, 2 to 8 (codes in [-(2^(k-1)-1), 2^(k-1)-1])", nullptr,
     "2", "8"},
};

class intk_linear final : public qexp::packed_linear {
 public:
  intk_linear(at::Tensor codes, at::Tensor scales, at::Tensor bias, int bits)
      : codes_(std::move(codes)), scales_(std::move(scales)), bias_(std::move(bias)), bits_(bits),
        weight_(codes_.to(at::kFloat) * scales_.unsqueeze(1)) {}

  at::Tensor forward(const at::Tensor& x) override {
    // at::linear would throw a c10::Error; the contract asks for qexp::input_error (exit 4).
    qexp::check_input_width(x, weight_.size(1), "weight-only-intk");
    return bias_.defined() ? at::linear(x, weight_, bias_) : at::linear(x, weight_);
  }
  std::size_t packed_bytes() const override {
    // What a real kernel would store: k bits per weight, a float scale per channel, the bias.
    const std::size_t code_bits = static_cast<std::size_t>(codes_.numel()) * bits_;
    return (code_bits + 7) / 8 + scales_.nbytes() + (bias_.defined() ? bias_.nbytes() : 0);
  }
  at::Tensor dequantized_weight() const override { return weight_; }
  void save(qexp::tensor_writer& out, const std::string& prefix) const override {
    out.add_tensor(prefix + ".codes", codes_);
    out.add_tensor(prefix + ".scales", scales_);
    if (bias_.defined()) out.add_tensor(prefix + ".bias", bias_);
  }

 private:
  at::Tensor codes_;   // int8 [out, in], values within k bits
  at::Tensor scales_;  // float [out]
  at::Tensor bias_;
  int bits_;
  at::Tensor weight_;  // dequantized once: this scheme studies accuracy, not speed
};

class intk_quantizer final : public qexp::linear_quantizer {
 public:
  explicit intk_quantizer(int bits) : bits_(bits) {}

  std::unique_ptr<qexp::packed_linear> prepare(const qexp::layer& l) override {
    const double qmax = (1 << (bits_ - 1)) - 1;
    // A zero row keeps scale 1 so that it dequantizes to exact zeros instead of NaN.
    auto scales = l.weight.abs().amax({1}).div(qmax);
    scales = at::where(scales > 0, scales, at::ones_like(scales));
    auto codes = at::round(l.weight / scales.unsqueeze(1)).clamp(-qmax, qmax).to(at::kChar);
    return std::make_unique<intk_linear>(codes, scales.contiguous(), l.bias, bits_);
  }
  std::unique_ptr<qexp::packed_linear> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    at::Tensor bias = in.has_tensor(prefix + ".bias") ? in.tensor(prefix + ".bias") : at::Tensor();
    return std::make_unique<intk_linear>(in.tensor(prefix + ".codes"), in.tensor(prefix + ".scales"), bias, bits_);
  }

 private:
  int bits_;
};

int intk_supported(const char**) { return 1; }  // plain libtorch: runs anywhere

qexp::linear_quantizer* intk_create(const qexp::option_values& values, std::string* /*error*/) {
  return new intk_quantizer(static_cast<int>(values.get_int("bits")));  // in [2, 8]: the host checked
}

// What `qexp check-plugin` holds this scheme to: normalised MSE budgets of 3 / qmax^2, about 3x
// what the suite measures at every k (rounding to a grid of step max|w| / qmax; activations stay
// float, so the output error is the weight error). At 2 bits (codes -1, 0, 1) the scheme is
// hardly better than dropping the layer, and the budget of 3 bounds only gross errors.
void intk_budget(const qexp::option_values& values, qexp::conformance_budget* out) {
  const double qmax = (1 << (values.get_int("bits") - 1)) - 1;
  out->weight_nmse = 3.0 / (qmax * qmax);
  out->output_nmse = out->weight_nmse;
  out->bytes_per_weight = static_cast<double>(values.get_int("bits")) / 8;  // see packed_bytes()
}

}  // namespace

QEXP_PLUGIN("weight-only-intk", "1.0.0", "round-to-nearest k-bit per-channel weights, float activations (example)",
            options, intk_supported, intk_create, nullptr, intk_budget)

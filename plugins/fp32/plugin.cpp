// The fp32 plugin: the float reference Linear every experiment's baseline runs. It is a thin shell
// over qexp::make_float_linear so that the model's default Linear and this baseline are one code.
#include <qexp/float_linear.h>
#include <qexp/plugin_api.h>
#include <qexp/plugin_helpers.h>

namespace {

const qexp::option_spec fp32_options[] = {
    {"backend", qexp::option_type::choice, "auto",
     "Float GEMM: 'auto' (the model's own default Linear: qexp where the CPU has AVX-512, onednn "
     "elsewhere; see docs/benchmarks.md), 'qexp' (qexp's float_gemm on weights packed in 64-channel "
     "panels, streamed with prefetch), 'onednn' (oneDNN f32 matmul on blocked weights) or 'blas' "
     "(at::addmm on OpenBLAS)",
     "auto|qexp|onednn|blas"},
};

class fp32_quantizer final : public qexp::linear_quantizer {
 public:
  explicit fp32_quantizer(qexp::float_backend backend) : backend_(backend) {}
  std::unique_ptr<qexp::packed_linear> prepare(const qexp::layer& l) override {
    return qexp::make_float_linear(l, backend_);
  }
  std::unique_ptr<qexp::packed_linear> load(const qexp::tensor_reader& in,
                                            const std::string& prefix) const override {
    return qexp::load_float_linear(in, prefix, backend_);
  }

 private:
  qexp::float_backend backend_;
};

int fp32_supported(const char** /*reason*/) { return 1; }

qexp::linear_quantizer* fp32_create(const qexp::option_values& options, std::string* /*error*/) {
  // Whatever this throws, the registry reports as the factory's error (plugin_registry.cpp).
  return new fp32_quantizer(
      qexp::get_choice(options, fp32_options, "backend",
                       {qexp::default_float_backend(), qexp::float_backend::qexp, qexp::float_backend::onednn,
                        qexp::float_backend::blas}));
}

// Float32 against a float64 reference: rounding only. dequantized_weight() is the weight itself.
void fp32_budget(const qexp::option_values& /*options*/, qexp::conformance_budget* out) {
  out->output_nmse = 1e-10;
  out->weight_nmse = 0.0;
  out->bytes_per_weight = 4.0;
}

}  // namespace

QEXP_PLUGIN("fp32", "1.0.0",
            "float32 reference Linear (no quantization), the model's default Linear: qexp's own AVX-512 "
            "kernel, oneDNN's f32 matmul on blocked weights, or OpenBLAS via at::addmm",
            fp32_options, fp32_supported, fp32_create, nullptr, fp32_budget)

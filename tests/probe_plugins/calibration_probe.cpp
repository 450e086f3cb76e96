// calibration-probe: a static scheme that records what calibration gave it, so tests can check
// the host's side of the seam. Per site it counts the rows observed, sums them, and counts
// finish_calibration calls; its packed Linear rounds weights to 3 levels per row (lossy on
// purpose: in sequential mode later blocks must see different inputs) and saves the record as
// "<prefix>.record": float32 [rows observed, their sum, finish_calibration calls, groups given in
// begin, seed]. Option `fail` makes it misbehave for tests of the host: throw from prepare, pack
// NaN weights, or throw a libtorch error (with its C++ backtrace) from forward.
#include <qexp/plugin_api.h>

#include <ATen/ATen.h>

#include <limits>
#include <map>
#include <string>
#include <stdexcept>

namespace {

const qexp::option_spec options[] = {
    {"calibrate", qexp::option_type::boolean, "true", "ask for calibration"},
    {"notes", qexp::option_type::path, "", "any existing file or folder (tests the host's path resolution)"},
    {"levels", qexp::option_type::integer, "3", "unused; bounds for range tests", nullptr, "2", "15"},
    {"fail", qexp::option_type::choice, "none",
     "prepare: throw from prepare; nan: NaN weights; torch-error: a libtorch error from forward (tests of failure "
     "recording)",
     "none|prepare|nan|torch-error"},
};

struct site_record {
  std::int64_t rows = 0;
  double sum = 0;
  std::int64_t finished = 0;
};

class probe_linear final : public qexp::packed_linear {
 public:
  probe_linear(at::Tensor weight, at::Tensor bias, at::Tensor record, bool torch_error = false)
      : weight_(weight), bias_(bias), record_(record), torch_error_(torch_error) {}
  at::Tensor forward(const at::Tensor& x) override {
    if (x.size(-1) != weight_.size(1)) throw std::invalid_argument("calibration-probe: wrong input width");
    if (torch_error_) return at::matmul(x, weight_);  // [.., in] x [out, in]: a c10::Error with a backtrace
    return bias_.defined() ? at::linear(x, weight_, bias_) : at::linear(x, weight_);
  }
  std::size_t packed_bytes() const override { return weight_.nbytes(); }
  at::Tensor dequantized_weight() const override { return weight_; }
  void save(qexp::tensor_writer& out, const std::string& prefix) const override {
    out.add_tensor(prefix + ".weight", weight_);
    if (bias_.defined()) out.add_tensor(prefix + ".bias", bias_);
    out.add_tensor(prefix + ".record", record_);
  }

 private:
  at::Tensor weight_, bias_;
  at::Tensor record_;  // float64 [5]: rows, sum, finished, groups, seed
  bool torch_error_ = false;
};

class probe_quantizer final : public qexp::linear_quantizer {
 public:
  probe_quantizer(bool calibrate, std::string fail) : calibrate_(calibrate), fail_(std::move(fail)) {}
  void begin(const qexp::quantizer_context& context) override {
    seed_ = context.seed;
    groups_ = static_cast<std::int64_t>(context.groups.size());
  }
  bool wants_calibration() const override { return calibrate_; }
  void observe(const std::string& site, const at::Tensor& rows) override {
    auto& r = records_[site];
    r.rows += rows.size(0);
    r.sum += rows.to(at::kDouble).sum().item<double>();
  }
  void finish_calibration(const std::vector<std::string>& sites) override {
    for (const auto& s : sites) ++records_[s].finished;
  }
  std::unique_ptr<qexp::packed_linear> prepare(const qexp::layer& l) override {
    if (fail_ == "prepare") throw std::runtime_error("calibration-probe: asked to fail at prepare (" + l.name + ")");
    const auto& r = records_[l.name];
    auto scale = l.weight.abs().amax({1}, true).clamp_min(1e-12);
    auto weight = (at::round(l.weight / scale) * scale).contiguous();  // -1, 0 or 1 times the row's max
    if (fail_ == "nan") weight.fill_(std::numeric_limits<float>::quiet_NaN());
    auto record = at::tensor({static_cast<double>(r.rows), r.sum, static_cast<double>(r.finished),
                              static_cast<double>(groups_), static_cast<double>(seed_)},
                             at::kDouble)
                      .to(at::kFloat);
    return std::make_unique<probe_linear>(weight, l.bias, record, fail_ == "torch-error");
  }
  std::unique_ptr<qexp::packed_linear> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    auto bias = in.has_tensor(prefix + ".bias") ? in.tensor(prefix + ".bias") : at::Tensor();
    return std::make_unique<probe_linear>(in.tensor(prefix + ".weight"), bias, in.tensor(prefix + ".record"));
  }

 private:
  bool calibrate_;
  std::string fail_;
  std::uint64_t seed_ = 0;
  std::int64_t groups_ = 0;
  std::map<std::string, site_record> records_;
};

int supported(const char**) { return 1; }

qexp::linear_quantizer* create(const qexp::option_values& values, std::string*) {
  return new probe_quantizer(values.get_bool("calibrate"), values.get_string("fail"));
}

}  // namespace

QEXP_PLUGIN("calibration-probe", "1.0.0", "records the calibration it gets (tests only)", options, supported, create)

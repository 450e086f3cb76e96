// `method: awq`: activation-aware weight quantization (Lin et al. 2023), following the reference
// (mit-han-lab/llm-awq, auto_scale.py): per input channel s = s_x^alpha, s_x the mean |x| of the
// channel over the calibration tokens, normalized by sqrt(max(s) * min(s)); the weight is quantized
// as W diag(s) (rounded to nearest per group) and the input divided by s at run time, so salient
// channels (large s_x) get finer steps. alpha runs over 0, 1/20, ..., 19/20 and the one with the
// least output error ||X W^T - X (dequant(W diag(s)) diag(s)^-1)^T||^2, summed over the Linears
// that share the input (q, k, v), is kept: one s per input group, since the Linears reading one
// tensor could share the division. alpha 0 is s = 1, rtn itself, so on the searched rows awq is
// never worse than rtn.
//
// The error is measured on a uniform sample of the calibration rows (reservoir sampling, seeded by
// the experiment's seed) of at most `sample_rows` tokens: the search multiplies them 20 times per
// Linear. The mean |x| uses every row.
#include <ATen/ATen.h>
#include <qexp/errors.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "methods.h"

namespace qexp::int4 {

namespace {

constexpr std::int64_t sample_rows = 512;
constexpr int grid_points = 20;

struct site_stats {
  at::Tensor abs_sum;  // [k] double
  std::int64_t tokens = 0;
  at::Tensor sample;   // [sample_rows, k] float, the first min(tokens, sample_rows) rows valid
};

at::Tensor dequantize(const int4_gemm::quantized_weights& q) {
  auto t = at::empty({q.n, q.k}, at::kFloat);
  q.dequantize(t.data_ptr<float>());
  return t;
}

class awq_method final : public weight_method {
 public:
  bool wants_calibration() const override { return true; }

  void begin(const quantizer_context& context) override {
    rng_.seed(context.seed);
    for (const input_group& g : context.groups)
      for (const layer& m : g.members) groups_[m.name] = g.members;
  }

  void observe(const std::string& site, const at::Tensor& rows) override {
    const auto x = rows.to(at::kFloat).contiguous();
    const std::int64_t m = x.size(0), k = x.size(1);
    site_stats& st = stats_[site];
    if (!st.abs_sum.defined()) {
      st.abs_sum = at::zeros({k}, at::kDouble);
      st.sample = at::empty({sample_rows, k}, at::kFloat);
    }
    if (k != st.abs_sum.size(0)) return;  // quantize() reports the mismatch
    st.abs_sum.add_(x.abs().sum(0).to(at::kDouble));
    const float* src = x.data_ptr<float>();
    float* dst = st.sample.data_ptr<float>();
    for (std::int64_t r = 0; r < m; ++r, ++st.tokens) {
      std::int64_t slot = st.tokens;
      if (slot >= sample_rows) {
        slot = static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(st.tokens + 1));
        if (slot >= sample_rows) continue;
      }
      std::memcpy(dst + slot * k, src + r * k, static_cast<std::size_t>(k) * sizeof(float));
    }
  }

  method_result quantize(const layer& l, const weight_format& f) override {
    auto it = scales_.find(l.name);
    if (it == scales_.end()) {
      search(l, f);
      it = scales_.find(l.name);
    }
    const at::Tensor s = it->second;
    scales_.erase(it);
    if (!s.defined()) return {quantize_rtn(l.weight, f), {}};
    return {quantize_rtn((l.weight * s.reshape({1, -1})).contiguous(), f), s};
  }

 private:
  // Chooses s for l's input group and files it under every member's name; undefined: alpha 0.
  void search(const layer& l, const weight_format& f) {
    auto st = stats_.find(l.name);
    const std::int64_t k = l.weight.size(1);
    if (st == stats_.end() || st->second.tokens == 0)
      throw input_error("int4: Linear '" + l.name + "': method awq needs calibration rows for it and saw none");
    if (st->second.abs_sum.size(0) != k)
      throw input_error("int4: Linear '" + l.name + "': calibration rows have " +
                        std::to_string(st->second.abs_sum.size(0)) + " features; the layer expects " + std::to_string(k));
    const at::Tensor sx = (st->second.abs_sum / static_cast<double>(st->second.tokens)).to(at::kFloat);
    const at::Tensor x = st->second.sample.narrow(0, 0, std::min(st->second.tokens, sample_rows));
    if (!at::isfinite(sx).all().item<bool>())
      throw input_error("int4: Linear '" + l.name + "': calibration rows hold NaN or Inf (method awq)");

    std::vector<layer> members{l};
    auto g = groups_.find(l.name);
    if (g != groups_.end()) members = g->second;
    std::vector<at::Tensor> weights, reference;
    for (const layer& m : members) {
      weights.push_back(m.weight.to(at::kFloat).contiguous());
      if (weights.back().dim() != 2 || weights.back().size(1) != k)
        throw input_error("int4: Linear '" + m.name + "': shares an input with '" + l.name +
                          "' but its weight is not [out, " + std::to_string(k) + "]");
      reference.push_back(at::matmul(x, weights.back().t()));
    }

    double best_error = 0;
    at::Tensor best_s;
    for (int i = 0; i < grid_points; ++i) {
      at::Tensor s;
      if (i > 0) {
        s = sx.pow(static_cast<double>(i) / grid_points).clamp_min(1e-4);
        s = s / std::sqrt(s.max().item<double>() * s.min().item<double>());
      }
      double error = 0;
      for (std::size_t j = 0; j < weights.size(); ++j) {
        const at::Tensor& w = weights[j];
        const at::Tensor wq = s.defined() ? dequantize(quantize_rtn((w * s.reshape({1, -1})).contiguous(), f)) /
                                                s.reshape({1, -1})
                                          : dequantize(quantize_rtn(w, f));
        error += (at::matmul(x, wq.t()) - reference[j]).pow(2).sum().item<double>();
      }
      if (i == 0 || error < best_error) {
        best_error = error;
        best_s = s;
      }
    }
    for (const layer& m : members) {
      scales_[m.name] = best_s;
      stats_.erase(m.name);  // the sample is a few MB a Linear: gone once the group is decided
    }
  }

  std::mt19937_64 rng_{0};
  std::map<std::string, std::vector<layer>> groups_;  // member name -> its input group's members
  std::map<std::string, site_stats> stats_;
  std::map<std::string, at::Tensor> scales_;  // chosen for the group, not yet used by quantize()
};

}  // namespace

std::unique_ptr<weight_method> make_awq_method() { return std::make_unique<awq_method>(); }

}  // namespace qexp::int4

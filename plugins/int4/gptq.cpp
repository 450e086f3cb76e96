// `method: gptq`: GPTQ (Frantar et al. 2022), following the reference implementation
// (IST-DASLab/gptq, gptq.py fasterquant): columns quantized one at a time, each one's rounding error
// spread over the columns not yet quantized through the upper Cholesky factor of H^-1, in lazy
// blocks of 128 columns (the columns right of a block are updated once per block, by a matmul).
//
// H is accumulated as X^T X over every calibration row in float, in place (addmm_): converting
// each batch's [k, k] product to double and adding it cost 9x the product itself at k = 3072 (a
// 75 MB temporary per call, page faults), and the sums of a few hundred batches of float products
// keep far more digits than the 4-bit grid needs; the factorization runs in double. The
// reference's factor 2 / tokens is left out: GPTQ is invariant to scaling H, dampening included
// (it is a fraction of the mean diagonal).
//
// Group grids (scale, zero point):
// - without act-order, fitted when the loop reaches a group's first column, from the weights as
//   the earlier columns' updates left them (the reference fits from W too, but there a group of 32
//   inside a 128-column block is read before that block's own updates reach it; here W is updated
//   in place, so the fit always sees the current weights);
// - with act-order, the columns run in descending diag(H), so a group's columns are scattered over
//   the loop: every grid is fitted before the loop from the original-order group of the unmodified
//   weights (the reference's `static_groups`). Codes are written back at their original column,
//   so the stored layout, the kernel and the checkpoint are the same as rtn's.
#include <ATen/ATen.h>
#include <qexp/errors.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

#include "methods.h"

namespace qexp::int4 {

namespace {

constexpr std::int64_t block_size = 128;

// The grid of group `g` of every output channel, read from wt ([k, n]: input channel major) at
// input rows [begin, end).
void fit_groups(const float* wt, std::int64_t n, std::int64_t begin, std::int64_t end, bool symmetric,
                std::vector<float>& buffer, group_grid* grids /* [n] */) {
  buffer.resize(static_cast<std::size_t>(end - begin));
  for (std::int64_t row = 0; row < n; ++row) {
    for (std::int64_t c = begin; c < end; ++c) buffer[static_cast<std::size_t>(c - begin)] = wt[c * n + row];
    grids[row] = fit_grid(buffer.data(), end - begin, symmetric);
  }
}

}  // namespace

int4_gemm::quantized_weights quantize_gptq(const at::Tensor& w, const at::Tensor& h, const weight_format& f,
                                           const method_options& o) {
  const std::int64_t n = w.size(0), k = w.size(1), gs = f.group_size;
  int4_gemm::quantized_weights q;
  q.n = n;
  q.k = k;
  q.group_size = gs;
  const std::int64_t groups = q.groups();
  q.codes.resize(static_cast<std::size_t>(n * k));
  q.scales.resize(static_cast<std::size_t>(n * groups));
  if (!f.symmetric) q.zero_points.resize(q.scales.size());
  if (n == 0 || k == 0) return q;

  at::Tensor hd = h.to(at::kDouble).contiguous().clone();
  at::Tensor wt = w.to(at::kFloat).t().contiguous();  // [k, n]: one input channel is contiguous
  {
    // An input channel that is always zero (diag 0) says nothing about its weights: as the
    // reference, its diagonal becomes 1 (so H stays invertible) and its weights 0.
    double* hp = hd.data_ptr<double>();
    float* wp = wt.data_ptr<float>();
    for (std::int64_t c = 0; c < k; ++c)
      if (hp[c * k + c] == 0.0) {
        hp[c * k + c] = 1.0;
        std::fill(wp + c * n, wp + (c + 1) * n, 0.f);
      }
  }

  std::vector<group_grid> grids(static_cast<std::size_t>(n * groups));  // [groups, n]
  std::vector<float> buffer;
  auto store_group = [&](std::int64_t g) {
    for (std::int64_t row = 0; row < n; ++row) {
      const group_grid& grid = grids[static_cast<std::size_t>(g * n + row)];
      q.scales[static_cast<std::size_t>(row * groups + g)] = grid.scale;
      if (!f.symmetric) q.zero_points[static_cast<std::size_t>(row * groups + g)] = static_cast<std::uint8_t>(grid.zero_point);
    }
  };

  std::vector<std::int64_t> perm(static_cast<std::size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  if (o.act_order) {
    for (std::int64_t g = 0; g < groups; ++g) {
      fit_groups(wt.data_ptr<float>(), n, g * gs, std::min(k, (g + 1) * gs), f.symmetric, buffer,
                 grids.data() + g * n);
      store_group(g);
    }
    const double* hp = hd.data_ptr<double>();
    // Stable, so equal diagonals (dead columns) keep their order and the result is reproducible.
    std::stable_sort(perm.begin(), perm.end(), [&](std::int64_t a, std::int64_t b) { return hp[a * k + a] > hp[b * k + b]; });
    const auto index = at::tensor(perm, at::kLong);
    wt = wt.index_select(0, index).contiguous();
    hd = hd.index_select(0, index).index_select(1, index).contiguous();
  }

  hd.diagonal().add_(o.damp * hd.diagonal().mean().item<double>());
  at::Tensor u;
  try {
    u = at::linalg_cholesky(at::cholesky_inverse(at::linalg_cholesky(hd)), /*upper=*/true).to(at::kFloat).contiguous();
  } catch (const c10::Error&) {
    throw std::domain_error("H is not positive definite after dampening");
  }
  const float* hinv = u.data_ptr<float>();
  float* wp = wt.data_ptr<float>();

  std::vector<float> err(static_cast<std::size_t>(block_size * n));
  for (std::int64_t i1 = 0; i1 < k; i1 += block_size) {
    const std::int64_t i2 = std::min(k, i1 + block_size);
    for (std::int64_t c = i1; c < i2; ++c) {
      float* wc = wp + c * n;
      // Groups divide the block size and blocks start at multiples of it: a group's columns are
      // all inside this block, already carrying every earlier column's update.
      if (!o.act_order && c % gs == 0) {
        fit_groups(wp, n, c, std::min(k, c + gs), f.symmetric, buffer, grids.data() + (c / gs) * n);
        store_group(c / gs);
      }
      const std::int64_t original = perm[static_cast<std::size_t>(c)];
      const group_grid* g = grids.data() + (original / gs) * n;
      const float d = hinv[c * k + c];
      float* e = err.data() + (c - i1) * n;
      for (std::int64_t row = 0; row < n; ++row) {
        const std::uint8_t code = quantize_code(wc[row], g[row]);
        q.codes[static_cast<std::size_t>(row * k + original)] = code;
        e[row] = (wc[row] - dequantize_code(code, g[row])) / d;
      }
      for (std::int64_t j = c + 1; j < i2; ++j) {
        const float factor = hinv[c * k + j];
        float* wj = wp + j * n;
        for (std::int64_t row = 0; row < n; ++row) wj[row] -= e[row] * factor;
      }
    }
    if (i2 < k) {
      const auto block_err = at::from_blob(err.data(), {i2 - i1, n}, at::kFloat);
      wt.narrow(0, i2, k - i2).sub_(at::matmul(u.narrow(0, i1, i2 - i1).narrow(1, i2, k - i2).t(), block_err));
    }
  }
  return q;
}

namespace {

class gptq_method final : public weight_method {
 public:
  explicit gptq_method(const method_options& o) : options_(o) {}

  bool wants_calibration() const override { return true; }

  void observe(const std::string& site, const at::Tensor& rows) override {
    const auto x = rows.to(at::kFloat).contiguous();
    const std::int64_t k = x.size(1);
    at::Tensor& h = hessians_[site];
    if (!h.defined()) h = at::zeros({k, k}, at::kFloat);
    if (h.size(0) != k)
      throw input_error("int4: Linear '" + site + "': calibration rows have " + std::to_string(k) +
                        " features, earlier ones " + std::to_string(h.size(0)));
    h.addmm_(x.t(), x);
  }

  method_result quantize(const layer& l, const weight_format& f) override {
    auto it = hessians_.find(l.name);
    if (it == hessians_.end())
      throw input_error("int4: Linear '" + l.name + "': method gptq needs calibration rows for it and saw none");
    const at::Tensor h = std::move(it->second);
    hessians_.erase(it);  // a [k, k] float each: freed as soon as its Linear is done
    const std::int64_t k = l.weight.size(1);
    if (h.dim() != 2 || h.size(0) != k || h.size(1) != k)
      throw input_error("int4: Linear '" + l.name + "': calibration rows have " + std::to_string(h.size(0)) +
                        " features; the layer expects " + std::to_string(k));
    if (!at::isfinite(h).all().item<bool>())
      throw input_error("int4: Linear '" + l.name + "': calibration rows hold NaN or Inf (method gptq)");
    try {
      return {quantize_gptq(l.weight, h, f, options_), {}};
    } catch (const std::domain_error&) {
      throw input_error("int4: Linear '" + l.name +
                        "': GPTQ's Hessian is not positive definite after dampening; raise option 'damp'");
    }
  }

 private:
  method_options options_;
  std::map<std::string, at::Tensor> hessians_;  // site -> sum of X^T X, [k, k] float
};

}  // namespace

std::unique_ptr<weight_method> make_gptq_method(const method_options& o) { return std::make_unique<gptq_method>(o); }

}  // namespace qexp::int4

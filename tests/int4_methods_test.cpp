// The int4 plugin's weight methods (plugins/int4/methods.h), compiled into this test: GPTQ's codes
// against a plain column-by-column loop in double (no lazy blocks), with and without act-order;
// act-order's codes back in their original columns; GPTQ and AWQ against round to nearest on
// held-out rows of the distribution they were calibrated on (correlated inputs for GPTQ, a few
// salient channels for AWQ); AWQ's one scale vector per shared-input group.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "methods.h"

namespace {

using qexp::int4::group_grid;
using qexp::int4::method_options;
using qexp::int4::weight_format;
using qexp::int4_gemm::quantized_weights;

at::Generator generator(std::uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  return g;
}

at::Tensor dequantize(const quantized_weights& q) {
  auto t = at::empty({q.n, q.k}, at::kFloat);
  q.dequantize(t.data_ptr<float>());
  return t;
}

// ||X W^T - X Wq^T||^2 / ||X W^T||^2.
double output_error(const at::Tensor& x, const at::Tensor& w, const at::Tensor& wq) {
  const auto y = at::matmul(x.to(at::kDouble), w.to(at::kDouble).t());
  const auto yq = at::matmul(x.to(at::kDouble), wq.to(at::kDouble).t());
  return (y - yq).pow(2).sum().item<double>() / y.pow(2).sum().item<double>();
}

// Rows with strongly correlated channels: mixed Gaussians with channel scales spread over 10x.
at::Tensor correlated_rows(std::int64_t m, std::int64_t k, const at::Tensor& mixing, std::uint64_t seed) {
  auto gen = generator(seed);
  return at::matmul(at::randn({m, k}, gen), mixing).contiguous();
}

at::Tensor mixing_matrix(std::int64_t k) {
  auto gen = generator(7);
  auto a = at::randn({k, k}, gen) / std::sqrt(static_cast<double>(k)) + at::eye(k) * 0.3;
  return (a * at::linspace(0.3, 3.0, k).reshape({1, k})).contiguous();
}

// GPTQ as the paper states it, in double, one column at a time over the whole remaining matrix (no
// lazy blocks): the reference the blocked float implementation must reproduce code for code.
std::vector<std::uint8_t> reference_gptq(const at::Tensor& w_in, const at::Tensor& x, const weight_format& f,
                                         const method_options& o) {
  const std::int64_t n = w_in.size(0), k = w_in.size(1), gs = f.group_size;
  auto h = at::matmul(x.to(at::kDouble).t(), x.to(at::kDouble));
  auto w = w_in.to(at::kDouble).clone();
  for (std::int64_t c = 0; c < k; ++c)
    if (h[c][c].item<double>() == 0) {
      h[c][c] = 1.0;
      w.select(1, c).zero_();
    }
  std::vector<std::int64_t> perm(static_cast<std::size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  const std::int64_t groups = (k + gs - 1) / gs;
  std::vector<group_grid> grids(static_cast<std::size_t>(n * groups));
  auto fit = [&](const at::Tensor& wd, std::int64_t row, std::int64_t begin, std::int64_t g) {
    std::vector<float> v;
    for (std::int64_t c = begin; c < std::min(k, begin + gs); ++c) v.push_back(static_cast<float>(wd[row][c].item<double>()));
    grids[static_cast<std::size_t>(row * groups + g)] = qexp::int4::fit_grid(v.data(), static_cast<std::int64_t>(v.size()), f.symmetric);
  };
  if (o.act_order) {
    for (std::int64_t row = 0; row < n; ++row)
      for (std::int64_t g = 0; g < groups; ++g) fit(w, row, g * gs, g);
    auto d = h.diagonal().clone();
    std::stable_sort(perm.begin(), perm.end(),
                     [&](std::int64_t a, std::int64_t b) { return d[a].item<double>() > d[b].item<double>(); });
    auto index = at::tensor(perm, at::kLong);
    w = w.index_select(1, index).contiguous();
    h = h.index_select(0, index).index_select(1, index).contiguous();
  }
  h.diagonal().add_(o.damp * h.diagonal().mean().item<double>());
  const auto u = at::linalg_cholesky(at::cholesky_inverse(at::linalg_cholesky(h)), true);
  auto wa = w.accessor<double, 2>();
  auto ua = u.accessor<double, 2>();
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(n * k));
  for (std::int64_t c = 0; c < k; ++c) {
    const std::int64_t original = perm[static_cast<std::size_t>(c)];
    for (std::int64_t row = 0; row < n; ++row) {
      if (!o.act_order && c % gs == 0) fit(w, row, c, c / gs);
      const group_grid& g = grids[static_cast<std::size_t>(row * groups + original / gs)];
      const std::uint8_t code = qexp::int4::quantize_code(static_cast<float>(wa[row][c]), g);
      codes[static_cast<std::size_t>(row * k + original)] = code;
      const double err = (wa[row][c] - qexp::int4::dequantize_code(code, g)) / ua[c][c];
      for (std::int64_t j = c + 1; j < k; ++j) wa[row][j] -= err * ua[c][j];
    }
  }
  return codes;
}

TEST(Int4Gptq, CodesMatchAPlainDoubleLoopAcrossLazyBlocks) {
  // k = 300: two full 128-column blocks and a partial one, a last group of 12; one dead column.
  const std::int64_t n = 6, k = 300;
  auto gen = generator(3);
  const auto w = at::randn({n, k}, gen);
  auto x = correlated_rows(600, k, mixing_matrix(k), 4);
  x.select(1, 17).zero_();
  for (bool act_order : {false, true})
    for (std::int64_t gs : {32, 128})
      for (bool symmetric : {false, true}) {
        const weight_format f{gs, symmetric};
        method_options o;
        o.act_order = act_order;
        const auto q = qexp::int4::quantize_gptq(w, at::matmul(x.t(), x), f, o);
        const auto expected = reference_gptq(w, x, f, o);
        std::int64_t differ = 0;
        for (std::size_t i = 0; i < expected.size(); ++i) differ += q.codes[i] != expected[i];
        EXPECT_EQ(differ, 0) << "act_order " << act_order << ", group " << gs << ", symmetric " << symmetric;
        for (std::int64_t row = 0; row < n; ++row) EXPECT_EQ(q.codes[static_cast<std::size_t>(row * k + 17)], q.zero_point(row, 17 / gs));
      }
}

TEST(Int4Gptq, ActOrderPutsCodesBackInTheirColumns) {
  // With uncorrelated inputs (diagonal H) no error is carried to other columns, so GPTQ is rtn
  // whatever the column order: any slip in undoing the permutation shows as a different code.
  const std::int64_t n = 16, k = 200;
  auto gen = generator(5);
  const auto w = at::randn({n, k}, gen);
  const auto h = at::diag(at::rand({k}, gen) * 10 + 0.1);
  for (std::int64_t gs : {32, 64, 128}) {
    const weight_format f{gs, false};
    method_options o;
    o.act_order = true;
    const auto q = qexp::int4::quantize_gptq(w, h, f, o);
    const auto rtn = qexp::int4::quantize_rtn(w, f);
    EXPECT_EQ(q.codes, rtn.codes) << "group " << gs;
    EXPECT_EQ(q.scales, rtn.scales) << "group " << gs;
    EXPECT_EQ(q.zero_points, rtn.zero_points) << "group " << gs;
  }
}

TEST(Int4Gptq, BeatsRtnOnHeldOutCorrelatedRows) {
  const std::int64_t n = 64, k = 256;
  const auto mixing = mixing_matrix(k);
  auto gen = generator(11);
  const auto w = at::randn({n, k}, gen);
  for (bool act_order : {false, true})
    for (std::int64_t gs : {32, 128}) {
      auto method = qexp::int4::make_method("gptq", method_options{0.01, act_order});
      ASSERT_TRUE(method->wants_calibration());
      for (int b = 0; b < 8; ++b) method->observe("fc", correlated_rows(256, k, mixing, 100 + b));
      method->finish_calibration({"fc"});
      const weight_format f{gs, false};
      const auto r = method->quantize(qexp::layer{"fc", w, {}}, f);
      EXPECT_FALSE(r.input_scale.defined());
      const auto held_out = correlated_rows(1024, k, mixing, 999);
      const double gptq = output_error(held_out, w, dequantize(r.weights));
      const double rtn = output_error(held_out, w, dequantize(qexp::int4::quantize_rtn(w, f)));
      EXPECT_LT(gptq, 0.85 * rtn) << "act_order " << act_order << ", group " << gs << ": gptq " << gptq << ", rtn " << rtn;
    }
}

at::Tensor salient_rows(std::int64_t m, std::int64_t k, std::uint64_t seed) {
  auto gen = generator(seed);
  auto x = at::randn({m, k}, gen);
  for (std::int64_t c : {3, 50, 77, 200}) x.select(1, c).mul_(10.0);
  return x.contiguous();
}

TEST(Int4Awq, BeatsRtnWithSalientChannelsAndSharesOneScalePerGroup) {
  const std::int64_t n = 64, k = 256;
  auto gen = generator(13);
  const qexp::layer q_proj{"q", at::randn({n, k}, gen), {}}, k_proj{"k", at::randn({n, k}, gen), {}};
  for (std::int64_t gs : {32, 128}) {
    auto method = qexp::int4::make_method("awq");
    ASSERT_TRUE(method->wants_calibration());
    qexp::quantizer_context context;
    context.seed = 1;
    context.groups.push_back({"qk", {q_proj, k_proj}});
    method->begin(context);
    for (int b = 0; b < 8; ++b) {
      const auto rows = salient_rows(128, k, 200 + b);
      method->observe("q", rows);
      method->observe("k", rows);
    }
    method->finish_calibration({"q", "k"});
    const weight_format f{gs, false};
    const auto held_out = salient_rows(1024, k, 999);
    at::Tensor first_scale;
    for (const auto* l : {&q_proj, &k_proj}) {
      const auto r = method->quantize(*l, f);
      ASSERT_TRUE(r.input_scale.defined()) << l->name;
      if (!first_scale.defined())
        first_scale = r.input_scale;
      else
        EXPECT_TRUE(at::equal(first_scale, r.input_scale)) << "q and k share an input: one scale vector";
      // The salient channels get the largest factors.
      EXPECT_GT(r.input_scale[50].item<float>(), r.input_scale.median().item<float>());
      const auto wq = dequantize(r.weights) / r.input_scale.reshape({1, -1});
      const double awq = output_error(held_out, l->weight, wq);
      const double rtn = output_error(held_out, l->weight, dequantize(qexp::int4::quantize_rtn(l->weight, f)));
      EXPECT_LT(awq, 0.8 * rtn) << l->name << ", group " << gs << ": awq " << awq << ", rtn " << rtn;
    }
  }
}

TEST(Int4Methods, UnknownMethodNamesTheChoices) {
  try {
    qexp::int4::make_method("hqq");
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("rtn|gptq|awq"), std::string::npos) << e.what();
  }
}

}  // namespace

// The elementwise steps of a block (framework/src/transformer_kernels.h) against libtorch's own
// ops: residual + LayerNorm and the exact-erf GELU, on row counts and widths with tails, on large
// and offset values (the variance is taken around the mean), and on the tensors the kernels leave
// to libtorch (non-contiguous, double).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "transformer_kernels.h"

namespace {

at::Tensor randn(std::initializer_list<std::int64_t> shape, std::uint64_t seed, double scale = 1.0, double offset = 0.0) {
  auto g = at::detail::createCPUGenerator(seed);
  return at::randn(shape, g, at::kFloat) * scale + offset;
}

TEST(transformer_kernels, add_layer_norm_is_as_close_to_double_precision_as_libtorch) {
  for (std::int64_t rows : {1, 7, 33})
    for (std::int64_t d : {2, 15, 16, 17, 768}) {
      const auto x = randn({rows, d}, 1 + rows * d, 3.0, 100.0);  // offset: cancellation would show
      const auto residual = randn({rows, d}, 2 + rows * d);
      const auto gamma = randn({d}, 3), beta = randn({d}, 4);
      const auto exact = at::layer_norm((x + residual).to(at::kDouble), {d}, gamma.to(at::kDouble),
                                        beta.to(at::kDouble), 1e-12);
      const double torch_error =
          (at::layer_norm(x + residual, {d}, gamma, beta, 1e-12).to(at::kDouble) - exact).abs().max().item<double>();
      auto y = x.clone();
      qexp::detail::add_layer_norm_(y, residual, gamma, beta, 1e-12);
      const double error = (y.to(at::kDouble) - exact).abs().max().item<double>();
      EXPECT_LE(error, std::max(2 * torch_error, 2e-6)) << rows << "x" << d << ": libtorch " << torch_error;
      auto z = (x + residual).contiguous();
      qexp::detail::add_layer_norm_(z, at::Tensor(), gamma, beta, 1e-12);  // no residual
      EXPECT_TRUE(at::equal(z, y)) << rows << "x" << d;
    }
}

TEST(transformer_kernels, add_layer_norm_of_a_constant_row_is_beta) {
  auto x = at::full({3, 40}, 5.f);
  const auto gamma = randn({40}, 5), beta = randn({40}, 6);
  qexp::detail::add_layer_norm_(x, at::Tensor(), gamma, beta, 1e-12);
  EXPECT_TRUE(at::allclose(x, beta.expand({3, 40}), 0, 0));
}

TEST(transformer_kernels, gelu_matches_the_exact_erf_gelu) {
  for (std::int64_t n : {1, 15, 16, 17, 77 * 1000}) {
    const auto x = randn({n}, 7 + n, 4.0);
    auto y = x.clone();
    qexp::detail::gelu_(y);
    const auto expected = at::gelu(x.to(at::kDouble)).to(at::kFloat);
    // Abramowitz & Stegun's erf is within 1.5e-7: |GELU error| <= 0.5 |x| 1.5e-7 plus rounding.
    const auto bound = x.abs() * 1e-7 + 1e-6;
    EXPECT_TRUE(((y - expected).abs() <= bound).all().item<bool>())
        << n << ": max diff " << (y - expected).abs().max().item<double>();
  }
  // The tails: far negative goes to -0 (not NaN from exp underflow), far positive to x.
  auto t = at::tensor({-200.f, -30.f, -9.f, 0.f, 9.f, 30.f, 200.f});
  qexp::detail::gelu_(t);
  const auto expected = at::tensor({0.f, 0.f, 0.f, 0.f, 9.f, 30.f, 200.f});
  EXPECT_TRUE(at::allclose(t, expected, 1e-6, 1e-6)) << t;
  EXPECT_FALSE(at::isnan(t).any().item<bool>());
}

TEST(transformer_kernels, other_layouts_and_types_go_to_libtorch) {
  const auto base = randn({8, 32}, 9);
  auto strided = base.t();  // not contiguous
  const auto expected = at::gelu(strided);
  qexp::detail::gelu_(strided);
  EXPECT_TRUE(at::allclose(strided, expected, 0, 0));
  auto dbl = randn({4, 16}, 10).to(at::kDouble);
  const auto gamma = at::ones({16}, at::kDouble), beta = at::zeros({16}, at::kDouble);
  const auto ln = at::layer_norm(dbl, {16}, gamma, beta, 1e-5);
  qexp::detail::add_layer_norm_(dbl, at::Tensor(), gamma, beta, 1e-5);
  EXPECT_TRUE(at::allclose(dbl, ln, 0, 0));
}

}  // namespace

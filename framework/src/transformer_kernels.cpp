#include "transformer_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace qexp::detail {

namespace avx512 {  // transformer_kernels_avx512.cpp
void add_layer_norm_rows(float* x, const float* residual, const float* gamma, const float* beta, std::int64_t rows,
                         std::int64_t d, float eps);
void gelu(float* x, std::int64_t n);
}  // namespace avx512

namespace {

bool fast_available() {
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  }();
  return available;
}

bool plain_float(const at::Tensor& t) { return t.defined() && t.scalar_type() == at::kFloat && t.is_contiguous(); }

}  // namespace

void add_layer_norm_(at::Tensor& x, const at::Tensor& residual, const at::Tensor& gamma, const at::Tensor& beta,
                     double eps) {
  const std::int64_t d = x.dim() > 0 ? x.size(-1) : 0;
  const bool fast = fast_available() && plain_float(x) && (!residual.defined() || (plain_float(residual) &&
                                                                                   residual.sizes() == x.sizes())) &&
                    plain_float(gamma) && plain_float(beta) && gamma.numel() == d && beta.numel() == d && d > 0;
  if (!fast) {
    if (residual.defined()) x.add_(residual);
    x.copy_(at::layer_norm(x, {d}, gamma, beta, eps));
    return;
  }
  const std::int64_t rows = x.numel() / d;
  float* xp = x.data_ptr<float>();
  const float* rp = residual.defined() ? residual.data_ptr<float>() : nullptr;
  const float* g = gamma.data_ptr<float>();
  const float* b = beta.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](std::int64_t begin, std::int64_t end) {
    avx512::add_layer_norm_rows(xp + begin * d, rp ? rp + begin * d : nullptr, g, b, end - begin, d,
                                static_cast<float>(eps));
  });
}

void gelu_(at::Tensor& x) {
  if (!fast_available() || !plain_float(x)) {
    at::gelu_(x);
    return;
  }
  float* p = x.data_ptr<float>();
  at::parallel_for(0, x.numel(), 16384, [&](std::int64_t begin, std::int64_t end) { avx512::gelu(p + begin, end - begin); });
}

}  // namespace qexp::detail

#include <qexp/float_gemm.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "aligned_array.h"

namespace qexp::float_gemm {

namespace {

constexpr std::int64_t panel_width = 64;  // output channels per panel: four 16-lane registers

std::int64_t panel_count(std::int64_t n) { return (n + panel_width - 1) / panel_width; }

}  // namespace

bool avx512_available() {
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  }();
  return available;
}

packed_weights::packed_weights(const float* w, std::int64_t n, std::int64_t k) : n_(n), k_(k) {
  if (n < 0 || k < 0) throw std::invalid_argument("float_gemm: negative weight shape");
  panels_ = qexp::detail::aligned_array<float>(static_cast<std::size_t>(panel_count(n) * panel_width * k));
  float* out = panels_.get();
  for (std::int64_t row = 0; row < n; ++row) {
    float* panel = out + (row / panel_width) * panel_width * k;
    const std::int64_t lane = row % panel_width;
    for (std::int64_t j = 0; j < k; ++j) panel[j * panel_width + lane] = w[row * k + j];
  }
}

std::size_t packed_weights::bytes() const {
  return static_cast<std::size_t>(panel_count(n_) * panel_width * k_) * sizeof(float);
}

void packed_weights::unpack(float* w) const {
  for (std::int64_t row = 0; row < n_; ++row) {
    const float* panel = panels_.get() + (row / panel_width) * panel_width * k_;
    const std::int64_t lane = row % panel_width;
    for (std::int64_t j = 0; j < k_; ++j) w[row * k_ + j] = panel[j * panel_width + lane];
  }
}

namespace detail {

void multiply_panels_portable(const float* a, std::int64_t lda, std::int64_t m, const packed_weights& w,
                              std::int64_t p0, std::int64_t p1, const float* bias, float* y, std::int64_t ldy) {
  const std::int64_t k = w.k(), n = w.n();
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t p = p0; p < p1; ++p) {
      const float* panel = w.panels() + p * panel_width * k;
      for (std::int64_t lane = 0; lane < panel_width && p * panel_width + lane < n; ++lane) {
        const std::int64_t col = p * panel_width + lane;
        float acc = bias ? bias[col] : 0.f;
        for (std::int64_t j = 0; j < k; ++j) acc = std::fma(a[r * lda + j], panel[j * panel_width + lane], acc);
        y[r * ldy + col] = acc;
      }
    }
}

}  // namespace detail

void multiply(const float* a, std::int64_t lda, std::int64_t m, const packed_weights& w, const float* bias, float* y,
              std::int64_t ldy, bool fast) {
  const std::int64_t panels = panel_count(w.n());
  if (m <= 0 || panels == 0) return;
  const bool use_fast = fast && avx512_available();
  // Rows in chunks whose activations stay in L2 while every panel passes over them (a chunk's
  // panels are read once from memory, its rows once per panel from L2).
  constexpr std::int64_t chunk = 192;
  for (std::int64_t r0 = 0; r0 < m; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, m - r0);
    at::parallel_for(0, panels, 1, [&](std::int64_t p0, std::int64_t p1) {
      if (use_fast)
        detail::multiply_panels_avx512(a + r0 * lda, lda, rows, w, p0, p1, bias, y + r0 * ldy, ldy);
      else
        detail::multiply_panels_portable(a + r0 * lda, lda, rows, w, p0, p1, bias, y + r0 * ldy, ldy);
    });
  }
}

}  // namespace qexp::float_gemm

#include <qexp/int8_gemm.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "aligned_array.h"

namespace qexp::int8_gemm {

namespace {

using qexp::detail::aligned_array;

constexpr std::int64_t panel_width = 64;  // output channels per panel: four 16-lane registers
constexpr std::int64_t quad = 4;          // input channels per vpdpbusd lane

std::int64_t panel_count(std::int64_t n) { return (n + panel_width - 1) / panel_width; }

}  // namespace

std::int64_t padded_k(std::int64_t k) { return (k + quad - 1) / quad * quad; }

bool vnni_available() {
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }();
  return available;
}

packed_weights::packed_weights(const std::int8_t* w, std::int64_t n, std::int64_t k) : n_(n), k_(k) {
  if (n < 0 || k < 0) throw std::invalid_argument("int8_gemm: negative weight shape");
  const std::int64_t kp = padded_k(k), panels = panel_count(n);
  panels_ = aligned_array<std::int8_t>(static_cast<std::size_t>(panels * panel_width * kp));
  sums_ = aligned_array<std::int32_t>(static_cast<std::size_t>(std::max<std::int64_t>(n, 1)));
  std::int8_t* out = panels_.get();
  for (std::int64_t row = 0; row < n; ++row) {
    const std::int64_t p = row / panel_width, lane = row % panel_width;
    std::int8_t* panel = out + p * panel_width * kp;
    std::int32_t sum = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int8_t v = w[row * k + j];
      panel[(j / quad) * panel_width * quad + lane * quad + j % quad] = v;
      sum += v;
    }
    sums_.get()[row] = sum;
  }
}

std::size_t packed_weights::bytes() const {
  return static_cast<std::size_t>(panel_count(n_) * panel_width * padded_k(k_) + n_ * 4);
}

void packed_weights::unpack(std::int8_t* w) const {
  const std::int64_t kp = padded_k(k_);
  for (std::int64_t row = 0; row < n_; ++row) {
    const std::int8_t* panel = panels_.get() + (row / panel_width) * panel_width * kp;
    const std::int64_t lane = row % panel_width;
    for (std::int64_t j = 0; j < k_; ++j) w[row * k_ + j] = panel[(j / quad) * panel_width * quad + lane * quad + j % quad];
  }
}

namespace detail {

void multiply_panels_portable(const std::uint8_t* a, std::int64_t lda, std::int64_t m, const packed_weights& w,
                              std::int64_t p0, std::int64_t p1, const dequantize_args& d, std::int64_t row0,
                              float* y, std::int64_t ldy) {
  const std::int64_t kq = padded_k(w.k()) / quad, n = w.n();
  for (std::int64_t r = 0; r < m; ++r) {
    const std::int64_t g = d.per_row ? row0 + r : 0;
    const float scale = d.a_scale[g];
    const std::int32_t zp = d.a_zero_point[g];
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::int8_t* panel = w.panels() + p * panel_width * kq * quad;
      for (std::int64_t lane = 0; lane < panel_width && p * panel_width + lane < n; ++lane) {
        std::int32_t acc = 0;
        for (std::int64_t q = 0; q < kq; ++q)
          for (std::int64_t i = 0; i < quad; ++i)
            acc += static_cast<std::int32_t>(a[r * lda + q * quad + i]) *
                   static_cast<std::int32_t>(panel[q * panel_width * quad + lane * quad + i]);
        const std::int64_t col = p * panel_width + lane;
        const float f = static_cast<float>(acc - zp * w.column_sums()[col]);
        const float s = scale * d.w_scale[col];
        y[r * ldy + col] = d.bias ? std::fma(f, s, d.bias[col]) : f * s;
      }
    }
  }
}

}  // namespace detail

bool row_range(const float* x, std::int64_t k, float& mn, float& mx, bool fast) {
  if (fast && vnni_available()) return detail::row_range_avx512(x, k, mn, mx);
  bool finite = true;
  for (std::int64_t j = 0; j < k; ++j) {
    if (!std::isfinite(x[j])) {
      finite = false;
      continue;
    }
    mn = x[j] < mn ? x[j] : mn;
    mx = x[j] > mx ? x[j] : mx;
  }
  return finite;
}

void multiply(const std::uint8_t* a, std::int64_t m, const packed_weights& w, const dequantize_args& d, float* y,
              bool fast) {
  const std::int64_t panels = panel_count(w.n()), lda = padded_k(w.k());
  if (m <= 0 || panels == 0) return;
  const bool use_fast = fast && vnni_available();
  // Learn the order: tell the weights multiplied last on this thread that these came next.
  thread_local std::weak_ptr<detail::next_weights> previous;
  const auto& link = w.next_link();
  if (const auto last = previous.lock(); last && last != link) {
    last->panels.store(w.panels(), std::memory_order_relaxed);
    last->panel_count.store(panels, std::memory_order_relaxed);
    last->panel_bytes.store(panel_width * lda, std::memory_order_relaxed);
  }
  previous = link;
  const std::int8_t* after = link->panels.load(std::memory_order_relaxed);
  const std::int64_t after_count = link->panel_count.load(std::memory_order_relaxed);
  const std::int64_t after_bytes = link->panel_bytes.load(std::memory_order_relaxed);
  // Rows in chunks whose codes stay in L2 while every panel passes over them (the panels of a
  // chunk are read once from memory, the chunk's rows once per panel from L2).
  const std::int64_t chunk = std::max<std::int64_t>(24, (192 * 1024 / std::max<std::int64_t>(lda, 1)) / 6 * 6);
  for (std::int64_t r0 = 0; r0 < m; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, m - r0);
    at::parallel_for(0, panels, 1, [&](std::int64_t p0, std::int64_t p1) {
      // The last chunk's threads each warm up the share of the next weights they will likely take
      // (parallel_for splits every range alike).
      detail::prefetch_after next_start;
      if (after && r0 + chunk >= m)
        next_start = {reinterpret_cast<const char*>(after) + p0 * after_count / panels * after_bytes, after_bytes / 64};
      if (use_fast)
        detail::multiply_panels_avx512(a + r0 * lda, lda, rows, w, p0, p1, d, r0, y + r0 * w.n(), w.n(), next_start);
      else
        detail::multiply_panels_portable(a + r0 * lda, lda, rows, w, p0, p1, d, r0, y + r0 * w.n(), w.n());
    });
  }
}

}  // namespace qexp::int8_gemm

#include <qexp/int4_gemm.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "aligned_array.h"

namespace qexp::int4_gemm {

namespace {

using qexp::detail::aligned_array;

constexpr std::int64_t panel_width = 64;                // output channels per panel
constexpr std::int64_t quad = 4;                        // input channels per vpdpbusd lane
constexpr std::int64_t quad_bytes = panel_width * quad / 2;  // one quad of a panel, as nibbles

std::int64_t panel_count(std::int64_t n) { return (n + panel_width - 1) / panel_width; }

// Where channel `lane` (0..63) of a panel keeps input `i` (0..3) of a quad: the byte within the
// quad's 128 bytes, and whether in the high nibble. A chunk of 64 bytes masked with 0x0F gives
// channels 32c..32c+15 as vpdpbusd wants them, shifted right by 4 channels 32c+16..32c+31.
struct nibble_at {
  std::int64_t byte;
  bool high;
};
nibble_at locate(std::int64_t lane, std::int64_t i) {
  const std::int64_t chunk = lane / 32, half = (lane % 32) / 16, pos = lane % 16;
  return {chunk * 64 + pos * quad + i, half == 1};
}

}  // namespace

bool valid_group_size(std::int64_t group_size) {
  return group_size >= 4 && group_size <= 2048 && group_size % quad == 0;
}

std::int64_t group_count(std::int64_t k, std::int64_t group_size) {
  return group_size > 0 ? (k + group_size - 1) / group_size : 0;
}

void quantized_weights::check() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("int4_gemm: " + what); };
  if (n < 0 || k < 0) fail("negative weight shape");
  if (!valid_group_size(group_size))
    fail("group size " + std::to_string(group_size) + " is not a multiple of 4 in [4, 2048]");
  const auto cells = static_cast<std::size_t>(n * groups());
  if (codes.size() != static_cast<std::size_t>(n * k))
    fail(std::to_string(codes.size()) + " codes for a [" + std::to_string(n) + ", " + std::to_string(k) + "] weight");
  if (scales.size() != cells) fail(std::to_string(scales.size()) + " scales, expected " + std::to_string(cells));
  if (!zero_points.empty() && zero_points.size() != cells)
    fail(std::to_string(zero_points.size()) + " zero points, expected " + std::to_string(cells) + " or none");
  for (std::uint8_t c : codes)
    if (c > 15) fail("a code is " + std::to_string(c) + "; codes are in [0, 15]");
  for (std::uint8_t z : zero_points)
    if (z > 15) fail("a zero point is " + std::to_string(z) + "; zero points are in [0, 15]");
  for (float s : scales)
    if (!std::isfinite(s)) fail("a scale is not finite");
}

void quantized_weights::dequantize(float* w) const {
  const std::int64_t gs = groups();
  for (std::int64_t row = 0; row < n; ++row)
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t g = j / group_size;
      w[row * k + j] = scales[static_cast<std::size_t>(row * gs + g)] *
                       static_cast<float>(codes[static_cast<std::size_t>(row * k + j)] - zero_point(row, g));
    }
}

packed_weights::packed_weights(const quantized_weights& q) : n_(q.n), k_(q.k), group_size_(q.group_size) {
  q.check();
  const std::int64_t kq = padded_k(k_) / quad, panels = panel_count(n_), gs = groups();
  codes_ = aligned_array<std::uint8_t>(static_cast<std::size_t>(panels * kq * quad_bytes));
  scales_ = aligned_array<float>(static_cast<std::size_t>(panels * gs * panel_width));
  if (!q.symmetric()) zero_points_ = aligned_array<std::uint8_t>(static_cast<std::size_t>(panels * gs * panel_width));
  column_terms_ = aligned_array<float>(static_cast<std::size_t>(std::max<std::int64_t>(panels, 1) * panel_width));
  for (std::int64_t row = 0; row < n_; ++row) {
    const std::int64_t p = row / panel_width, lane = row % panel_width;
    std::uint8_t* panel = codes_.get() + p * kq * quad_bytes;
    for (std::int64_t j = 0; j < k_; ++j) {
      const nibble_at at = locate(lane, j % quad);
      const std::uint8_t c = q.codes[static_cast<std::size_t>(row * k_ + j)];
      panel[(j / quad) * quad_bytes + at.byte] |= static_cast<std::uint8_t>(at.high ? c << 4 : c);
    }
    // The activation zero point multiplies sum_g scale * sum_k (code - zero point): fixed here.
    double term = 0;
    for (std::int64_t g = 0; g < gs; ++g) {
      const std::size_t cell = static_cast<std::size_t>(row * gs + g);
      const std::int32_t z = q.zero_point(row, g);
      std::int64_t sum = 0;
      for (std::int64_t j = g * group_size_; j < std::min(k_, (g + 1) * group_size_); ++j)
        sum += q.codes[static_cast<std::size_t>(row * k_ + j)] - z;
      term += static_cast<double>(q.scales[cell]) * static_cast<double>(sum);
      scales_.get()[(p * gs + g) * panel_width + lane] = q.scales[cell];
      if (zero_points_) zero_points_.get()[(p * gs + g) * panel_width + lane] = static_cast<std::uint8_t>(z);
    }
    column_terms_.get()[row] = static_cast<float>(term);
  }
}

std::size_t packed_weights::bytes() const {
  const std::int64_t panels = panel_count(n_), cells = panels * groups() * panel_width;
  return static_cast<std::size_t>(panels * (padded_k(k_) / quad) * quad_bytes + cells * 4 +
                                  (zero_points_ ? cells : 0) + panels * panel_width * 4);
}

quantized_weights packed_weights::unpack() const {
  quantized_weights q;
  q.n = n_;
  q.k = k_;
  q.group_size = group_size_;
  const std::int64_t kq = padded_k(k_) / quad, gs = groups();
  q.codes.resize(static_cast<std::size_t>(n_ * k_));
  q.scales.resize(static_cast<std::size_t>(n_ * gs));
  if (zero_points_) q.zero_points.resize(static_cast<std::size_t>(n_ * gs));
  for (std::int64_t row = 0; row < n_; ++row) {
    const std::int64_t p = row / panel_width, lane = row % panel_width;
    const std::uint8_t* panel = codes_.get() + p * kq * quad_bytes;
    for (std::int64_t j = 0; j < k_; ++j) {
      const nibble_at at = locate(lane, j % quad);
      const std::uint8_t byte = panel[(j / quad) * quad_bytes + at.byte];
      q.codes[static_cast<std::size_t>(row * k_ + j)] = at.high ? byte >> 4 : byte & 0x0F;
    }
    for (std::int64_t g = 0; g < gs; ++g) {
      const std::int64_t at = (p * gs + g) * panel_width + lane;
      q.scales[static_cast<std::size_t>(row * gs + g)] = scales_.get()[at];
      if (zero_points_) q.zero_points[static_cast<std::size_t>(row * gs + g)] = zero_points_.get()[at];
    }
  }
  return q;
}

namespace detail {

void multiply_panels_portable(const std::uint8_t* a, std::int64_t lda, std::int64_t m, const float* a_sums,
                              const packed_weights& w, std::int64_t p0, std::int64_t p1, const dequantize_args& d,
                              std::int64_t row0, float* y, std::int64_t ldy) {
  const std::int64_t kq = lda / quad, n = w.n(), gs = w.groups(), gq = w.group_size() / quad;
  for (std::int64_t r = 0; r < m; ++r) {
    const std::int64_t arg = d.per_row ? row0 + r : 0;
    const float a_scale = d.a_scale[arg], a_zero = static_cast<float>(d.a_zero_point[arg]);
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::uint8_t* panel = w.codes() + p * kq * quad_bytes;
      for (std::int64_t lane = 0; lane < panel_width && p * panel_width + lane < n; ++lane) {
        float acc = 0.f;
        for (std::int64_t g = 0; g < gs; ++g) {
          std::int32_t sum = 0;
          for (std::int64_t q = g * gq; q < std::min(kq, (g + 1) * gq); ++q)
            for (std::int64_t i = 0; i < quad; ++i) {
              const nibble_at at = locate(lane, i);
              const std::uint8_t byte = panel[q * quad_bytes + at.byte];
              sum += static_cast<std::int32_t>(a[r * lda + q * quad + i]) * (at.high ? byte >> 4 : byte & 0x0F);
            }
          const std::int64_t cell = (p * gs + g) * panel_width + lane;
          const float z = static_cast<float>(w.zero_points() ? w.zero_points()[cell] : symmetric_zero_point);
          const float t = std::fma(-z, a_sums[r * gs + g], static_cast<float>(sum));
          acc = std::fma(w.scales()[cell], t, acc);
        }
        const std::int64_t col = p * panel_width + lane;
        const float u = std::fma(-a_zero, w.column_terms()[col], acc);
        y[r * ldy + col] = d.bias ? std::fma(u, a_scale, d.bias[col]) : u * a_scale;
      }
    }
  }
}

}  // namespace detail

void multiply(const std::uint8_t* a, std::int64_t m, const packed_weights& w, const dequantize_args& d, float* y,
              bool fast) {
  const std::int64_t panels = panel_count(w.n()), lda = padded_k(w.k()), gs = w.groups();
  if (m <= 0 || panels == 0) return;
  const bool use_fast = fast && vnni_available();
  // Each row's code sum per group, the term the weights' zero points multiply: integers, exact
  // in float (a group holds at most 2048 codes of at most 255).
  std::vector<float> sums(static_cast<std::size_t>(m * gs));
  const std::int64_t group_size = w.group_size();
  at::parallel_for(0, m, 16, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      float* out = sums.data() + r * gs;
      if (use_fast) {
        detail::group_sums_avx512(a + r * lda, lda, group_size, out);
        continue;
      }
      for (std::int64_t g = 0; g < gs; ++g) {
        std::int32_t s = 0;
        for (std::int64_t j = g * group_size; j < std::min(lda, (g + 1) * group_size); ++j) s += a[r * lda + j];
        out[g] = static_cast<float>(s);
      }
    }
  });
  // Rows in chunks whose codes stay in L2 while every panel passes over them (as int8_gemm).
  const std::int64_t chunk = std::max<std::int64_t>(24, (192 * 1024 / std::max<std::int64_t>(lda, 1)) / 6 * 6);
  for (std::int64_t r0 = 0; r0 < m; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, m - r0);
    const float* s = sums.data() + r0 * gs;
    at::parallel_for(0, panels, 1, [&](std::int64_t p0, std::int64_t p1) {
      if (use_fast)
        detail::multiply_panels_avx512(a + r0 * lda, lda, rows, s, w, p0, p1, d, r0, y + r0 * w.n(), w.n());
      else
        detail::multiply_panels_portable(a + r0 * lda, lda, rows, s, w, p0, p1, d, r0, y + r0 * w.n(), w.n());
    });
  }
}

namespace {

// The portable quantize pass, lane by lane as the AVX-512 one does it (same codes).
void quantize_row_portable(const float* x, std::int64_t k, float inv_scale, std::int32_t zero_point,
                           std::uint8_t* q) {
  const float lo = static_cast<float>(-zero_point), hi = static_cast<float>(255 - zero_point);
  for (std::int64_t j = 0; j < k; ++j) {
    float p = x[j] * inv_scale;
    p = p > lo ? p : lo;  // NaN to the low end, as AVX-512's max does
    p = p < hi ? p : hi;
    q[j] = static_cast<std::uint8_t>(static_cast<std::int32_t>(std::nearbyint(p)) + zero_point);
  }
}

}  // namespace

void quantize_rows(const float* x, std::int64_t m, std::int64_t k, std::uint8_t* codes, float* scales,
                   std::int32_t* zero_points, char* row_ok, bool fast) {
  const bool use_fast = fast && vnni_available();
  const std::int64_t lda = padded_k(k);
  at::parallel_for(0, m, 16, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const float* row = x + r * k;
      float lo = 0.f, hi = 0.f;
      row_ok[r] = int8_gemm::row_range(row, k, lo, hi, use_fast);
      float scale = (hi - lo) / 255.f, inv = 1.f / scale;
      std::int32_t zero_point = 0;
      // A row of zeros (or subnormals) has no finite reciprocal: scale 1 codes it all as 0.
      if (!(scale > 0.f) || !std::isfinite(inv)) {
        scale = 1.f;
        inv = 1.f;
      } else {
        zero_point = static_cast<std::int32_t>(std::min(255.f, std::max(0.f, std::nearbyint(-lo * inv))));
      }
      scales[r] = scale;
      zero_points[r] = zero_point;
      std::uint8_t* q = codes + r * lda;
      if (use_fast)
        detail::quantize_row_avx512(row, k, inv, zero_point, q);
      else
        quantize_row_portable(row, k, inv, zero_point, q);
      std::fill(q + k, q + lda, std::uint8_t{0});
    }
  });
}

}  // namespace qexp::int4_gemm

#include "kernels.h"

#include <cmath>

namespace qexp::static_int8 {

namespace avx512 {  // kernels_avx512.cpp
bool quantize_row(const float* x, std::int64_t k, const float* factor, float scalar, std::int32_t zero_point,
                  std::int32_t lo, std::int32_t hi, std::uint8_t* q);
bool range_row(const float* x, std::int64_t k, const float* inv_s, float& mn, float& mx);
void dequantize_row(std::int32_t* acc_in_y_out, std::int64_t n, std::int32_t zero_point, const std::int32_t* w_sum,
                    float x_scale, const float* w_scale, const float* bias);
}  // namespace avx512

bool fast_kernels_available() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

bool quantize_row(bool fast, const float* x, std::int64_t k, const quantize_args& a, std::uint8_t* q) {
  if (fast) return avx512::quantize_row(x, k, a.factor, a.scalar, a.zero_point, a.lo, a.hi, q);
  // The same operations lane by lane: multiply, clamp (NaN to the low end, as max/min do in
  // AVX-512), round half to even (nearbyint in the default rounding mode), add the zero point.
  const float lo = static_cast<float>(a.lo - a.zero_point), hi = static_cast<float>(a.hi - a.zero_point);
  bool finite = true;
  for (std::int64_t j = 0; j < k; ++j) {
    finite &= std::isfinite(x[j]);
    float p = x[j] * (a.factor ? a.factor[j] : a.scalar);
    p = p > lo ? p : lo;
    p = p < hi ? p : hi;
    q[j] = static_cast<std::uint8_t>(static_cast<std::int32_t>(std::nearbyint(p)) + a.zero_point);
  }
  return finite;
}

bool range_row(bool fast, const float* x, std::int64_t k, const float* inv_s, float& mn, float& mx) {
  if (fast) return avx512::range_row(x, k, inv_s, mn, mx);
  bool finite = true;
  for (std::int64_t j = 0; j < k; ++j) {
    if (!std::isfinite(x[j])) {
      finite = false;
      continue;
    }
    const float v = inv_s ? x[j] * inv_s[j] : x[j];
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  return finite;
}

void dequantize_row(bool fast, std::int32_t* acc_in_y_out, std::int64_t n, std::int32_t zero_point,
                    const std::int32_t* w_sum, float x_scale, const float* w_scale, const float* bias) {
  if (fast) return avx512::dequantize_row(acc_in_y_out, n, zero_point, w_sum, x_scale, w_scale, bias);
  float* y = reinterpret_cast<float*>(acc_in_y_out);
  for (std::int64_t j = 0; j < n; ++j) {
    const float f = static_cast<float>(acc_in_y_out[j] - zero_point * w_sum[j]);
    const float scale = x_scale * w_scale[j];
    y[j] = bias ? std::fma(f, scale, bias[j]) : f * scale;
  }
}

}  // namespace qexp::static_int8

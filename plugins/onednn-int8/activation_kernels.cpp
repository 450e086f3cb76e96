#include "activation_kernels.h"

// GCC 12 reports its own _mm512_undefined_* placeholders (used by the masked loads and the
// reductions) as uninitialized once inlined here: a known false positive of the intrinsics headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

// Everything in this file runs only on CPUs that cpu_supported() accepted (AVX-512 F/BW/DQ/VL
// and VNNI), so it is compiled for them whatever the rest of the build targets.
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl")

namespace qexp::onednn_int8 {

namespace {

inline __mmask16 tail_mask(int64_t remaining) {
  return static_cast<__mmask16>((1u << remaining) - 1u);
}

}  // namespace

// cvtps_epi32 rounds half to even (the default MXCSR mode) and maps NaN, Inf and out-of-range
// values to INT32_MIN, which the clamp sends to the lowest code.
void quantize_u8(const float* x, int64_t n, float inv_scale, int32_t zero_point, int32_t hi, uint8_t* q) {
  const __m512 vs = _mm512_set1_ps(inv_scale);
  const __m512i vzp = _mm512_set1_epi32(zero_point);
  const __m512i vlo = _mm512_setzero_si512(), vhi = _mm512_set1_epi32(hi);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs));
    // Saturating add: INT32_MIN + zero_point must not wrap around to a large positive value.
    v = _mm512_max_epi32(_mm512_add_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(-65536)), vzp), vlo);
    v = _mm512_min_epi32(v, vhi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(v));
  }
  if (i < n) {
    const __mmask16 live = tail_mask(n - i);
    __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(live, x + i), vs));
    v = _mm512_max_epi32(_mm512_add_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(-65536)), vzp), vlo);
    v = _mm512_min_epi32(v, vhi);
    _mm512_mask_cvtepi32_storeu_epi8(q + i, live, v);
  }
}

void quantize_s8(const float* x, int64_t n, float inv_scale, int8_t* q) {
  const __m512 vs = _mm512_set1_ps(inv_scale);
  const __m512i vlo = _mm512_set1_epi32(-127), vhi = _mm512_set1_epi32(127);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs));
    v = _mm512_min_epi32(_mm512_max_epi32(v, vlo), vhi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(v));
  }
  if (i < n) {
    const __mmask16 live = tail_mask(n - i);
    __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(live, x + i), vs));
    v = _mm512_min_epi32(_mm512_max_epi32(v, vlo), vhi);
    _mm512_mask_cvtepi32_storeu_epi8(q + i, live, v);
  }
}

void dequantize_row(int32_t* acc_in_y_out, int64_t n, int32_t zero_point, const int32_t* w_sum,
                    float x_scale, const float* w_scale, const float* bias) {
  float* y = reinterpret_cast<float*>(acc_in_y_out);
  const __m512 vxs = _mm512_set1_ps(x_scale);
  const __m512i vzp = _mm512_set1_epi32(zero_point);
  auto step = [&](int64_t j, __mmask16 live) {
    __m512i acc = _mm512_maskz_loadu_epi32(live, acc_in_y_out + j);
    if (zero_point != 0)
      acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(vzp, _mm512_maskz_loadu_epi32(live, w_sum + j)));
    const __m512 scale = _mm512_mul_ps(vxs, _mm512_maskz_loadu_ps(live, w_scale + j));
    const __m512 f = _mm512_cvtepi32_ps(acc);
    const __m512 out = bias ? _mm512_fmadd_ps(f, scale, _mm512_maskz_loadu_ps(live, bias + j))
                            : _mm512_mul_ps(f, scale);
    _mm512_mask_storeu_ps(y + j, live, out);
  };
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) step(j, static_cast<__mmask16>(0xffff));
  if (j < n) step(j, tail_mask(n - j));
}

}  // namespace qexp::onednn_int8

// The AVX-512 builds of transformer_kernels.h, called only where the CPU has AVX-512 F and DQ;
// the whole file is compiled for it. No standard-library templates in here (an instantiation
// compiled for AVX-512 could be the one the linker keeps for everyone).
#include <cstdint>

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#pragma GCC target("avx512f,avx512dq,fma")

namespace qexp::detail::avx512 {

namespace {

inline __mmask16 tail_mask(std::int64_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << remaining) - 1u);
}

// exp(v) for v <= 0: v = n ln2 + r, |r| <= ln2 / 2, e^r by its Taylor polynomial to degree 6
// (relative error below 2e-8 there), times 2^n by scalef; below -87.3 the result underflows to 0.
inline __m512 exp_nonpositive(__m512 v) {
  v = _mm512_max_ps(v, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), v);  // ln2, high part
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);  // ln2, low part
  __m512 p = _mm512_set1_ps(1.f / 720.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

// GELU(x) = x/2 (1 + erf(x / sqrt 2)), erf(z) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^{-z^2}
// for z >= 0, t = 1 / (1 + p z); odd in z.
inline __m512 gelu16(__m512 x) {
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
  const __m512 az = _mm512_abs_ps(z);
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_fmadd_ps(az, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.f)));
  __m512 poly = _mm512_set1_ps(1.061405429f);
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
  poly = _mm512_mul_ps(poly, t);
  const __m512 e = exp_nonpositive(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az));
  __m512 erf_abs = _mm512_fnmadd_ps(poly, e, _mm512_set1_ps(1.f));
  // erf(z) takes z's sign: copy it onto |erf|.
  const __m512 sign = _mm512_and_ps(z, _mm512_set1_ps(-0.f));
  const __m512 erf = _mm512_or_ps(erf_abs, sign);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(erf, _mm512_set1_ps(1.f)));
}

}  // namespace

void gelu(float* x, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, gelu16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void add_layer_norm_rows(float* x, const float* residual, const float* gamma, const float* beta, std::int64_t rows,
                         std::int64_t d, float eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = x + r * d;
    const float* res = residual ? residual + r * d : nullptr;
    // Pass 1: add the residual (stored back) and sum the differences to the row's first value
    // (a shift keeps the sum small: rows far from 0 would lose the mean's low bits otherwise).
    const float shift = res ? row[0] + res[0] : row[0];
    const __m512 vshift = _mm512_set1_ps(shift);
    __m512 sum = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < d; j += 16) {
      const __mmask16 m = tail_mask(d - j);
      __m512 v = _mm512_maskz_loadu_ps(m, row + j);
      if (res) {
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + j));
        _mm512_mask_storeu_ps(row + j, m, v);
      }
      sum = _mm512_add_ps(sum, _mm512_maskz_sub_ps(m, v, vshift));
    }
    const float mean = shift + _mm512_reduce_add_ps(sum) / static_cast<float>(d);
    // Pass 2: the variance around the mean (two passes: no cancellation when the mean is large).
    const __m512 vmean = _mm512_set1_ps(mean);
    __m512 sq = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < d; j += 16) {
      const __mmask16 m = tail_mask(d - j);
      const __m512 c = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, row + j), vmean);
      sq = _mm512_fmadd_ps(c, c, sq);
    }
    const float var = _mm512_reduce_add_ps(sq) / static_cast<float>(d);
    const __m512 rstd = _mm512_set1_ps(1.f / __builtin_sqrtf(var + eps));
    // Pass 3: normalise, scale, shift.
    for (std::int64_t j = 0; j < d; j += 16) {
      const __mmask16 m = tail_mask(d - j);
      const __m512 c = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + j), vmean), rstd);
      const __m512 y = _mm512_fmadd_ps(c, _mm512_maskz_loadu_ps(m, gamma + j), _mm512_maskz_loadu_ps(m, beta + j));
      _mm512_mask_storeu_ps(row + j, m, y);
    }
  }
}

}  // namespace qexp::detail::avx512

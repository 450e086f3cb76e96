// The AVX-512 builds of the passes declared in kernels.h. Only called after
// fast_kernels_available() said yes, so the whole file is compiled for AVX-512 F/BW/DQ/VL whatever
// the rest of the build targets. No standard-library templates in here: an instantiation
// compiled for AVX-512 could be the one the linker keeps for the rest of the plugin.
#include <cstdint>

// GCC 12 reports its own _mm512_undefined_* placeholders (used by the masked loads and the
// reductions) as uninitialized once inlined here: a known false positive of the intrinsics headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl")

namespace qexp::static_int8::avx512 {

namespace {

// fpclass categories: QNaN (0x01), +Inf (0x08), -Inf (0x10), SNaN (0x80).
constexpr int non_finite_classes = 0x01 | 0x08 | 0x10 | 0x80;

inline __mmask16 tail_mask(std::int64_t remaining) { return static_cast<__mmask16>((1u << remaining) - 1u); }

template <bool per_channel>
inline bool quantize(const float* x, std::int64_t k, const float* factor, float scalar, std::int32_t zero_point,
                     std::int32_t lo, std::int32_t hi, std::uint8_t* q) {
  const __m512 vscalar = _mm512_set1_ps(scalar);
  const __m512 vlo = _mm512_set1_ps(static_cast<float>(lo - zero_point));
  const __m512 vhi = _mm512_set1_ps(static_cast<float>(hi - zero_point));
  const __m512i vzp = _mm512_set1_epi32(zero_point);
  __mmask16 bad = 0;
  // max/min return their second operand for a NaN, so a NaN lane lands on the low code.
  auto codes = [&](__m512 v, __m512 f) {
    __m512 p = _mm512_mul_ps(v, f);
    p = _mm512_min_ps(_mm512_max_ps(p, vlo), vhi);
    return _mm512_add_epi32(_mm512_cvtps_epi32(p), vzp);  // round half to even (MXCSR default)
  };
  std::int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    bad |= _mm512_fpclass_ps_mask(v, non_finite_classes);
    const __m512 f = per_channel ? _mm512_loadu_ps(factor + i) : vscalar;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(codes(v, f)));
  }
  if (i < k) {
    const __mmask16 live = tail_mask(k - i);
    const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
    bad |= _mm512_mask_fpclass_ps_mask(live, v, non_finite_classes);
    const __m512 f = per_channel ? _mm512_maskz_loadu_ps(live, factor + i) : vscalar;
    _mm512_mask_cvtepi32_storeu_epi8(q + i, live, codes(v, f));
  }
  return bad == 0;
}

template <bool smoothed>
inline bool range(const float* x, std::int64_t k, const float* inv_s, float& mn, float& mx) {
  __m512 vmin = _mm512_set1_ps(mn), vmax = _mm512_set1_ps(mx);
  __mmask16 bad_seen = 0;
  auto widen = [&](__m512 v, __m512 s, __mmask16 ok) {
    if (smoothed) v = _mm512_mul_ps(v, s);
    vmin = _mm512_mask_min_ps(vmin, ok, vmin, v);
    vmax = _mm512_mask_max_ps(vmax, ok, vmax, v);
  };
  std::int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __mmask16 bad = _mm512_fpclass_ps_mask(v, non_finite_classes);
    bad_seen |= bad;
    widen(v, smoothed ? _mm512_loadu_ps(inv_s + i) : v, static_cast<__mmask16>(~bad));
  }
  if (i < k) {
    const __mmask16 live = tail_mask(k - i);
    const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
    const __mmask16 bad = _mm512_mask_fpclass_ps_mask(live, v, non_finite_classes);
    bad_seen |= bad;
    widen(v, smoothed ? _mm512_maskz_loadu_ps(live, inv_s + i) : v, static_cast<__mmask16>(live & ~bad));
  }
  mn = _mm512_reduce_min_ps(vmin);
  mx = _mm512_reduce_max_ps(vmax);
  return bad_seen == 0;
}

}  // namespace

bool quantize_row(const float* x, std::int64_t k, const float* factor, float scalar, std::int32_t zero_point,
                  std::int32_t lo, std::int32_t hi, std::uint8_t* q) {
  return factor ? quantize<true>(x, k, factor, scalar, zero_point, lo, hi, q)
                : quantize<false>(x, k, factor, scalar, zero_point, lo, hi, q);
}

bool range_row(const float* x, std::int64_t k, const float* inv_s, float& mn, float& mx) {
  return inv_s ? range<true>(x, k, inv_s, mn, mx) : range<false>(x, k, inv_s, mn, mx);
}

void dequantize_row(std::int32_t* acc_in_y_out, std::int64_t n, std::int32_t zero_point, const std::int32_t* w_sum,
                    float x_scale, const float* w_scale, const float* bias) {
  float* y = reinterpret_cast<float*>(acc_in_y_out);
  const __m512 vxs = _mm512_set1_ps(x_scale);
  const __m512i vzp = _mm512_set1_epi32(zero_point);
  auto step = [&](std::int64_t j, __mmask16 live) {
    __m512i acc = _mm512_maskz_loadu_epi32(live, acc_in_y_out + j);
    if (zero_point != 0)
      acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(vzp, _mm512_maskz_loadu_epi32(live, w_sum + j)));
    const __m512 scale = _mm512_mul_ps(vxs, _mm512_maskz_loadu_ps(live, w_scale + j));
    const __m512 f = _mm512_cvtepi32_ps(acc);
    const __m512 out = bias ? _mm512_fmadd_ps(f, scale, _mm512_maskz_loadu_ps(live, bias + j)) : _mm512_mul_ps(f, scale);
    _mm512_mask_storeu_ps(y + j, live, out);
  };
  std::int64_t j = 0;
  for (; j + 16 <= n; j += 16) step(j, static_cast<__mmask16>(0xffff));
  if (j < n) step(j, tail_mask(n - j));
}

}  // namespace qexp::static_int8::avx512

// The AVX-512 VNNI kernel of int4_gemm.h and its activation pass. Called only after
// vnni_available() said yes, so the whole file is compiled for AVX-512 + VNNI whatever the rest of
// the build targets; no standard-library templates in here (an instantiation compiled for AVX-512
// could be the one the linker keeps for everyone).
#include <qexp/int4_gemm.h>

#include <cstdint>

#include "row_blocks.h"
#include "vnni_kernel.h"

namespace qexp::int4_gemm::detail {

namespace {

constexpr std::int64_t panel_width = 64;
constexpr std::int64_t quad_bytes = 128;  // one k-quad of a panel: 64 channels x 4 nibbles

using qexp::detail::vnni::multiply_quad;
using qexp::detail::vnni::tail_mask;

// One quad (4 input channels) of a panel against MR rows: two 64-byte loads, four registers of
// 16 channels x 4 bytes once masked or shifted, 4 x MR vpdpbusd.
template <int MR>
__attribute__((always_inline)) inline void quad(__m512i (&c)[MR][4], const std::uint8_t* a, std::int64_t lda,
                                                std::int64_t q, const std::uint8_t* b, __m512i low) {
  const __m512i v0 = _mm512_load_si512(b);
  const __m512i v1 = _mm512_load_si512(b + 64);
  const __m512i w0 = _mm512_and_si512(v0, low);
  const __m512i w1 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), low);
  const __m512i w2 = _mm512_and_si512(v1, low);
  const __m512i w3 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), low);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) multiply_quad(c[r], a + r * lda + q * 4, w0, w1, w2, w3);
}

// MR rows of a times one panel. The s32 sums run over the whole K, and a group's sum is the
// difference from where the group began (zeroing them per group made GCC 12 copy every
// accumulator twice per quad); as each group ends its sum becomes float, loses the zero-point term
// and is scaled into MR x 4 float accumulators; after the last group come the activation zero
// point, scale and bias. With one or two rows, the quads alternate between two sets of sums: a
// vpdpbusd waits for the previous one into the same register, and four or eight chains are too
// few to hide that. No software prefetch: int8_gemm's (the next panel asked into L2 across the
// row blocks) made this kernel 15 to 25% slower at M = 1 in linear_bench; panels are contiguous and
// the hardware prefetcher follows them.
template <int MR>
void block(const std::uint8_t* a, std::int64_t lda, const float* a_sums, const packed_weights& w, std::int64_t p,
           const dequantize_args& d, std::int64_t row0, float* y, std::int64_t ldy) {
  constexpr int chains = MR <= 2 ? 2 : 1;
  const std::int64_t kq = lda / 4, gs = w.groups(), gq = w.group_size() / 4, n = w.n();
  const std::uint8_t* panel = w.codes() + p * kq * quad_bytes;
  const float* scales = w.scales() + p * gs * panel_width;
  const std::uint8_t* zeros = w.zero_points() ? w.zero_points() + p * gs * panel_width : nullptr;
  const __m512i low = _mm512_set1_epi8(0x0F);
  const __m512 symmetric_zero = _mm512_set1_ps(static_cast<float>(symmetric_zero_point));

  __m512 f[MR][4];
  __m512i c[chains][MR][4], seen[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      f[r][j] = _mm512_setzero_ps();
      seen[r][j] = _mm512_setzero_si512();
#pragma GCC unroll 2
      for (int s = 0; s < chains; ++s) c[s][r][j] = _mm512_setzero_si512();
    }

  for (std::int64_t g = 0; g < gs; ++g) {
    const std::int64_t q_end = (g + 1) * gq < kq ? (g + 1) * gq : kq;
    std::int64_t q = g * gq;
    for (; q + chains <= q_end; q += chains) {
#pragma GCC unroll 2
      for (int s = 0; s < chains; ++s) quad<MR>(c[s], a, lda, q + s, panel + (q + s) * quad_bytes, low);
    }
    for (; q < q_end; ++q) quad<MR>(c[0], a, lda, q, panel + q * quad_bytes, low);
    // The group ends: t = float(sum) - zero_point * A (exact), acc = fma(scale, t, acc).
    const float* sg = scales + g * panel_width;
    const std::uint8_t* zg = zeros ? zeros + g * panel_width : nullptr;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512 s = _mm512_load_ps(sg + 16 * j);
      const __m512 z =
          zg ? _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(zg + 16 * j))))
             : symmetric_zero;
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512i total = chains == 2 ? _mm512_add_epi32(c[0][r][j], c[chains - 1][r][j]) : c[0][r][j];
        const __m512i sum = _mm512_sub_epi32(total, seen[r][j]);
        seen[r][j] = total;
        const __m512 t = _mm512_fnmadd_ps(z, _mm512_set1_ps(a_sums[r * gs + g]), _mm512_cvtepi32_ps(sum));
        f[r][j] = _mm512_fmadd_ps(s, t, f[r][j]);
      }
    }
  }

#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) {
    const std::int64_t arg = d.per_row ? row0 + r : 0;
    const __m512 a_zero = _mm512_set1_ps(static_cast<float>(d.a_zero_point[arg]));
    const __m512 a_scale = _mm512_set1_ps(d.a_scale[arg]);
    float* out = y + r * ldy;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const std::int64_t col = p * panel_width + 16 * j;
      if (col >= n) break;
      const __mmask16 mask = tail_mask(n - col);
      const __m512 u = _mm512_fnmadd_ps(a_zero, _mm512_load_ps(w.column_terms() + col), f[r][j]);
      const __m512 v = d.bias ? _mm512_fmadd_ps(u, a_scale, _mm512_maskz_loadu_ps(mask, d.bias + col))
                              : _mm512_mul_ps(u, a_scale);
      _mm512_mask_storeu_ps(out + col, mask, v);
    }
  }
}

using block_fn = void (*)(const std::uint8_t*, std::int64_t, const float*, const packed_weights&, std::int64_t,
                          const dequantize_args&, std::int64_t, float*, std::int64_t);
constexpr block_fn blocks[5] = {nullptr, block<1>, block<2>, block<3>, block<4>};
constexpr std::int64_t max_rows = 4;  // measured: 3 to 6 within 5% of each other at M = 8 to 128

}  // namespace

void multiply_panels_avx512(const std::uint8_t* a, std::int64_t lda, std::int64_t m, const float* a_sums,
                            const packed_weights& w, std::int64_t p0, std::int64_t p1, const dequantize_args& d,
                            std::int64_t row0, float* y, std::int64_t ldy) {
  const std::int64_t gs = w.groups();
  // Rows in blocks of at most 4, as even as possible (25 rows: four blocks of 4, three of 3).
  for (std::int64_t p = p0; p < p1; ++p)
    qexp::detail::for_each_row_block(m, max_rows, 0, [&](std::int64_t r, std::int64_t rows, std::int64_t, std::int64_t) {
      blocks[rows](a + r * lda, lda, a_sums + r * gs, w, p, d, row0 + r, y + r * ldy, ldy);
    });
}

void group_sums_avx512(const std::uint8_t* a, std::int64_t lda, std::int64_t group_size, float* sums) {
  std::int64_t g = 0;
  for (std::int64_t begin = 0; begin < lda; begin += group_size, ++g) {
    const std::int64_t end = begin + group_size < lda ? begin + group_size : lda;
    __m512i acc = _mm512_setzero_si512();
    for (std::int64_t j = begin; j < end; j += 64) {
      const std::int64_t live = end - j;
      const __mmask64 mask = live >= 64 ? ~__mmask64{0} : (__mmask64{1} << live) - 1;
      acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(mask, a + j), _mm512_setzero_si512()));
    }
    sums[g] = static_cast<float>(_mm512_reduce_add_epi64(acc));
  }
}

// The clamp happens in float before rounding (max returns its second operand for a NaN, so NaN
// lands on the low end); cvtps rounds half to even like nearbyint in the default mode.
void quantize_row_avx512(const float* x, std::int64_t k, float inv_scale, std::int32_t zero_point, std::uint8_t* q) {
  const __m512 vs = _mm512_set1_ps(inv_scale);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(-zero_point));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(255 - zero_point));
  const __m512i zp = _mm512_set1_epi32(zero_point);
  for (std::int64_t i = 0; i < k; i += 16) {
    const __mmask16 live = tail_mask(k - i);
    __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(live, x + i), vs);
    p = _mm512_min_ps(_mm512_max_ps(p, lo), hi);
    const __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(p), zp);
    _mm512_mask_cvtepi32_storeu_epi8(q + i, live, v);
  }
}

}  // namespace qexp::int4_gemm::detail

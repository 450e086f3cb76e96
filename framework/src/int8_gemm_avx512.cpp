// The AVX-512 VNNI kernel of int8_gemm.h. Called only after vnni_available() said yes, so the
// whole file is compiled for AVX-512 + VNNI whatever the rest of the build targets; no
// standard-library templates in here (an instantiation compiled for AVX-512 could be the one the
// linker keeps for everyone).
#include <qexp/int8_gemm.h>

#include <cstdint>

#include "row_blocks.h"
#include "vnni_kernel.h"

namespace qexp::int8_gemm::detail {

namespace {

constexpr std::int64_t panel_width = 64;
constexpr std::int64_t quad_bytes = panel_width * 4;  // one k-quad of a panel: 4 registers

using qexp::detail::for_each_row_block;
using qexp::detail::vnni::multiply_quad;
using qexp::detail::vnni::tail_mask;

// MR rows of a (row stride lda) times one panel: MR x 4 accumulators in registers over the whole
// K, then dequantized straight into y. Meanwhile `pf_lines` cache lines from `pf` on (this
// block's share of the next panel) are asked into L2, spread evenly over the k loop: the next
// panel arrives from memory while this one is multiplied.
template <int MR>
void block(const std::uint8_t* a, std::int64_t lda, std::int64_t kq, const std::int8_t* panel,
           const char* pf, std::int64_t pf_lines, const dequantize_args& d, std::int64_t row0,
           const std::int32_t* sums, std::int64_t col0, std::int64_t n, float* y, std::int64_t ldy) {
  __m512i c[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) c[r][j] = _mm512_setzero_si512();

  const std::int8_t* b = panel;
  std::int64_t pf_credit = 0;
  for (std::int64_t q = 0; q < kq; ++q, b += quad_bytes) {
    for (pf_credit += pf_lines; pf_credit >= kq; pf_credit -= kq, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    const __m512i b0 = _mm512_load_si512(b);
    const __m512i b1 = _mm512_load_si512(b + 64);
    const __m512i b2 = _mm512_load_si512(b + 128);
    const __m512i b3 = _mm512_load_si512(b + 192);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) multiply_quad(c[r], a + r * lda + q * 4, b0, b1, b2, b3);
  }

#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    const std::int64_t g = d.per_row ? row0 + r : 0;
    const __m512i zp = _mm512_set1_epi32(d.a_zero_point[g]);
    const __m512 scale = _mm512_set1_ps(d.a_scale[g]);
    float* out = y + r * ldy;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const std::int64_t col = col0 + 16 * j;
      if (col >= n) break;
      const __mmask16 mask = tail_mask(n - col);
      const __m512i s = _mm512_maskz_loadu_epi32(mask, sums + col);
      const __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(c[r][j], _mm512_mullo_epi32(zp, s)));
      const __m512 ws = _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(mask, d.w_scale + col));
      const __m512 v = d.bias ? _mm512_fmadd_ps(f, ws, _mm512_maskz_loadu_ps(mask, d.bias + col)) : _mm512_mul_ps(f, ws);
      _mm512_mask_storeu_ps(out + col, mask, v);
    }
  }
}

using block_fn = void (*)(const std::uint8_t*, std::int64_t, std::int64_t, const std::int8_t*, const char*,
                          std::int64_t, const dequantize_args&, std::int64_t, const std::int32_t*, std::int64_t,
                          std::int64_t, float*, std::int64_t);
constexpr block_fn blocks[7] = {nullptr, block<1>, block<2>, block<3>, block<4>, block<5>, block<6>};
constexpr std::int64_t max_rows = 6;  // 24 accumulators + 4 weight registers + 1 broadcast of 32

// fpclass categories: QNaN (0x01), +Inf (0x08), -Inf (0x10), SNaN (0x80).
constexpr int non_finite_classes = 0x01 | 0x08 | 0x10 | 0x80;

}  // namespace

bool row_range_avx512(const float* x, std::int64_t k, float& mn, float& mx) {
  __m512 vmin = _mm512_set1_ps(mn), vmax = _mm512_set1_ps(mx);
  __mmask16 bad_seen = 0;
  for (std::int64_t i = 0; i < k; i += 16) {
    const __mmask16 live = tail_mask(k - i);
    const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
    const __mmask16 bad = _mm512_mask_fpclass_ps_mask(live, v, non_finite_classes);
    bad_seen |= bad;
    const __mmask16 ok = static_cast<__mmask16>(live & ~bad);
    vmin = _mm512_mask_min_ps(vmin, ok, vmin, v);
    vmax = _mm512_mask_max_ps(vmax, ok, vmax, v);
  }
  mn = _mm512_reduce_min_ps(vmin);
  mx = _mm512_reduce_max_ps(vmax);
  return bad_seen == 0;
}

void multiply_panels_avx512(const std::uint8_t* a, std::int64_t lda, std::int64_t m, const packed_weights& w,
                            std::int64_t p0, std::int64_t p1, const dequantize_args& d, std::int64_t row0, float* y,
                            std::int64_t ldy, prefetch_after after) {
  const std::int64_t kq = lda / 4, n = w.n();
  for (std::int64_t p = p0; p < p1; ++p) {
    const std::int8_t* panel = w.panels() + p * panel_width * lda;
    // The next panel of this thread's range (after its last: the first of the next weights'), in
    // shares of its lines, one share per row block.
    const std::int64_t lines = p + 1 < p1 ? panel_width * lda / 64 : after.lines;
    const char* next = p + 1 < p1 ? reinterpret_cast<const char*>(panel + panel_width * lda) : after.start;
    for_each_row_block(m, max_rows, lines, [&](std::int64_t r, std::int64_t rows, std::int64_t line, std::int64_t share) {
      blocks[rows](a + r * lda, lda, kq, panel, next + line * 64, share, d, row0 + r, w.column_sums(), p * panel_width,
                   n, y + r * ldy, ldy);
    });
  }
}

}  // namespace qexp::int8_gemm::detail

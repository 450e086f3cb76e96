// The AVX-512 kernel of float_gemm.h. Called only after avx512_available() said yes, so the whole
// file is compiled for AVX-512 F + FMA whatever the rest of the build targets; no standard-library
// templates in here (an instantiation compiled for AVX-512 could be the one the linker keeps for
// everyone).
#include <qexp/float_gemm.h>

#include <cstdint>

#include "row_blocks.h"

// GCC 12 reports its own _mm512_undefined_* placeholders (used by the masked loads) as
// uninitialized once inlined: a known false positive of the intrinsics headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#pragma GCC target("avx512f,fma")

namespace qexp::float_gemm::detail {

namespace {

using qexp::detail::for_each_row_block;

constexpr std::int64_t panel_width = 64;
// Input channels per pass over a panel: 64 KB of weights, which the row blocks of the pass read
// from L2 after the first brought them in (the whole panel of a 3072-wide layer, 768 KB, would
// not stay in L2 beside the next one being fetched).
constexpr std::int64_t k_step = 256;
constexpr std::int64_t max_rows = 6;  // 24 accumulators + 4 weight registers

inline __mmask16 tail_mask(std::int64_t live) {
  return live >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << live) - 1u);
}

// MR rows of a (row stride lda) times kc input channels of one panel, MR x 4 accumulators in
// registers: started from the bias (or 0) on a panel's first pass, from y on the later ones, and
// stored back to y. Meanwhile `pf_lines` cache lines from `pf` on (this block's share of the
// weights that follow) are asked into L2, spread evenly over the k loop: the next stretch of
// weights arrives from memory while this one is multiplied.
template <int MR>
void block(const float* a, std::int64_t lda, std::int64_t kc, const float* panel, const char* pf, std::int64_t pf_lines,
           bool first, const float* bias, std::int64_t col0, std::int64_t n, float* y, std::int64_t ldy) {
  __m512 c[MR][4];
  __mmask16 mask[4];
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) mask[j] = col0 + 16 * j < n ? tail_mask(n - col0 - 16 * j) : 0;
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const std::int64_t col = col0 + 16 * j;
      c[r][j] = first ? (bias ? _mm512_maskz_loadu_ps(mask[j], bias + col) : _mm512_setzero_ps())
                      : _mm512_maskz_loadu_ps(mask[j], y + r * ldy + col);
    }

  const float* b = panel;
  std::int64_t pf_credit = 0;
  for (std::int64_t q = 0; q < kc; ++q, b += panel_width) {
    for (pf_credit += pf_lines; pf_credit >= kc; pf_credit -= kc, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    const __m512 b2 = _mm512_load_ps(b + 32);
    const __m512 b3 = _mm512_load_ps(b + 48);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + q]);
      c[r][0] = _mm512_fmadd_ps(av, b0, c[r][0]);
      c[r][1] = _mm512_fmadd_ps(av, b1, c[r][1]);
      c[r][2] = _mm512_fmadd_ps(av, b2, c[r][2]);
      c[r][3] = _mm512_fmadd_ps(av, b3, c[r][3]);
    }
  }

#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(y + r * ldy + col0 + 16 * j, mask[j], c[r][j]);
}

using block_fn = void (*)(const float*, std::int64_t, std::int64_t, const float*, const char*, std::int64_t, bool,
                          const float*, std::int64_t, std::int64_t, float*, std::int64_t);
constexpr block_fn blocks[max_rows + 1] = {nullptr, block<1>, block<2>, block<3>, block<4>, block<5>, block<6>};

}  // namespace

void multiply_panels_avx512(const float* a, std::int64_t lda, std::int64_t m, const packed_weights& w,
                            std::int64_t p0, std::int64_t p1, const float* bias, float* y, std::int64_t ldy) {
  const std::int64_t k = w.k(), n = w.n();
  // A panel's passes: 256 input channels each, and one (the bias alone) when k is 0.
  const std::int64_t passes = k > 0 ? (k + k_step - 1) / k_step : 1;
  // This thread's panels are one stretch of memory, read front to back: what to prefetch next is
  // always the weights just past the current pass, up to the end of the stretch.
  const float* const end = w.panels() + p1 * panel_width * k;
  for (std::int64_t p = p0; p < p1; ++p) {
    const float* panel = w.panels() + p * panel_width * k;
    for (std::int64_t i = 0; i < passes; ++i) {
      const std::int64_t k0 = i * k_step, kc = k - k0 < k_step ? k - k0 : k_step;
      const float* pass = panel + k0 * panel_width;
      const float* next = pass + kc * panel_width;
      const std::int64_t ahead = end - next < kc * panel_width ? end - next : kc * panel_width;
      const std::int64_t lines = ahead * static_cast<std::int64_t>(sizeof(float)) / 64;
      for_each_row_block(m, max_rows, lines, [&](std::int64_t r, std::int64_t rows, std::int64_t line, std::int64_t share) {
        blocks[rows](a + r * lda + k0, lda, kc, pass, reinterpret_cast<const char*>(next) + line * 64, share, k0 == 0,
                     bias, p * panel_width, n, y + r * ldy, ldy);
      });
    }
  }
}

}  // namespace qexp::float_gemm::detail

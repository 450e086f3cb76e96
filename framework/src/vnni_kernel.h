// What the AVX-512 VNNI matmul kernels (int8_gemm_avx512.cpp, int4_gemm_avx512.cpp) share: the
// target they are compiled for, and two helpers. Include it after every other header, in files
// that run only once int8_gemm::vnni_available() said yes: what follows it in the file is compiled
// for AVX-512 + VNNI whatever the rest of the build targets.
#pragma once

#include <cstdint>
#include <cstring>

// GCC 12 reports its own _mm512_undefined_* placeholders (used by the masked loads) as
// uninitialized once inlined: a known false positive of the intrinsics headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma")

namespace qexp::detail::vnni {

// 4 activation codes as one 32-bit lane, the operand vpdpbusd takes broadcast.
inline std::int32_t load_quad(const std::uint8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// One row's step of a panel: its 4 codes at `a` broadcast against 64 channels' 4 weights each
// (4 registers of 16 channels), into the row's 4 accumulators.
__attribute__((always_inline)) inline void multiply_quad(__m512i (&c)[4], const std::uint8_t* a, __m512i b0,
                                                         __m512i b1, __m512i b2, __m512i b3) {
  const __m512i av = _mm512_set1_epi32(load_quad(a));
  c[0] = _mm512_dpbusd_epi32(c[0], av, b0);
  c[1] = _mm512_dpbusd_epi32(c[1], av, b1);
  c[2] = _mm512_dpbusd_epi32(c[2], av, b2);
  c[3] = _mm512_dpbusd_epi32(c[3], av, b3);
}

// The first `live` of 16 lanes (all 16 from 16 on).
inline __mmask16 tail_mask(std::int64_t live) {
  return live >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << live) - 1u);
}

}  // namespace qexp::detail::vnni

// One core's AVX-512 VNNI peak and read bandwidth, the two ceilings of an INT8 Linear at batch 1,
// and its fp32 FMA peak, the ceiling of an fp32 Linear. Peaks: 12 independent zmm accumulators
// (no memory operands): vpdpbusd, 128 ops (64 u8 x s8 multiply-adds) per instruction;
// vfmadd231ps, 32 flops (16 fp32 multiply-adds). Bandwidth: AVX-512 loads summed over 512 MiB.
//
//   g++ -O2 -mavx512f -mavx512vnni tools/bench/vnni_peak.cpp -o /tmp/vnni_peak && /tmp/vnni_peak
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main() {
  using clk = std::chrono::steady_clock;
  const long iters = 200'000'000;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    __m512i a0 = _mm512_set1_epi32(rep), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
            a9 = a0, a10 = a0, a11 = a0, x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
    const auto t0 = clk::now();
    for (long i = 0; i < iters; ++i)
      asm volatile(
          "vpdpbusd %[y], %[x], %[a0]\n\tvpdpbusd %[y], %[x], %[a1]\n\tvpdpbusd %[y], %[x], %[a2]\n\t"
          "vpdpbusd %[y], %[x], %[a3]\n\tvpdpbusd %[y], %[x], %[a4]\n\tvpdpbusd %[y], %[x], %[a5]\n\t"
          "vpdpbusd %[y], %[x], %[a6]\n\tvpdpbusd %[y], %[x], %[a7]\n\tvpdpbusd %[y], %[x], %[a8]\n\t"
          "vpdpbusd %[y], %[x], %[a9]\n\tvpdpbusd %[y], %[x], %[a10]\n\tvpdpbusd %[y], %[x], %[a11]"
          : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3), [a4] "+v"(a4), [a5] "+v"(a5),
            [a6] "+v"(a6), [a7] "+v"(a7), [a8] "+v"(a8), [a9] "+v"(a9), [a10] "+v"(a10), [a11] "+v"(a11)
          : [x] "v"(x), [y] "v"(y));
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    __m512i sum = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                   _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    sum = _mm512_add_epi32(sum, _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
    if (_mm512_reduce_add_epi32(sum) == 42) std::puts("");  // keeps the accumulators live
    const double gops = 12.0 * 128.0 * static_cast<double>(iters) / s / 1e9;
    if (gops > best) best = gops;
  }
  std::printf("vpdpbusd zmm peak, 1 thread: %.0f GOP/s (best of 5; 128 ops per instruction)\n", best);

  // The same loop as above with another instruction, written out again on purpose: shared through
  // an array of accumulators, g++ -O2 stores them to the stack every round and measures a third of
  // the peak (311 instead of 940 GOP/s here).
  double best_fma = 0;
  for (int rep = 0; rep < 5; ++rep) {
    __m512 a0 = _mm512_set1_ps(static_cast<float>(rep)), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0, x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
    const auto t0 = clk::now();
    for (long i = 0; i < iters; ++i)
      asm volatile(
          "vfmadd231ps %[y], %[x], %[a0]\n\tvfmadd231ps %[y], %[x], %[a1]\n\tvfmadd231ps %[y], %[x], %[a2]\n\t"
          "vfmadd231ps %[y], %[x], %[a3]\n\tvfmadd231ps %[y], %[x], %[a4]\n\tvfmadd231ps %[y], %[x], %[a5]\n\t"
          "vfmadd231ps %[y], %[x], %[a6]\n\tvfmadd231ps %[y], %[x], %[a7]\n\tvfmadd231ps %[y], %[x], %[a8]\n\t"
          "vfmadd231ps %[y], %[x], %[a9]\n\tvfmadd231ps %[y], %[x], %[a10]\n\tvfmadd231ps %[y], %[x], %[a11]"
          : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3), [a4] "+v"(a4), [a5] "+v"(a5),
            [a6] "+v"(a6), [a7] "+v"(a7), [a8] "+v"(a8), [a9] "+v"(a9), [a10] "+v"(a10), [a11] "+v"(a11)
          : [x] "v"(x), [y] "v"(y));
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                               _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    if (_mm512_reduce_add_ps(sum) == 42.0f) std::puts("");  // keeps the accumulators live
    const double gflops = 12.0 * 32.0 * static_cast<double>(iters) / s / 1e9;
    if (gflops > best_fma) best_fma = gflops;
  }
  std::printf("vfmadd231ps zmm peak, 1 thread: %.0f GFLOP/s (best of 5; 32 flops per instruction)\n", best_fma);

  const size_t bytes = size_t{512} << 20;
  auto* buf = static_cast<__m512i*>(std::aligned_alloc(64, bytes));
  std::memset(buf, 1, bytes);
  double best_bw = 0;
  for (int rep = 0; rep < 5; ++rep) {
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    const auto t0 = clk::now();
    for (size_t i = 0; i < bytes / 64; i += 4) {
      s0 = _mm512_add_epi64(s0, _mm512_load_si512(buf + i));
      s1 = _mm512_add_epi64(s1, _mm512_load_si512(buf + i + 1));
      s2 = _mm512_add_epi64(s2, _mm512_load_si512(buf + i + 2));
      s3 = _mm512_add_epi64(s3, _mm512_load_si512(buf + i + 3));
    }
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    if (_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3))) == 42) std::puts("");
    if (bytes / s / 1e9 > best_bw) best_bw = bytes / s / 1e9;
  }
  std::printf("read bandwidth, 1 thread: %.1f GB/s (512 MiB buffer, best of 5)\n", best_bw);
  std::free(buf);
  return 0;
}

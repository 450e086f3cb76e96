// qexp's float32 matmul (qexp/float_gemm.h): packing round-trips, the portable kernel against a
// double-precision triple loop written here, and the AVX-512 kernel bit for bit against the
// portable one on shapes with every kind of tail (rows past a block of 6, columns past a panel of
// 64, k past a pass of 256, k = 0, rows past a chunk of 192), strided rows, with and without bias,
// at one and two threads.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <qexp/float_gemm.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace {

using qexp::float_gemm::packed_weights;

struct problem {
  std::int64_t m, n, k, lda;
  std::vector<float> w, a, bias;  // [n, k], [m, lda], [n]
};

problem make_problem(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t lda, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> v(0.f, 1.f);
  problem p{m, n, k, lda, {}, {}, {}};
  p.w.resize(static_cast<std::size_t>(n * k));
  for (auto& x : p.w) x = v(rng);
  p.a.resize(static_cast<std::size_t>(m * lda));
  for (auto& x : p.a) x = v(rng);  // the stride's extra columns too: the kernel must not read them
  for (std::int64_t c = 0; c < n; ++c) p.bias.push_back(v(rng));
  return p;
}

std::vector<float> product(const problem& p, bool with_bias, bool fast, std::int64_t ldy) {
  const packed_weights w(p.w.data(), p.n, p.k);
  std::vector<float> y(static_cast<std::size_t>(std::max<std::int64_t>(p.m * ldy, 1)), -7.f);
  qexp::float_gemm::multiply(p.a.data(), p.lda, p.m, w, with_bias ? p.bias.data() : nullptr, y.data(), ldy, fast);
  return y;
}

TEST(FloatGemm, PackingRoundTrips) {
  for (auto [n, k] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {63, 5}, {64, 8}, {130, 37}, {768, 300}}) {
    const problem p = make_problem(1, n, k, k, 7);
    const packed_weights w(p.w.data(), n, k);
    std::vector<float> back(p.w.size());
    w.unpack(back.data());
    EXPECT_EQ(back, p.w) << n << "x" << k;
    EXPECT_EQ(w.bytes(), static_cast<std::size_t>((n + 63) / 64 * 64 * k * 4));  // N padded to panels of 64
  }
}

TEST(FloatGemm, PortableKernelMatchesDoubleArithmetic) {
  for (bool with_bias : {false, true})
    for (auto [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{7, 70, 13}, {3, 65, 600}, {2, 5, 0}}) {
      const problem p = make_problem(m, n, k, k + 3, 11);
      const std::vector<float> y = product(p, with_bias, /*fast=*/false, n + 1);
      for (std::int64_t r = 0; r < m; ++r) {
        for (std::int64_t c = 0; c < n; ++c) {
          double expected = with_bias ? p.bias[c] : 0.0, magnitude = std::abs(expected);
          for (std::int64_t j = 0; j < k; ++j) {
            expected += static_cast<double>(p.a[r * p.lda + j]) * p.w[c * k + j];
            magnitude += std::abs(static_cast<double>(p.a[r * p.lda + j]) * p.w[c * k + j]);
          }
          ASSERT_NEAR(y[r * (n + 1) + c], expected, 1e-6 * std::max(1.0, magnitude))
              << m << "x" << n << "x" << k << " row " << r << " col " << c << " bias " << with_bias;
        }
        EXPECT_EQ(y[r * (n + 1) + n], -7.f) << "the kernel wrote past a row's n outputs";
      }
    }
}

TEST(FloatGemm, Avx512KernelIsBitIdenticalToPortable) {
  if (!qexp::float_gemm::avx512_available()) GTEST_SKIP() << "this CPU has no AVX-512";
  unsigned seed = 1;
  for (std::int64_t m : {1, 5, 6, 7, 13, 25, 200})
    for (auto [n, k] : {std::pair<std::int64_t, std::int64_t>{1, 3}, {2, 0}, {16, 256}, {65, 257}, {130, 37}, {768, 768},
                        {96, 3072}})
      for (bool with_bias : {false, true}) {
        if (m == 200 && n * k > 100000) continue;  // the 192-row chunk boundary needs no big layer
        ++seed;
        const problem p = make_problem(m, n, k, k + (seed % 3), seed);
        const std::int64_t ldy = n + (seed % 2);
        const auto fast = product(p, with_bias, true, ldy), portable = product(p, with_bias, false, ldy);
        ASSERT_EQ(0, std::memcmp(fast.data(), portable.data(), fast.size() * sizeof(float)))
            << m << "x" << n << "x" << k << " bias " << with_bias;
      }
}

// Threads split the panels; the sums are the same whatever thread computes them.
TEST(FloatGemm, TwoThreadsGiveTheSameBits) {
  const int before = at::get_num_threads();
  const problem p = make_problem(25, 768, 768, 768, 5);
  at::set_num_threads(1);
  const auto one = product(p, true, true, 768);
  at::set_num_threads(2);
  const auto two = product(p, true, true, 768);
  at::set_num_threads(before);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
}

}  // namespace

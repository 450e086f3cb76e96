// qexp's W4A8 matmul (qexp/int4_gemm.h): packing round-trips, the portable kernel against the
// dequantized arithmetic in double, the AVX-512 VNNI kernel bit for bit against the portable one
// (every kind of tail: rows past a block of 3, columns past a panel of 64, k not a multiple of 4
// nor of the group), symmetric and asymmetric weights, groups of 32, 64 and 128, per-tensor and
// per-row activation parameters, with and without bias; and the per-token activation pass.
#include <gtest/gtest.h>
#include <qexp/int4_gemm.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace {

using qexp::int4_gemm::dequantize_args;
using qexp::int4_gemm::group_count;
using qexp::int4_gemm::packed_weights;
using qexp::int4_gemm::padded_k;
using qexp::int4_gemm::quantized_weights;

quantized_weights random_weights(std::int64_t n, std::int64_t k, std::int64_t group_size, bool symmetric,
                                 unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(0, 15);
  std::uniform_real_distribution<float> scale(1e-3f, 1e-1f);
  quantized_weights q;
  q.n = n;
  q.k = k;
  q.group_size = group_size;
  q.codes.resize(static_cast<std::size_t>(n * k));
  for (auto& c : q.codes) c = static_cast<std::uint8_t>(code(rng));
  const std::size_t cells = static_cast<std::size_t>(n * group_count(k, group_size));
  for (std::size_t i = 0; i < cells; ++i) q.scales.push_back(scale(rng));
  if (!symmetric)
    for (std::size_t i = 0; i < cells; ++i) q.zero_points.push_back(static_cast<std::uint8_t>(code(rng)));
  return q;
}

struct activations {
  std::int64_t m, k;
  std::vector<std::uint8_t> codes;  // [m, padded_k(k)], zero past k
  std::vector<float> scale, bias;
  std::vector<std::int32_t> zero_point;
};

activations random_activations(std::int64_t m, std::int64_t k, std::int64_t n, bool per_row, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(0, 255);
  std::uniform_real_distribution<float> scale(1e-3f, 1e-1f), bias(-2.f, 2.f);
  activations a{m, k, {}, {}, {}, {}};
  const std::int64_t kp = padded_k(k);
  a.codes.assign(static_cast<std::size_t>(m * kp), 0);
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < k; ++j) a.codes[r * kp + j] = static_cast<std::uint8_t>(code(rng));
  for (std::int64_t r = 0; r < (per_row ? m : 1); ++r) {
    a.scale.push_back(scale(rng));
    a.zero_point.push_back(code(rng));
  }
  for (std::int64_t c = 0; c < n; ++c) a.bias.push_back(bias(rng));
  return a;
}

dequantize_args args_of(const activations& a, bool per_row, bool with_bias) {
  dequantize_args d;
  d.a_scale = a.scale.data();
  d.a_zero_point = a.zero_point.data();
  d.per_row = per_row;
  d.bias = with_bias ? a.bias.data() : nullptr;
  return d;
}

std::vector<float> run(const activations& a, const packed_weights& w, bool per_row, bool with_bias, bool fast) {
  std::vector<float> y(static_cast<std::size_t>(a.m * w.n()), -1.f);
  qexp::int4_gemm::multiply(a.codes.data(), a.m, w, args_of(a, per_row, with_bias), y.data(), fast);
  return y;
}

TEST(Int4Gemm, PackingRoundTripsBitForBit) {
  for (bool symmetric : {true, false})
    for (std::int64_t group : {32, 64, 128})
      for (auto [n, k] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {63, 5}, {64, 32}, {65, 129}, {130, 37},
                          {768, 768}}) {
        const quantized_weights q = random_weights(n, k, group, symmetric, 7);
        const packed_weights w(q);
        const quantized_weights back = w.unpack();
        EXPECT_EQ(back.n, n);
        EXPECT_EQ(back.k, k);
        EXPECT_EQ(back.group_size, group);
        EXPECT_EQ(back.codes, q.codes) << n << "x" << k << " group " << group;
        EXPECT_EQ(back.zero_points, q.zero_points);
        ASSERT_EQ(back.scales.size(), q.scales.size());
        EXPECT_EQ(0, std::memcmp(back.scales.data(), q.scales.data(), q.scales.size() * sizeof(float)));
        // Half a byte per weight in panels of 64 channels, k rounded up to 4; a float scale (and a
        // byte zero point) per channel and group; one float column term per channel.
        const std::size_t panels = static_cast<std::size_t>((n + 63) / 64);
        const std::size_t cells = panels * 64 * static_cast<std::size_t>(group_count(k, group));
        EXPECT_EQ(w.bytes(), panels * 32 * static_cast<std::size_t>(padded_k(k)) + cells * (symmetric ? 4 : 5) +
                                 panels * 64 * 4);
      }
}

TEST(Int4Gemm, RejectsMalformedWeights) {
  quantized_weights q = random_weights(3, 40, 32, false, 1);
  q.codes[5] = 16;
  EXPECT_THROW(packed_weights{q}, std::invalid_argument);
  q = random_weights(3, 40, 32, false, 1);
  q.zero_points.pop_back();
  EXPECT_THROW(packed_weights{q}, std::invalid_argument);
  q = random_weights(3, 40, 30, true, 1);
  EXPECT_THROW(packed_weights{q}, std::invalid_argument);  // not a multiple of 4
  q = random_weights(3, 40, 32, true, 1);
  q.scales[1] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(packed_weights{q}, std::invalid_argument);
}

// y[r, c] = a_scale * sum_k (a - a_zero) * scale[c, g] * (code - zero[c, g]) + bias, in double.
// The kernel's float error: one rounding per group accumulated (the group's integer sum is exact)
// and the float column term; both are bounded by 1e-5 of the sum of the terms' magnitudes.
TEST(Int4Gemm, PortableKernelMatchesDequantizedArithmetic) {
  unsigned seed = 100;
  for (bool symmetric : {true, false})
    for (std::int64_t group : {32, 64, 128})
      for (bool per_row : {false, true}) {
        const std::int64_t m = 7, n = 70, k = 203;  // k: not a multiple of 4 nor of any group
        const quantized_weights q = random_weights(n, k, group, symmetric, ++seed);
        const activations a = random_activations(m, k, n, per_row, ++seed);
        const bool with_bias = seed % 2 == 0;
        const std::vector<float> y = run(a, packed_weights(q), per_row, with_bias, /*fast=*/false);
        const std::int64_t kp = padded_k(k), gs = group_count(k, group);
        for (std::int64_t r = 0; r < m; ++r)
          for (std::int64_t c = 0; c < n; ++c) {
            const std::int64_t arg = per_row ? r : 0;
            double sum = 0, magnitude = 0;
            for (std::int64_t j = 0; j < k; ++j) {
              const std::int64_t g = j / group;
              const double wv = static_cast<double>(q.scales[c * gs + g]) * (q.codes[c * k + j] - q.zero_point(c, g));
              const double av = static_cast<double>(a.codes[r * kp + j]) - a.zero_point[arg];
              sum += av * wv;
              magnitude += (std::abs(av) + a.zero_point[arg]) * std::abs(wv);
            }
            const double expected = sum * a.scale[arg] + (with_bias ? a.bias[c] : 0.0);
            ASSERT_NEAR(y[r * n + c], expected, 1e-5 * magnitude * a.scale[arg] + 1e-6 * std::abs(expected))
                << "row " << r << " col " << c << " group " << group << " symmetric " << symmetric;
          }
      }
}

TEST(Int4Gemm, VnniKernelIsBitIdenticalToPortable) {
  if (!qexp::int4_gemm::vnni_available()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  unsigned seed = 1;
  const std::vector<std::int64_t> rows{1, 2, 3, 4, 5, 6, 7, 25, 128};
  const std::vector<std::pair<std::int64_t, std::int64_t>> shapes{{1, 3}, {16, 4}, {65, 9}, {130, 37}, {63, 129},
                                                                  {96, 200}, {768, 768}, {64, 3072}};
  for (bool symmetric : {true, false})
    for (std::int64_t group : {32, 64, 128})
      for (auto [n, k] : shapes)
        for (std::int64_t m : rows) {
          if (n * k > 100000 && m > 25) continue;  // the portable build is slow
          const bool per_row = (seed & 1) != 0, with_bias = (seed & 2) != 0;
          const quantized_weights q = random_weights(n, k, group, symmetric, ++seed);
          const activations a = random_activations(m, k, n, per_row, ++seed);
          const packed_weights w(q);
          const std::vector<float> fast = run(a, w, per_row, with_bias, true);
          const std::vector<float> portable = run(a, w, per_row, with_bias, false);
          ASSERT_EQ(0, std::memcmp(fast.data(), portable.data(), fast.size() * sizeof(float)))
              << m << "x" << n << "x" << k << " group " << group << " symmetric " << symmetric << " per_row "
              << per_row << " bias " << with_bias;
        }
}

TEST(Int4Gemm, ExtremeCodesStayExact) {
  // Every activation 255 and code 15 against zero point 0: a group of 128 sums to 487 200, exact in
  // float; the result is 255 * 15 * k * scale.
  const std::int64_t m = 3, n = 20, k = 3072;
  quantized_weights q;
  q.n = n;
  q.k = k;
  q.group_size = 128;
  q.codes.assign(static_cast<std::size_t>(n * k), 15);
  q.scales.assign(static_cast<std::size_t>(n * q.groups()), 0.5f);
  q.zero_points.assign(q.scales.size(), 0);
  activations a{m, k, std::vector<std::uint8_t>(static_cast<std::size_t>(m * k), 255), {1.f}, {}, {0}};
  const packed_weights w(q);
  for (bool fast : {false, true}) {
    const std::vector<float> y = run(a, w, false, false, fast);
    for (float v : y) ASSERT_EQ(v, 255.f * 15.f * 0.5f * static_cast<float>(k)) << "fast " << fast;
  }
}

TEST(Int4Gemm, ActivationPassGivesTheSameCodesBothWays) {
  const std::int64_t m = 9, k = 37;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.f, 2.f);
  std::vector<float> x(static_cast<std::size_t>(m * k));
  for (auto& v : x) v = normal(rng);
  for (std::int64_t j = 0; j < k; ++j) x[2 * k + j] = 0.f;  // a row of zeros
  x[4 * k + 5] = std::numeric_limits<float>::quiet_NaN();
  x[5 * k + 36] = -std::numeric_limits<float>::infinity();
  for (std::int64_t j = 0; j < k; ++j) x[6 * k + j] = std::abs(x[6 * k + j]);  // all positive: zero point 0
  const std::int64_t kp = padded_k(k);
  std::vector<std::uint8_t> codes[2];
  std::vector<float> scales[2];
  std::vector<std::int32_t> zeros[2];
  std::vector<char> ok[2];
  for (int fast = 0; fast < 2; ++fast) {
    codes[fast].assign(static_cast<std::size_t>(m * kp), 77);
    scales[fast].resize(m);
    zeros[fast].resize(m);
    ok[fast].resize(m);
    qexp::int4_gemm::quantize_rows(x.data(), m, k, codes[fast].data(), scales[fast].data(), zeros[fast].data(),
                                   ok[fast].data(), fast == 1);
  }
  EXPECT_EQ(codes[0], codes[1]);
  EXPECT_EQ(zeros[0], zeros[1]);
  EXPECT_EQ(0, std::memcmp(scales[0].data(), scales[1].data(), m * sizeof(float)));
  EXPECT_EQ(ok[0], ok[1]);
  for (std::int64_t r = 0; r < m; ++r) {
    EXPECT_EQ(ok[0][r], r == 4 || r == 5 ? 0 : 1) << "row " << r;
    for (std::int64_t j = k; j < kp; ++j) EXPECT_EQ(codes[0][r * kp + j], 0) << "padding of row " << r;
    if (r == 4 || r == 5) continue;
    for (std::int64_t j = 0; j < k; ++j) {
      const float back = (static_cast<float>(codes[0][r * kp + j]) - static_cast<float>(zeros[0][r])) * scales[0][r];
      EXPECT_NEAR(back, x[r * k + j], 0.5f * scales[0][r] * 1.0001f) << "row " << r << " column " << j;
    }
  }
  EXPECT_EQ(scales[0][2], 1.f);
  EXPECT_EQ(zeros[0][2], 0);
  EXPECT_EQ(zeros[0][6], 0);
}

TEST(Int4Gemm, WholePathTracksTheFloatProduct) {
  // Float activations quantized per token times dequantized weights: within the 8-bit activation
  // error of the float product (relative error of order 1e-2 at most on Gaussian data).
  const std::int64_t m = 25, n = 96, k = 300;
  const quantized_weights q = random_weights(n, k, 64, false, 5);
  std::vector<float> w_dq(static_cast<std::size_t>(n * k));
  q.dequantize(w_dq.data());
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> x(static_cast<std::size_t>(m * k));
  for (auto& v : x) v = normal(rng);
  const std::int64_t kp = padded_k(k);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(m * kp));
  std::vector<float> scales(m);
  std::vector<std::int32_t> zeros(m);
  std::vector<char> ok(m);
  qexp::int4_gemm::quantize_rows(x.data(), m, k, codes.data(), scales.data(), zeros.data(), ok.data());
  dequantize_args d;
  d.a_scale = scales.data();
  d.a_zero_point = zeros.data();
  d.per_row = true;
  std::vector<float> y(static_cast<std::size_t>(m * n));
  qexp::int4_gemm::multiply(codes.data(), m, packed_weights(q), d, y.data());
  double err = 0, ref = 0;
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t c = 0; c < n; ++c) {
      double s = 0;
      for (std::int64_t j = 0; j < k; ++j) s += static_cast<double>(x[r * k + j]) * w_dq[c * k + j];
      err += (y[r * n + c] - s) * (y[r * n + c] - s);
      ref += s * s;
    }
  EXPECT_LT(err / ref, 1e-4);
}

}  // namespace

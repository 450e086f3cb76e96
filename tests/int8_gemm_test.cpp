// qexp's INT8 matmul (qexp/int8_gemm.h): packing round-trips, the portable kernel against a plain
// triple loop written here, and the AVX-512 VNNI kernel bit for bit against the portable one on
// shapes with every kind of tail (rows past a block of 6, columns past a panel of 64, k not a
// multiple of 4), per-tensor and per-row activation parameters, with and without bias.
#include <gtest/gtest.h>
#include <qexp/int8_gemm.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace {

using qexp::int8_gemm::dequantize_args;
using qexp::int8_gemm::packed_weights;
using qexp::int8_gemm::padded_k;

struct problem {
  std::int64_t m, n, k;
  std::vector<std::int8_t> w;       // [n, k]
  std::vector<std::uint8_t> codes;  // [m, padded_k(k)], zero past k
  std::vector<float> a_scale, w_scale, bias;
  std::vector<std::int32_t> zero_point;
};

problem make_problem(std::int64_t m, std::int64_t n, std::int64_t k, bool per_row, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> wv(-127, 127), av(0, 255), zp(0, 255);
  std::uniform_real_distribution<float> sc(1e-4f, 1e-2f), bv(-2.f, 2.f);
  problem p{m, n, k, {}, {}, {}, {}, {}, {}};
  p.w.resize(static_cast<std::size_t>(n * k));
  for (auto& v : p.w) v = static_cast<std::int8_t>(wv(rng));
  const std::int64_t kp = padded_k(k);
  p.codes.assign(static_cast<std::size_t>(m * kp), 0);
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < k; ++j) p.codes[r * kp + j] = static_cast<std::uint8_t>(av(rng));
  const std::int64_t rows = per_row ? m : 1;
  for (std::int64_t r = 0; r < rows; ++r) {
    p.a_scale.push_back(sc(rng));
    p.zero_point.push_back(zp(rng));
  }
  for (std::int64_t c = 0; c < n; ++c) {
    p.w_scale.push_back(sc(rng));
    p.bias.push_back(bv(rng));
  }
  return p;
}

dequantize_args args_of(const problem& p, bool per_row, bool with_bias) {
  dequantize_args d;
  d.a_scale = p.a_scale.data();
  d.a_zero_point = p.zero_point.data();
  d.per_row = per_row;
  d.w_scale = p.w_scale.data();
  d.bias = with_bias ? p.bias.data() : nullptr;
  return d;
}

TEST(Int8Gemm, PackingRoundTripsAndSumsColumns) {
  for (auto [n, k] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {63, 5}, {64, 8}, {130, 37}, {768, 768}}) {
    const problem p = make_problem(1, n, k, false, 7);
    const packed_weights w(p.w.data(), n, k);
    std::vector<std::int8_t> back(p.w.size());
    w.unpack(back.data());
    EXPECT_EQ(back, p.w) << n << "x" << k;
    for (std::int64_t c = 0; c < n; ++c) {
      std::int32_t sum = 0;
      for (std::int64_t j = 0; j < k; ++j) sum += p.w[c * k + j];
      ASSERT_EQ(w.column_sums()[c], sum) << "column " << c;
    }
    // Panels of 64 channels, k rounded up to 4, plus one int32 sum per channel.
    EXPECT_EQ(w.bytes(), static_cast<std::size_t>((n + 63) / 64 * 64 * padded_k(k) + 4 * n));
  }
}

TEST(Int8Gemm, PortableKernelMatchesPlainArithmetic) {
  for (bool per_row : {false, true})
    for (bool with_bias : {false, true}) {
      const problem p = make_problem(7, 70, 13, per_row, 11);
      const packed_weights w(p.w.data(), p.n, p.k);
      std::vector<float> y(static_cast<std::size_t>(p.m * p.n), -1.f);
      qexp::int8_gemm::multiply(p.codes.data(), p.m, w, args_of(p, per_row, with_bias), y.data(), /*fast=*/false);
      const std::int64_t kp = padded_k(p.k);
      for (std::int64_t r = 0; r < p.m; ++r)
        for (std::int64_t c = 0; c < p.n; ++c) {
          const std::int64_t g = per_row ? r : 0;
          std::int64_t acc = 0, wsum = 0;
          for (std::int64_t j = 0; j < p.k; ++j) {
            acc += static_cast<std::int64_t>(p.codes[r * kp + j]) * p.w[c * p.k + j];
            wsum += p.w[c * p.k + j];
          }
          const double expected = static_cast<double>(acc - p.zero_point[g] * wsum) * p.a_scale[g] * p.w_scale[c] +
                                  (with_bias ? p.bias[c] : 0.0);
          ASSERT_NEAR(y[r * p.n + c], expected, 1e-5 * std::max(1.0, std::abs(expected)))
              << "row " << r << " col " << c << " per_row " << per_row << " bias " << with_bias;
        }
    }
}

TEST(Int8Gemm, VnniKernelIsBitIdenticalToPortable) {
  if (!qexp::int8_gemm::vnni_available()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  unsigned seed = 1;
  for (std::int64_t m : {1, 5, 6, 7, 13, 25, 64})
    for (auto [n, k] : {std::pair<std::int64_t, std::int64_t>{1, 3}, {16, 4}, {65, 9}, {130, 37}, {768, 768}, {96, 3072}})
      for (bool per_row : {false, true}) {
        const problem p = make_problem(m, n, k, per_row, ++seed);
        const packed_weights w(p.w.data(), n, k);
        const bool with_bias = seed % 2 == 0;
        std::vector<float> fast(static_cast<std::size_t>(m * n), -1.f), portable(fast);
        qexp::int8_gemm::multiply(p.codes.data(), m, w, args_of(p, per_row, with_bias), fast.data(), true);
        qexp::int8_gemm::multiply(p.codes.data(), m, w, args_of(p, per_row, with_bias), portable.data(), false);
        ASSERT_EQ(0, std::memcmp(fast.data(), portable.data(), fast.size() * sizeof(float)))
            << m << "x" << n << "x" << k << " per_row " << per_row << " bias " << with_bias;
      }
}

// Each weights learn which were multiplied after them on this thread, and prefetch their first
// panels next time; results do not change, and weights gone since are no harm (prefetching a
// stale address cannot fault).
TEST(Int8Gemm, WeightsLearnWhichComeNextWithoutChangingResults) {
  const problem p = make_problem(25, 130, 300, false, 21);
  const packed_weights first(p.w.data(), p.n, p.k);
  std::vector<float> before(static_cast<std::size_t>(p.m * p.n)), after(before);
  qexp::int8_gemm::multiply(p.codes.data(), p.m, first, args_of(p, false, true), before.data());
  {
    const problem q = make_problem(25, 70, 300, false, 22);
    const packed_weights second(q.w.data(), q.n, q.k);
    qexp::int8_gemm::multiply(p.codes.data(), p.m, first, args_of(p, false, true), after.data());
    qexp::int8_gemm::multiply(q.codes.data(), q.m, second, args_of(q, false, true), after.data());
    EXPECT_EQ(first.next_link()->panels.load(), second.panels());
    EXPECT_EQ(first.next_link()->panel_count.load(), 2);
  }
  qexp::int8_gemm::multiply(p.codes.data(), p.m, first, args_of(p, false, true), after.data());
  EXPECT_EQ(before, after);
  const packed_weights copy = first;  // copies share what they learned
  EXPECT_EQ(copy.next_link(), first.next_link());
}

TEST(Int8Gemm, ExtremeCodesDoNotOverflow) {
  // 255 * 127 * 3072 = 99.5e6 fits int32 comfortably; the zero-point term as well.
  const std::int64_t m = 3, n = 20, k = 3072;
  std::vector<std::int8_t> wv(static_cast<std::size_t>(n * k), 127);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(m * k), 255);
  const packed_weights w(wv.data(), n, k);
  const float a_scale = 1.f, w_scale_v = 1.f;
  const std::int32_t zp = 255;
  std::vector<float> w_scale(n, w_scale_v);
  dequantize_args d;
  d.a_scale = &a_scale;
  d.a_zero_point = &zp;
  d.w_scale = w_scale.data();
  for (bool fast : {false, true}) {
    std::vector<float> y(static_cast<std::size_t>(m * n), -1.f);
    qexp::int8_gemm::multiply(codes.data(), m, w, d, y.data(), fast);
    for (float v : y) ASSERT_EQ(v, 0.f);  // (255 - zp) * everything
  }
}

}  // namespace

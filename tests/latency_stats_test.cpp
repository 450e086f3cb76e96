// Latency summaries: percentiles as numpy computes them by default, sample standard deviation.
#include "qexp/latency_stats.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

TEST(latency_stats, percentiles_interpolate_between_ranks) {
  // numpy.percentile([1..10], [50, 90, 99]) = 5.5, 9.1, 9.91
  std::vector<double> samples{10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
  auto s = qexp::summarize_latency(samples);
  EXPECT_DOUBLE_EQ(s.p50_ms, 5.5);
  EXPECT_NEAR(s.p90_ms, 9.1, 1e-12);
  EXPECT_NEAR(s.p99_ms, 9.91, 1e-12);
  EXPECT_DOUBLE_EQ(s.mean_ms, 5.5);
  EXPECT_NEAR(s.stdev_ms, 3.0276503540974917, 1e-12);  // numpy std(ddof=1)
  EXPECT_EQ(s.min_ms, 1);
  EXPECT_EQ(s.max_ms, 10);
  EXPECT_EQ(s.count, 10u);
}

// A skewed set worked by hand. Sorted: 1 2 3 4 100 (ranks 0..4).
// p50: rank 2 -> 3. p90: rank 3.6 -> 4 + 0.6 * (100 - 4) = 61.6. p99: rank 3.96 -> 4 + 0.96 * 96 = 96.16.
// mean 110 / 5 = 22; squared deviations 441 + 400 + 361 + 324 + 6084 = 7610, / (5 - 1) = 1902.5.
TEST(latency_stats, an_outlier_moves_the_mean_and_the_high_percentiles_but_not_the_median) {
  auto s = qexp::summarize_latency({4, 1, 100, 3, 2});
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.p50_ms, 3);
  EXPECT_NEAR(s.p90_ms, 61.6, 1e-12);
  EXPECT_NEAR(s.p99_ms, 96.16, 1e-12);
  EXPECT_DOUBLE_EQ(s.mean_ms, 22);
  EXPECT_NEAR(s.stdev_ms, std::sqrt(1902.5), 1e-12);
  EXPECT_EQ(s.min_ms, 1);
  EXPECT_EQ(s.max_ms, 100);
}

// Two samples: every percentile interpolates between them; stdev |a - b| / sqrt(2).
TEST(latency_stats, two_samples_interpolate_linearly) {
  auto s = qexp::summarize_latency({2, 4});
  EXPECT_DOUBLE_EQ(s.p50_ms, 3);
  EXPECT_NEAR(s.p90_ms, 3.8, 1e-12);
  EXPECT_NEAR(s.p99_ms, 3.98, 1e-12);
  EXPECT_NEAR(s.stdev_ms, std::sqrt(2.0), 1e-12);
}

TEST(latency_stats, one_and_zero_samples) {
  auto one = qexp::summarize_latency({2.5});
  EXPECT_EQ(one.p99_ms, 2.5);
  EXPECT_EQ(one.stdev_ms, 0);
  EXPECT_EQ(qexp::summarize_latency({}).count, 0u);
}

// time_ms reports milliseconds of wall clock: a 30 ms sleep lasts at least 30 ms (sleep_for never
// returns early), and well under 30 s even on a loaded machine (seconds or microseconds would miss
// one bound or the other by a factor of 1000).
TEST(latency_stats, time_ms_measures_wall_clock_in_milliseconds) {
  const double ms = qexp::time_ms([] { std::this_thread::sleep_for(std::chrono::milliseconds(30)); });
  EXPECT_GE(ms, 30.0);
  EXPECT_LT(ms, 30000.0);
}

// Latency summaries: percentiles as numpy computes them by default, sample standard deviation.
#include "qexp/latency_stats.h"

#include <gtest/gtest.h>

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

TEST(latency_stats, one_and_zero_samples) {
  auto one = qexp::summarize_latency({2.5});
  EXPECT_EQ(one.p99_ms, 2.5);
  EXPECT_EQ(one.stdev_ms, 0);
  EXPECT_EQ(qexp::summarize_latency({}).count, 0u);
}

TEST(latency_stats, time_ms_measures_wall_clock) {
  const double ms = qexp::time_ms([] {
    volatile double x = 0;
    for (int i = 0; i < 100000; ++i) x = x + i;
  });
  EXPECT_GT(ms, 0.0);
}

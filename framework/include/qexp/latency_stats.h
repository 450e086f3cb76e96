// Summary statistics of latency samples, the way every qexp latency number is reported.
#pragma once

#include <vector>

namespace qexp {

struct latency_stats {
  std::size_t count = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, mean_ms = 0, stdev_ms = 0, min_ms = 0, max_ms = 0;
};

// Percentiles by linear interpolation between closest ranks (numpy's default); sample stdev.
latency_stats summarize_latency(std::vector<double> samples_ms);

// Wall-clock milliseconds of one call of `f`.
template <typename F>
double time_ms(F&& f);

}  // namespace qexp

#include <chrono>

template <typename F>
double qexp::time_ms(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

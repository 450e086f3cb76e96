#include "qexp/latency_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qexp {
namespace {

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const auto hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - static_cast<double>(lo));
}

}  // namespace

latency_stats summarize_latency(std::vector<double> samples) {
  latency_stats s;
  s.count = samples.size();
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.p50_ms = percentile(samples, 0.50);
  s.p90_ms = percentile(samples, 0.90);
  s.p99_ms = percentile(samples, 0.99);
  s.min_ms = samples.front();
  s.max_ms = samples.back();
  s.mean_ms = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(samples.size());
  if (samples.size() > 1) {
    double sq = 0;
    for (double v : samples) sq += (v - s.mean_ms) * (v - s.mean_ms);
    s.stdev_ms = std::sqrt(sq / static_cast<double>(samples.size() - 1));
  }
  return s;
}

}  // namespace qexp

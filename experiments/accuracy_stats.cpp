#include "accuracy_stats.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

namespace qexp {

double mcnemar_exact_p(std::int64_t b, std::int64_t c) {
  const std::int64_t n = b + c, k = std::min(b, c);
  if (n == 0) return 1.0;
  // Sum the binomial tail in log space: n can be the whole dataset.
  double tail = 0;
  for (std::int64_t i = 0; i <= k; ++i)
    tail += std::exp(std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) - n * std::log(2.0));
  return std::min(1.0, 2.0 * tail);
}

paired_accuracy_stats compare_accuracy(const std::vector<bool>& baseline, const std::vector<bool>& candidate,
                                       std::uint64_t seed, int resamples) {
  if (baseline.size() != candidate.size())
    throw std::invalid_argument("compare_accuracy: " + std::to_string(baseline.size()) + " baseline and " +
                                std::to_string(candidate.size()) + " candidate predictions");
  paired_accuracy_stats out;
  const std::size_t n = baseline.size();
  if (n == 0) return out;
  // Per sentence the difference is -1, 0 or +1; the bootstrap only needs the indices of each kind.
  std::vector<int> diff(n);
  for (std::size_t i = 0; i < n; ++i) {
    diff[i] = static_cast<int>(candidate[i]) - static_cast<int>(baseline[i]);
    out.baseline_only += diff[i] < 0;
    out.candidate_only += diff[i] > 0;
  }
  out.delta = static_cast<double>(out.candidate_only - out.baseline_only) / static_cast<double>(n);
  out.mcnemar_p = mcnemar_exact_p(out.baseline_only, out.candidate_only);
  std::mt19937_64 engine(seed);
  std::vector<double> deltas(static_cast<std::size_t>(resamples));
  for (auto& d : deltas) {
    long long sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += diff[engine() % n];
    d = static_cast<double>(sum) / static_cast<double>(n);
  }
  std::sort(deltas.begin(), deltas.end());
  // Percentile interval: the 2.5% and 97.5% order statistics.
  const auto at = [&](double q) { return deltas[static_cast<std::size_t>(q * (deltas.size() - 1) + 0.5)]; };
  out.ci_low = at(0.025);
  out.ci_high = at(0.975);
  return out;
}

double expected_calibration_error(const std::vector<double>& confidence, const std::vector<bool>& right, int bins) {
  if (confidence.size() != right.size())
    throw std::invalid_argument("expected_calibration_error: " + std::to_string(confidence.size()) + " confidences but " +
                                std::to_string(right.size()) + " outcomes");
  if (bins < 1) throw std::invalid_argument("expected_calibration_error: bins must be at least 1");
  if (confidence.empty()) return 0;
  std::vector<double> confidence_sum(bins, 0.0), right_count(bins, 0.0), count(bins, 0.0);
  for (std::size_t i = 0; i < confidence.size(); ++i) {
    // Bins are (lo, hi], the first one [0, 1 / bins]: a confidence of exactly 1 is in the last.
    const int b = std::clamp(static_cast<int>(std::ceil(confidence[i] * bins)) - 1, 0, bins - 1);
    confidence_sum[b] += confidence[i];
    right_count[b] += right[i] ? 1.0 : 0.0;
    count[b] += 1.0;
  }
  double ece = 0;
  for (int b = 0; b < bins; ++b) {
    if (count[b] > 0) ece += std::abs(right_count[b] - confidence_sum[b]) / static_cast<double>(confidence.size());
  }
  return ece;
}

}  // namespace qexp

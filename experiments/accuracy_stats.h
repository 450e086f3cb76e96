// Is an accuracy difference noise? Paired statistics over the evaluation sentences: a bootstrap
// confidence interval of the accuracy delta and McNemar's exact test. On 872 SST-2 dev sentences
// one sentence is 0.11 points, so deltas of a few sentences are rarely significant.
#pragma once

#include <cstdint>
#include <vector>

namespace qexp {

struct paired_accuracy_stats {
  double delta = 0;                      // accuracy(candidate) - accuracy(baseline), a fraction
  double ci_low = 0, ci_high = 0;        // 95% paired bootstrap interval of delta
  std::int64_t baseline_only = 0;        // sentences only the baseline got right (McNemar's b)
  std::int64_t candidate_only = 0;       // sentences only the candidate got right (c)
  double mcnemar_p = 1;                  // exact two-sided p-value of b vs c
  bool significant() const { return ci_low > 0 || ci_high < 0; }
};

// `baseline` and `candidate` say per sentence whether each model's prediction was right.
// The bootstrap draws `resamples` samples of the sentences with replacement with a fixed engine
// seeded by `seed`, so the interval is the same on every machine.
paired_accuracy_stats compare_accuracy(const std::vector<bool>& baseline, const std::vector<bool>& candidate,
                                       std::uint64_t seed, int resamples = 2000);

// Two-sided exact McNemar p-value: 2 * P(X <= min(b, c)) for X ~ Binomial(b + c, 1/2), at most 1.
double mcnemar_exact_p(std::int64_t b, std::int64_t c);

// Expected calibration error (Guo et al. 2017): the sentences binned by confidence (the predicted
// class's probability) into `bins` equal-width bins of [0, 1]; the sum over bins of the bin's
// share of sentences times |its accuracy - its mean confidence|. 0 for a model whose confidence
// is its accuracy; quantization can change it while leaving the accuracy alone.
double expected_calibration_error(const std::vector<double>& confidence, const std::vector<bool>& right, int bins = 15);

}  // namespace qexp

// Paired accuracy statistics against values computed independently: McNemar's exact p-value from
// closed forms, the bootstrap interval against the normal approximation of a paired mean.
#include "accuracy_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

TEST(accuracy_stats, mcnemar_matches_closed_forms) {
  EXPECT_DOUBLE_EQ(qexp::mcnemar_exact_p(0, 0), 1.0);
  EXPECT_NEAR(qexp::mcnemar_exact_p(0, 5), 2.0 / 32.0, 1e-12);           // 2 * 0.5^5
  EXPECT_NEAR(qexp::mcnemar_exact_p(9, 1), 2.0 * 11.0 / 1024.0, 1e-12);   // 2 * (1 + 10) / 2^10
  EXPECT_NEAR(qexp::mcnemar_exact_p(3, 3), 1.0, 1e-12);                   // capped at 1
  // 2 * sum_{i<=2} C(12, i) / 2^12 = 2 * (1 + 12 + 66) / 4096
  EXPECT_NEAR(qexp::mcnemar_exact_p(2, 10), 2.0 * 79.0 / 4096.0, 1e-12);
  // Large counts stay finite and symmetric.
  EXPECT_NEAR(qexp::mcnemar_exact_p(400, 480), qexp::mcnemar_exact_p(480, 400), 1e-12);
  EXPECT_GT(qexp::mcnemar_exact_p(400, 480), 0.0);
  EXPECT_LT(qexp::mcnemar_exact_p(400, 480), 0.01);
}

TEST(accuracy_stats, identical_predictions_have_a_zero_interval) {
  std::vector<bool> a(872, true);
  a[3] = false;
  const auto s = qexp::compare_accuracy(a, a, 0);
  EXPECT_EQ(s.delta, 0.0);
  EXPECT_EQ(s.ci_low, 0.0);
  EXPECT_EQ(s.ci_high, 0.0);
  EXPECT_EQ(s.mcnemar_p, 1.0);
  EXPECT_FALSE(s.significant());
}

TEST(accuracy_stats, the_bootstrap_interval_matches_the_normal_approximation) {
  // 872 sentences; the candidate loses 30 and gains 10: delta = -20/872.
  const std::size_t n = 872;
  std::vector<bool> base(n, true), cand(n, true);
  for (std::size_t i = 0; i < 30; ++i) cand[i * 7] = false;
  for (std::size_t i = 0; i < 10; ++i) base[i * 7 + 3] = false;
  const auto s = qexp::compare_accuracy(base, cand, 42);
  EXPECT_NEAR(s.delta, -20.0 / n, 1e-12);
  EXPECT_EQ(s.baseline_only, 30);
  EXPECT_EQ(s.candidate_only, 10);
  // Paired differences d in {-1, 0, 1}: sd of the mean = sqrt((E[d^2] - E[d]^2) / n).
  const double mean = -20.0 / n, second = 40.0 / n;
  const double half_width = 1.96 * std::sqrt((second - mean * mean) / n);
  EXPECT_NEAR(s.ci_low, mean - half_width, 0.2 * half_width);
  EXPECT_NEAR(s.ci_high, mean + half_width, 0.2 * half_width);
  EXPECT_TRUE(s.significant());
  EXPECT_LT(s.mcnemar_p, 0.01);
  // Seeded: the same interval again; another seed moves it a little.
  const auto again = qexp::compare_accuracy(base, cand, 42);
  EXPECT_EQ(again.ci_low, s.ci_low);
  EXPECT_EQ(again.ci_high, s.ci_high);
}

TEST(accuracy_stats, a_few_sentences_either_way_are_not_significant) {
  const std::size_t n = 872;
  std::vector<bool> base(n, true), cand(n, true);
  cand[1] = cand[2] = false;  // two lost
  base[5] = false;            // one gained
  const auto s = qexp::compare_accuracy(base, cand, 7);
  EXPECT_LT(s.ci_low, 0.0);
  EXPECT_GT(s.ci_high, 0.0);
  EXPECT_FALSE(s.significant());
  EXPECT_NEAR(s.mcnemar_p, 1.0, 1e-12);  // b=2, c=1: 2 * (1 + 3) / 8 = 1
}

TEST(accuracy_stats, mismatched_lengths_are_an_error) {
  EXPECT_THROW(qexp::compare_accuracy({true}, {true, false}, 0), std::invalid_argument);
}

TEST(accuracy_stats, expected_calibration_error_by_hand) {
  // Two bins, [0, 0.5] and (0.5, 1]. Bin 2 holds 0.6, 0.8, 1.0 (2 of 3 right: |2 - 2.4| = 0.4);
  // bin 1 holds 0.5 (wrong: |0 - 0.5| = 0.5). ECE = (0.4 + 0.5) / 4.
  EXPECT_NEAR(qexp::expected_calibration_error({0.6, 0.8, 1.0, 0.5}, {true, false, true, false}, 2), 0.9 / 4, 1e-12);
  // Confidence equal to accuracy in every bin: 0.
  EXPECT_NEAR(qexp::expected_calibration_error({0.75, 0.75, 0.75, 0.75}, {true, true, true, false}), 0.0, 1e-12);
  // Certain and always wrong: 1.
  EXPECT_NEAR(qexp::expected_calibration_error({1.0, 1.0}, {false, false}), 1.0, 1e-12);
  EXPECT_THROW(qexp::expected_calibration_error({0.5}, {true, false}), std::invalid_argument);
}

}  // namespace

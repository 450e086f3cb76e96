// The sensitivity experiment end to end through the CLI: a site planted to be lossy ranks first,
// and a variant measured from saved stage inputs gives the numbers a whole forward pass gives.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <set>
#include <string>

#include "test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int sentences = 48;
const std::string planted = "distilbert.transformer.layer.0.attention.v_lin";

using finished_run = qexp::test::experiment_run;

finished_run run_sensitivity(const qexp::test::temp_dir& dir, const std::string& scheme, const std::string& mode) {
  const fs::path config = dir.path() / "sensitivity.yaml";
  qexp::test::write_file(
      config, "name: sensitivity_test\nkind: sensitivity\n"
              "model: { path: " + (qexp::test::source_dir() / "models/distilbert-sst2-tiny").string() + " }\n"
              "data: { path: sst2/dev.tsv, limit: " + std::to_string(sentences) + " }\n"
              "scheme:\n" + scheme +
              "calibration: { sentences: 8, batch_size: 4 }\n"
              "sensitivity: { mode: " + mode + ", batch_size: 8, threads: 1 }\n"
              "measure: { layer_error: { batches: 1, batch_size: 8 } }\n");
  return qexp::test::run_experiment(config, dir.path() / "results");
}

// Every Linear but the classifier on per-channel dynamic INT8, except one: calibration-probe
// rounds its weights to three levels per row, far coarser than INT8.
const finished_run& planted_run() {
  static qexp::test::temp_dir dir;
  static const finished_run run = run_sensitivity(
      dir,
      "  label: one ternary site\n"
      "  rules:\n"
      "    - { plugin: calibration-probe, options: { calibrate: false }, layers: { include: [\"" + planted + "\"] } }\n"
      "    - { plugin: dynamic-int8, options: { granularity: per_channel }, layers: { exclude: [\"classifier\"] } }\n",
      "both");
  return run;
}

const json& site_row(const json& results, const std::string& site) {
  for (const auto& s : results["sensitivity"]["sites"])
    if (s["site"] == site) return s;
  throw std::runtime_error("no row for " + site);
}

}  // namespace

TEST(sensitivity, a_planted_lossy_site_ranks_first_in_both_modes) {
  const auto& run = planted_run();
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const json& sites = run.results["sensitivity"]["sites"];
  ASSERT_EQ(sites.size(), 13u) << "two blocks of six Linears and pre_classifier";
  EXPECT_EQ(sites[0]["site"], planted);
  EXPECT_EQ(sites[0]["plugin"], "calibration-probe");
  // Ranked by KL alone, highest first; the planted site also leaves the least KL when it alone
  // stays fp32 (all_but_one).
  std::set<std::string> seen;
  double lowest_remaining = 1e300;
  std::string recovers_most;
  for (std::size_t i = 0; i < sites.size(); ++i) {
    EXPECT_EQ(sites[i]["rank"], i + 1);
    seen.insert(sites[i]["site"].get<std::string>());
    if (i > 0) {
      EXPECT_GE(sites[i - 1]["one_at_a_time"]["mean_kl_vs_fp32"].get<double>(),
                sites[i]["one_at_a_time"]["mean_kl_vs_fp32"].get<double>());
    }
    const double remaining = sites[i]["all_but_one"]["mean_kl_vs_fp32"].get<double>();
    if (remaining < lowest_remaining) lowest_remaining = remaining, recovers_most = sites[i]["site"];
  }
  EXPECT_EQ(seen.size(), sites.size());
  EXPECT_EQ(recovers_most, planted);
  // Its own output is the worst too, by far.
  EXPECT_LT(sites[0]["site_sqnr_db"].get<double>() + 10, sites[1]["site_sqnr_db"].get<double>());
}

TEST(sensitivity, each_row_carries_bytes_and_paired_statistics) {
  const auto& run = planted_run();
  for (const auto& s : run.results["sensitivity"]["sites"]) {
    EXPECT_GT(s["fp32_bytes"].get<double>(), s["quantized_bytes"].get<double>()) << s["site"];
    EXPECT_DOUBLE_EQ(s["bytes_saved"].get<double>(),
                     s["fp32_bytes"].get<double>() - s["quantized_bytes"].get<double>());
    for (const char* mode : {"one_at_a_time", "all_but_one"}) {
      const json& m = s[mode];
      for (const char* key : {"accuracy", "accuracy_delta_vs_fp32", "accuracy_delta_ci95", "mcnemar_p",
                              "agreement_with_fp32", "mean_kl_vs_fp32", "logits_sqnr_db", "seconds"})
        EXPECT_TRUE(m.contains(key)) << s["site"] << " " << mode << " " << key;
      EXPECT_LE(m["accuracy_delta_ci95"][0].get<double>(), m["accuracy_delta_vs_fp32"].get<double>());
      EXPECT_GE(m["accuracy_delta_ci95"][1].get<double>(), m["accuracy_delta_vs_fp32"].get<double>());
    }
  }
}

TEST(sensitivity, running_from_the_saved_stages_costs_less_than_whole_passes) {
  const json& cost = planted_run().results["sensitivity"]["cost"];
  EXPECT_EQ(cost["variants"], 26);
  EXPECT_EQ(cost["stages_per_pass"], 4);  // embeddings, two blocks, head
  EXPECT_EQ(cost["stages_in_whole_passes"], 26 * 4);
  // A block's Linears skip the embeddings and the blocks before; pre_classifier runs the head only.
  EXPECT_LT(cost["stages_run"].get<int>(), 26 * 3);
}

TEST(sensitivity, a_site_from_its_stage_measures_as_the_whole_model_does) {
  // One site quantized: the whole-scheme row runs every stage from the token ids; the site's
  // one_at_a_time variant runs from the fp32 pass's saved input of its block. They must agree, and
  // all_but_one (nothing quantized) must be fp32 itself.
  qexp::test::temp_dir dir;
  const auto run = run_sensitivity(
      dir, "  { plugin: calibration-probe, options: { calibrate: false }, layers: { include: [\"" + planted + "\"] } }\n",
      "both");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const json& whole = run.results["results"][1]["accuracy"];
  const json& s = site_row(run.results, planted);
  for (const char* key : {"accuracy", "agreement_with_fp32", "mean_kl_vs_fp32", "logits_sqnr_db"})
    EXPECT_NEAR(s["one_at_a_time"][key].get<double>(), whole[key].get<double>(), 1e-9) << key;
  EXPECT_GT(s["one_at_a_time"]["mean_kl_vs_fp32"].get<double>(), 0);
  EXPECT_EQ(s["all_but_one"]["mean_kl_vs_fp32"].get<double>(), 0);
  EXPECT_EQ(s["all_but_one"]["agreement_with_fp32"].get<double>(), 1);
}

TEST(sensitivity, the_report_shows_the_ranked_table) {
  const auto& run = planted_run();
  const std::string summary = qexp::test::read_file(run.dir / "summary.md");
  EXPECT_NE(summary.find("Layer sensitivity"), std::string::npos) << summary;
  EXPECT_NE(summary.find(planted), std::string::npos);
  const std::string html = qexp::test::read_file(run.dir / "report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find(planted), std::string::npos);
}

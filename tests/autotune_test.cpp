// The autotune experiment end to end through the CLI: with one site planted to be lossy in the
// most aggressive candidate, the search keeps that site at higher precision and the rest
// aggressive; the chosen recipe runs as a ptq config; a second run in the same folder measures
// nothing again.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <string>

#include "test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string planted = "distilbert.transformer.layer.0.attention.v_lin";

using finished_run = qexp::test::experiment_run;

// Candidates: "aggressive" (calibration-probe's three levels per row on the planted site, INT8
// per tensor elsewhere), then INT8 per channel everywhere, then fp32.
std::string config_text(const std::string& extra) {
  return "name: autotune_test\nkind: autotune\n"
         "model: { path: " + (qexp::test::source_dir() / "models/distilbert-sst2-tiny").string() + " }\n"
         "data: { path: sst2/dev.tsv, limit: 120 }\n"
         "candidates:\n"
         "  - label: aggressive\n"
         "    rules:\n"
         "      - { plugin: calibration-probe, options: { calibrate: false }, layers: { include: [\"" + planted + "\"] } }\n"
         "      - { plugin: dynamic-int8, options: { granularity: per_tensor }, layers: { exclude: [\"classifier\"] } }\n"
         "  - { plugin: dynamic-int8, label: int8 per channel, options: { granularity: per_channel }, layers: { exclude: [\"classifier\"] } }\n"
         "calibration: { sentences: 8, batch_size: 4 }\n"
         "autotune: { constraint: { metric: kl, max: 0.001 }, tuning: { sentences: 80 }, batch_size: 8, threads: 1 }\n"
         "final: { latency_iterations: 2, latency_sentences: 2 }\n" + extra;
}

finished_run run_autotune(const fs::path& config, const fs::path& out) {
  return qexp::test::run_experiment(config, out);
}

struct shared_state {
  qexp::test::temp_dir dir;
  finished_run first, again;
};

const shared_state& shared() {
  static shared_state st;
  static const bool ran = [] {
    const fs::path config = st.dir.path() / "autotune.yaml";
    qexp::test::write_file(config, config_text(""));
    st.first = run_autotune(config, st.dir.path() / "results");
    st.again = run_autotune(config, st.dir.path() / "results");
    return true;
  }();
  (void)ran;
  return st;
}

const json& autotune_section() { return shared().first.results["autotune"]; }

}  // namespace

TEST(autotune, the_planted_site_is_kept_at_higher_precision_and_the_rest_stays_aggressive) {
  const auto& run = shared().first;
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const json& a = run.results["autotune"];
  EXPECT_TRUE(a["met"].get<bool>());
  const json& trials = a["trials"];
  ASSERT_GE(trials.size(), 2u);
  EXPECT_FALSE(trials[0]["meets_constraint"].get<bool>()) << "the all-aggressive start should miss the constraint";
  // The first fallback moves the planted site, the most harmful one alone.
  EXPECT_EQ(trials[1]["phase"], "fallback");
  EXPECT_EQ(trials[1]["change"], planted + ": aggressive -> int8 per channel");
  const json& sites = a["chosen"]["sites"];
  EXPECT_NE(sites[planted], "aggressive");
  int aggressive = 0;
  for (const auto& [site, level] : sites.items()) aggressive += level == "aggressive";
  EXPECT_GE(aggressive, 10) << sites.dump(2);
  EXPECT_LE(a["chosen"]["metric"].get<double>(), 0.001);
  // The sensitivity the fallback used ranks the planted site first.
  double planted_kl = -1, others_max = 0;
  for (const auto& s : a["sensitivity"]) {
    if (s["level"] != "aggressive") continue;
    if (s["site"] == planted)
      planted_kl = s["mean_kl_vs_fp32"].get<double>();
    else
      others_max = std::max(others_max, s["mean_kl_vs_fp32"].get<double>());
  }
  EXPECT_GT(planted_kl, others_max);
}

TEST(autotune, every_trial_is_recorded_with_its_size_latency_and_metric) {
  const json& a = autotune_section();
  int index = 0;
  for (const auto& t : a["trials"]) {
    EXPECT_EQ(t["index"], index++);
    for (const char* key : {"phase", "change", "levels", "weight_bytes", "size_ratio_to_fp32", "latency_estimate_ms",
                            "metric", "meets_constraint", "accuracy"})
      EXPECT_TRUE(t.contains(key)) << key;
    EXPECT_LT(t["size_ratio_to_fp32"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(t["metric"].get<double>(), t["accuracy"]["mean_kl_vs_fp32"].get<double>());
    EXPECT_EQ(t["meets_constraint"].get<bool>(), t["metric"].get<double>() <= 0.001);
  }
  // The tuning sentences are 80 of the 120 dev sentences; the other 40 are the final evaluation.
  EXPECT_EQ(a["tuning"]["sentences"], 80);
  EXPECT_EQ(a["tuning"]["from"], "data");
  EXPECT_EQ(fs::path(a["tuning"]["data"].get<std::string>()).filename(), "dev.tsv");
}

TEST(autotune, the_chosen_recipe_is_a_ptq_config_and_its_final_run_is_on_the_data) {
  const json& a = autotune_section();
  const fs::path recipe = a["chosen"]["recipe_file"].get<std::string>();
  const YAML::Node doc = YAML::LoadFile(recipe.string());
  EXPECT_EQ(doc["quantizers"][0]["label"].as<std::string>(), "autotuned");
  auto validate = qexp::test::run_qexp(std::string("--plugin-path ") + QEXP_PROBE_PLUGIN_DIR + " validate '" +
                                       recipe.string() + "'");
  EXPECT_EQ(validate.exit_code, 0) << validate.output;
  const json& final = a["final"];
  ASSERT_TRUE(final.contains("rows")) << final.dump(2);
  ASSERT_EQ(final["rows"].size(), 4u);  // fp32, autotuned, each candidate alone
  EXPECT_EQ(final["rows"][1]["label"], "autotuned");
  EXPECT_EQ(final["rows"][1]["status"], "ok");
  const json final_results =
      qexp::test::read_results(fs::path(final["results_dir"].get<std::string>()) / "results.json");
  EXPECT_EQ(final_results["data"]["sentences"], 40);
  EXPECT_EQ(fs::path(final_results["data"]["path"].get<std::string>()).filename(), "heldout.tsv");
  // Smaller than fp32 on disk (the planted site's probe keeps float weights, so not smaller than
  // INT8 everywhere; configs/autotune.yaml is measured against that in docs/results.md).
  EXPECT_LT(final["rows"][1]["size"]["file_bytes"].get<double>(), final["rows"][0]["size"]["file_bytes"].get<double>());
}

TEST(autotune, a_second_run_in_the_same_folder_reads_its_trials_back) {
  const auto& again = shared().again;
  ASSERT_EQ(again.exit_code, 0) << again.output;
  const json& first = autotune_section();
  const json& second = again.results["autotune"];
  ASSERT_EQ(second["trials"].size(), first["trials"].size());
  // Nothing measured again: each trial read back, or a repeat of an earlier one of this run.
  for (const auto& t : second["trials"])
    EXPECT_TRUE(t["from_trials_jsonl"].get<bool>() || !t["same_as_trial"].is_null()) << t.dump();
  EXPECT_EQ(second["chosen"]["sites"], first["chosen"]["sites"]);
  EXPECT_NE(again.output.find("resuming"), std::string::npos) << again.output;
}

TEST(autotune, trials_run_as_sweep_points_reach_the_same_recipe) {
  // Each trial and per-site measurement a `qexp run` of a ptq config on a local pool of two: the
  // same measurements, so the same search and the same choice as composing the trials in process.
  qexp::test::temp_dir dir;
  const fs::path config = dir.path() / "autotune.yaml";
  std::string text = config_text("final: { enabled: false }\n");
  text.replace(text.find("final: { latency_iterations: 2, latency_sentences: 2 }\n"),
               std::string("final: { latency_iterations: 2, latency_sentences: 2 }\n").size(), "");
  text.replace(text.find("threads: 1 }"), std::string("threads: 1 }").size(), "threads: 1, executor: local, jobs: 2 }");
  qexp::test::write_file(config, text);
  const auto run = run_autotune(config, dir.path() / "results");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const json& swept = run.results["autotune"];
  const json& composed = autotune_section();
  EXPECT_EQ(swept["chosen"]["sites"], composed["chosen"]["sites"]);
  ASSERT_EQ(swept["trials"].size(), composed["trials"].size());
  for (std::size_t i = 0; i < swept["trials"].size(); ++i) {
    EXPECT_EQ(swept["trials"][i]["levels"], composed["trials"][i]["levels"]) << i;
    EXPECT_NEAR(swept["trials"][i]["metric"].get<double>(), composed["trials"][i]["metric"].get<double>(), 1e-12) << i;
  }
  // One point folder per trial or site measurement, each with its own results.json.
  std::size_t points = 0;
  for (const auto& entry : fs::directory_iterator(dir.path() / "results" / "trials"))
    if (entry.is_directory()) points += fs::exists(entry.path() / "results.json");
  EXPECT_GE(points, swept["sensitivity"].size());
}

TEST(autotune, a_trials_file_of_another_config_is_refused) {
  qexp::test::temp_dir dir;
  const fs::path config = dir.path() / "autotune.yaml";
  qexp::test::write_file(config, config_text("seed: 5\n"));
  fs::create_directories(dir.path() / "results");
  fs::copy_file(fs::path(shared().first.results["experiment"]["output_dir"].get<std::string>()) / "trials.jsonl",
                dir.path() / "results" / "trials.jsonl");
  const auto run = run_autotune(config, dir.path() / "results");
  EXPECT_EQ(run.exit_code, 3) << run.output;
  EXPECT_NE(run.output.find("trials.jsonl:1: trials of another config"), std::string::npos) << run.output;
}

TEST(autotune, the_report_shows_the_trials_and_the_pareto_plots) {
  const fs::path dir = shared().first.results["experiment"]["output_dir"].get<std::string>();
  const std::string summary = qexp::test::read_file(dir / "summary.md");
  EXPECT_NE(summary.find("## Tuning"), std::string::npos) << summary;
  EXPECT_NE(summary.find("Final evaluation"), std::string::npos) << summary;
  const std::string html = qexp::test::read_file(dir / "report.html");
  EXPECT_NE(html.find("Tried recipes: size against accuracy"), std::string::npos);
  EXPECT_NE(html.find("Tried recipes: latency against accuracy"), std::string::npos);
}

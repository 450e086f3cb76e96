// The ptq experiment end to end through the CLI, with its numbers checked independently: accuracy
// recomputed here, sizes against the files on disk, failures recorded without stopping the run.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "qexp/dataset.h"
#include "qexp/distilbert.h"
#include "qexp/tokenizer.h"
#include "test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int sentences = 40;

using finished_run = qexp::test::experiment_run;

// One short experiment shared by the tests below: two quantizers that work and one that fails.
const finished_run& shared_run() {
  static qexp::test::temp_dir dir;
  static const finished_run run = [] {
    const fs::path config = dir.path() / "exp.yaml";
    qexp::test::write_file(config,
                           "name: runner_test\n"
                           "model: { path: " + (qexp::test::shared_dir() / "golden/distilbert-tiny-random").string() + " }\n"
                           "data: { path: sst2/dev.tsv, limit: " + std::to_string(sentences) + " }\n"
                           "quantizers:\n"
                           "  - { plugin: dynamic-int8, options: { granularity: per_channel } }\n"
                           "  - { plugin: calibration-probe, label: fails at prepare, options: { fail: prepare, calibrate: false } }\n"
                           "  - { plugin: onednn-int8, layers: { exclude: [\"classifier\"] } }\n"
                           "  - label: calibrated recipe\n"
                           "    rules:\n"
                           "      - { plugin: calibration-probe, layers: { include: [\"*.ffn.*\"] } }\n"
                           "      - { plugin: embedding-int8 }\n"
                           "calibration: { sentences: 16, batch_size: 4, seed: 3 }\n"
                           "measure:\n"
                           "  latency: { warmup: 1, iterations: 5, batch_sizes: [1, 2], threads: [1], dataset_sentences: 3 }\n"
                           "  layer_error: { batches: 1, batch_size: 4 }\n");
    return qexp::test::run_experiment(config, dir.path() / "results");
  }();
  return run;
}

const json& result(const std::string& plugin) {
  for (const auto& r : shared_run().results["results"])
    if (r["plugin"] == plugin && r["status"] == "ok") return r;
  throw std::runtime_error("no ok result for " + plugin);
}

}  // namespace

TEST(ptq_runner, a_failing_quantizer_is_recorded_and_the_next_one_still_runs) {
  const auto& run = shared_run();
  EXPECT_EQ(run.exit_code, 1) << run.output;  // one quantizer failed
  ASSERT_TRUE(run.results.is_object()) << run.output;
  const auto& all = run.results["results"];
  ASSERT_EQ(all.size(), 5u);
  EXPECT_TRUE(all[0]["is_baseline"].get<bool>());
  EXPECT_EQ(all[1]["status"], "ok");
  EXPECT_EQ(all[2]["status"], "failed");
  const std::string error = all[2]["error"].get<std::string>();
  EXPECT_NE(error.find("plugin 'calibration-probe'"), std::string::npos) << error;
  EXPECT_NE(error.find("prepare failed: calibration-probe: asked to fail at prepare"), std::string::npos) << error;
  EXPECT_EQ(all[3]["status"], "ok");
  EXPECT_EQ(all[4]["status"], "ok");
  EXPECT_TRUE(run.results["experiment"]["complete"].get<bool>());
}

TEST(ptq_runner, a_recipe_records_its_rules_sites_and_calibration) {
  const auto& r = shared_run().results["results"][4];
  ASSERT_EQ(r["status"], "ok") << r.dump(2);
  EXPECT_EQ(r["plugin"], "calibration-probe+embedding-int8");
  EXPECT_EQ(r["layers_quantized"], 4);  // ffn.lin1 and ffn.lin2 of two blocks
  EXPECT_EQ(r["sites_quantized"], 6);   // and the two embedding tables
  ASSERT_EQ(r["recipe"].size(), 2u);
  EXPECT_EQ(r["recipe"][0]["sites"].size(), 4u);
  EXPECT_EQ(r["recipe"][1]["sites"], json({"distilbert.embeddings.word_embeddings",
                                           "distilbert.embeddings.position_embeddings"}));
  const auto& cal = r["calibration"];
  EXPECT_EQ(cal["sentences_used"], 16);
  EXPECT_EQ(cal["seed"], 3);
  EXPECT_EQ(cal["mode"], "float");
  EXPECT_EQ(fs::path(cal["data"].get<std::string>()).filename(), "train.tsv");
  // Recipes without a calibrating plugin record none.
  EXPECT_FALSE(shared_run().results["results"][1].contains("calibration"));
  // The embedding tables shrink the checkpoint's embeddings to about a quarter.
  EXPECT_LT(r["size"]["breakdown"]["embeddings"].get<double>(),
            0.3 * result("fp32")["size"]["breakdown"]["embeddings"].get<double>());
}

TEST(ptq_runner, the_results_folder_holds_every_file) {
  for (const char* f : {"results.json", "results.csv", "summary.md", "report.html", "config.yaml"})
    EXPECT_GT(fs::file_size(shared_run().dir / f), 0u) << f;
  const auto& doc = shared_run().results;
  EXPECT_EQ(doc["schema"], "qexp.results/1");
  for (const char* key : {"cpu_model", "isa", "libtorch", "onednn", "blas", "git_commit"})
    EXPECT_TRUE(doc["environment"].contains(key)) << key;
  EXPECT_EQ(doc["data"]["sentences"], sentences);
  EXPECT_EQ(doc["model"]["linear_layers"], 14);
}

TEST(ptq_runner, sizes_are_the_checkpoint_files_on_disk) {
  const double baseline = result("fp32")["size"]["file_bytes"].get<double>();
  for (const char* plugin : {"fp32", "dynamic-int8", "onednn-int8"}) {
    const auto& size = result(plugin)["size"];
    const fs::path file = size["checkpoint"].get<std::string>();
    EXPECT_EQ(size["file_bytes"].get<std::uint64_t>(), fs::file_size(file)) << plugin;
    EXPECT_DOUBLE_EQ(size["ratio_to_fp32"].get<double>(), size["file_bytes"].get<double>() / baseline) << plugin;
    std::uint64_t parts = 0;
    for (const auto& [kind, bytes] : size["breakdown"].items()) parts += bytes.get<std::uint64_t>();
    EXPECT_EQ(parts, size["file_bytes"].get<std::uint64_t>()) << plugin;
  }
  // INT8 Linear weights take a quarter of the fp32 bytes (plus scales).
  EXPECT_LT(result("dynamic-int8")["size"]["breakdown"]["linear_weights"].get<double>(),
            0.3 * result("fp32")["size"]["breakdown"]["linear_weights"].get<double>());
}

TEST(ptq_runner, baseline_accuracy_matches_an_independent_evaluation) {
  const fs::path model_dir = qexp::test::shared_dir() / "golden/distilbert-tiny-random";
  auto model = qexp::distilbert_classifier::from_folder(model_dir);
  auto tokenizer = qexp::wordpiece_tokenizer::from_model_folder(model_dir);
  auto data = qexp::read_sentence_tsv(qexp::test::shared_dir() / "data/sst2/dev.tsv", sentences);
  int correct = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    auto ids = at::tensor(tokenizer.encode_ids(data.sentences[i], 128), at::kLong).unsqueeze(0);
    correct += model.forward(ids).argmax(1).item<std::int64_t>() == data.labels[i];
  }
  const auto& accuracy = result("fp32")["accuracy"];
  EXPECT_DOUBLE_EQ(accuracy["accuracy"].get<double>(), static_cast<double>(correct) / sentences);
  EXPECT_EQ(accuracy["agreement_with_fp32"].get<double>(), 1.0);
  EXPECT_EQ(accuracy["mean_kl_vs_fp32"].get<double>(), 0.0);
}

TEST(ptq_runner, quantized_accuracy_is_consistent_with_agreement) {
  for (const char* plugin : {"dynamic-int8", "onednn-int8"}) {
    const auto& a = result(plugin)["accuracy"];
    const double delta = a["accuracy_delta_vs_fp32"].get<double>();
    // Each disagreement with fp32 can move accuracy by at most one sentence.
    EXPECT_LE(std::abs(delta), 1.0 - a["agreement_with_fp32"].get<double>() + 1e-12) << plugin;
    EXPECT_GE(a["mean_kl_vs_fp32"].get<double>(), 0.0) << plugin;
    EXPECT_GT(a["max_abs_dp_vs_fp32"].get<double>(), 0.0) << plugin;  // quantization changed something
  }
}

TEST(ptq_runner, latency_statistics_are_ordered_and_speedups_are_ratios) {
  for (const char* plugin : {"fp32", "onednn-int8"}) {
    const auto& probe = result(plugin)["latency"]["probe"];
    ASSERT_EQ(probe.size(), 2u) << plugin;  // batch sizes 1 and 2 at one thread count
    for (const auto& p : probe) {
      EXPECT_LE(p["p50_ms"].get<double>(), p["p90_ms"].get<double>());
      EXPECT_LE(p["p90_ms"].get<double>(), p["p99_ms"].get<double>());
      EXPECT_EQ(p["samples_ms"].size(), 5u);
      EXPECT_GT(p["throughput_per_s"].get<double>(), 0.0);
    }
  }
  const auto& q = result("onednn-int8")["latency"]["probe"][0];
  EXPECT_NEAR(q["speedup_vs_fp32"].get<double>(), q["baseline_p50_ms"].get<double>() / q["p50_ms"].get<double>(), 1e-9);
  EXPECT_EQ(result("onednn-int8")["latency"]["dataset"][0]["sentences"], 3);
}

TEST(ptq_runner, per_layer_error_covers_the_quantized_layers_worst_first) {
  const auto& layers = result("onednn-int8")["layer_error"];
  EXPECT_EQ(layers.size(), 13u);  // 14 Linears, classifier excluded
  for (std::size_t i = 1; i < layers.size(); ++i)
    EXPECT_LE(layers[i - 1]["sqnr_db"].get<double>(), layers[i]["sqnr_db"].get<double>());
  for (const auto& l : layers) EXPECT_NE(l["layer"], "classifier");
  EXPECT_TRUE(result("fp32")["layer_error"].empty());
}

namespace {

finished_run run_config(const qexp::test::temp_dir& dir, const std::string& yaml,
                        const std::function<void(const fs::path& out)>& prepare = {},
                        const std::vector<std::string>& broken_plugins = {}) {
  const fs::path config = dir.path() / "exp.yaml";
  qexp::test::write_file(config, yaml);
  const fs::path out = dir.path() / "results";
  if (prepare) prepare(out);
  std::string paths = std::string("--plugin-path ") + QEXP_PROBE_PLUGIN_DIR;
  for (const auto& folder : broken_plugins) paths += std::string(" --plugin-path ") + QEXP_BROKEN_PLUGIN_DIR + "/" + folder;
  auto r = qexp::test::run_qexp_with_deliberate_crashes(paths + " run '" + config.string() + "' --results-dir '" +
                                                        out.string() + "'");
  json results;
  if (fs::exists(out / "results.json")) results = qexp::test::read_results(out / "results.json");
  return finished_run{r.exit_code, r.output, results, out};
}

std::string model_line() {
  return "model: { path: " + (qexp::test::shared_dir() / "golden/distilbert-tiny-random").string() + " }\n";
}

}  // namespace

// Issue 17: NaN outputs are a failure (not "ok" with 300 dB), a libtorch error is one line, and a
// report that cannot be rebuilt does not claim the run is complete.
TEST(ptq_runner, non_finite_outputs_and_libtorch_errors_fail_their_row_in_one_line) {
  qexp::test::temp_dir dir;
  const auto run = run_config(dir,
                              "name: nan_test\n" + model_line() +
                                  "data: { path: sst2/dev.tsv, limit: 8 }\n"
                                  "quantizers:\n"
                                  "  - { plugin: calibration-probe, label: nan, options: { fail: nan, calibrate: false } }\n"
                                  "  - { plugin: calibration-probe, label: torch, options: { fail: torch-error, calibrate: false } }\n"
                                  "  - { plugin: dynamic-int8 }\n"
                                  "measure:\n"
                                  "  latency: { enabled: false }\n"
                                  "  layer_error: { batches: 1, batch_size: 4 }\n",
                              [](const fs::path& out) { fs::create_directories(out / "report.html"); });
  EXPECT_EQ(run.exit_code, 1) << run.output;
  ASSERT_TRUE(run.results.is_object()) << run.output;
  const auto& all = run.results["results"];
  ASSERT_EQ(all.size(), 4u) << run.output;
  EXPECT_EQ(all[1]["status"], "failed");
  const std::string nan_error = all[1]["error"].get<std::string>();
  EXPECT_NE(nan_error.find("'nan': the model's outputs are not finite (NaN or inf) on 8 of 8 sentences"), std::string::npos)
      << nan_error;
  EXPECT_NE(nan_error.find("quantized site(s) are not finite"), std::string::npos) << nan_error;
  ASSERT_TRUE(all[1]["layer_error"].is_array());
  for (const auto& layer : all[1]["layer_error"]) EXPECT_TRUE(layer["sqnr_db"].is_null()) << layer.dump();
  EXPECT_EQ(all[2]["status"], "failed");
  const std::string torch_error = all[2]["error"].get<std::string>();
  EXPECT_EQ(torch_error.find('\n'), std::string::npos) << torch_error;
  EXPECT_EQ(torch_error.find("frame #"), std::string::npos) << torch_error;
  EXPECT_NE(torch_error.find("cannot be multiplied"), std::string::npos) << torch_error;
  EXPECT_EQ(all[3]["status"], "ok");
  EXPECT_EQ(run.output.find("frame #"), std::string::npos) << run.output;
  // report.html is a folder here, so every report rebuild fails: the warnings say how far the run got.
  EXPECT_EQ(run.output.find("results.json is complete"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("results.json is written (the run is not finished: complete is false)"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("results.json is written and complete"), std::string::npos) << run.output;
}

TEST(ptq_runner, a_label_outside_the_models_classes_names_the_dataset_line) {
  qexp::test::temp_dir dir;
  qexp::test::write_file(dir.path() / "d.tsv", "sentence\tlabel\na fine film\t1\n\na dull film\t7\n");
  const auto run = run_config(dir, "name: label_test\n" + model_line() + "data: { path: " + (dir.path() / "d.tsv").string() +
                                       " }\nquantizers: [ { plugin: fp32 } ]\n");
  EXPECT_EQ(run.exit_code, 4) << run.output;
  EXPECT_NE(run.output.find("d.tsv:4: label 7 is not a class of the model (2 classes: expected 0..1)"), std::string::npos)
      << run.output;
}

// Issue 17, item 1: a plugin that segfaults, aborts, throws something that is not a std::exception
// or never returns costs only its own row (each quantizer runs in a child process); the rows keep
// what was measured before the crash and say how the process ended and in which stage.
TEST(ptq_runner, a_crashing_plugin_costs_only_its_row) {
  qexp::test::temp_dir dir;
  const auto run = run_config(dir,
                              "name: crash_test\n" + model_line() +
                                  "data: { path: sst2/dev.tsv, limit: 4 }\n"
                                  "quantizers:\n"
                                  "  - { plugin: segfaults }\n"
                                  "  - { plugin: dynamic-int8 }\n"
                                  "  - { plugin: aborts }\n"
                                  "  - { plugin: throws-int }\n"
                                  "  - { plugin: hangs }\n"
                                  "  - { plugin: onednn-int8 }\n"
                                  "measure:\n"
                                  "  timeout_s: 20\n"
                                  "  latency: { enabled: false }\n"
                                  "  layer_error: { batches: 1, batch_size: 4 }\n",
                              {}, {"segfaults", "aborts", "throws_int", "hangs"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  ASSERT_TRUE(run.results.is_object()) << run.output;
  const auto& all = run.results["results"];
  ASSERT_EQ(all.size(), 7u) << run.output;
  EXPECT_TRUE(run.results["experiment"]["complete"].get<bool>());
  const auto error_of = [&](std::size_t i) {
    return all[i]["error"].is_string() ? all[i]["error"].get<std::string>() : std::string();
  };

  // The segfault is in forward: the checkpoint was saved before it and is kept.
  EXPECT_EQ(all[1]["status"], "failed");
  EXPECT_NE(error_of(1).find("'segfaults': its process "), std::string::npos) << error_of(1);
  EXPECT_NE(error_of(1).find("while measuring accuracy"), std::string::npos) << error_of(1);
  EXPECT_EQ(all[1]["process"]["stage"], "measuring accuracy");
  EXPECT_TRUE(all[1].contains("size")) << all[1].dump();
  EXPECT_EQ(all[1]["process"]["signal"], 11) << all[1].dump();
  EXPECT_NE(error_of(1).find("was killed by signal 11 (Segmentation fault)"), std::string::npos) << error_of(1);
  EXPECT_EQ(all[2]["status"], "ok") << error_of(2);

  EXPECT_EQ(all[3]["status"], "failed");
  EXPECT_NE(error_of(3).find("was killed by signal 6 (Aborted) while preparing"), std::string::npos) << error_of(3);

  EXPECT_EQ(all[4]["status"], "failed");
  EXPECT_NE(error_of(4).find("'throws-int': a plugin threw something that is not a std::exception while measuring "
                             "accuracy"),
            std::string::npos)
      << error_of(4);

  EXPECT_EQ(all[5]["status"], "failed");
  EXPECT_NE(error_of(5).find("'hangs': its process was killed after 20 s (measure.timeout_s) while measuring accuracy"),
            std::string::npos)
      << error_of(5);
  EXPECT_TRUE(all[5]["process"]["timed_out"].get<bool>());

  EXPECT_EQ(all[6]["status"], "ok") << error_of(6);
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_EQ(error_of(i).find('\n'), std::string::npos) << error_of(i);
}

// Without isolation a throw that is not a std::exception still fails only its row.
TEST(ptq_runner, without_isolation_a_non_std_throw_fails_its_row) {
  qexp::test::temp_dir dir;
  const auto run = run_config(dir,
                              "name: in_process_test\n" + model_line() +
                                  "data: { path: sst2/dev.tsv, limit: 4 }\n"
                                  "quantizers: [{ plugin: throws-int }, { plugin: dynamic-int8 }]\n"
                                  "measure:\n"
                                  "  isolate: false\n"
                                  "  latency: { enabled: false }\n"
                                  "  layer_error: { enabled: false }\n",
                              {}, {"throws_int"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  ASSERT_TRUE(run.results.is_object()) << run.output;
  const auto& all = run.results["results"];
  ASSERT_EQ(all.size(), 3u) << run.output;
  EXPECT_EQ(all[1]["status"], "failed");
  EXPECT_FALSE(all[1].contains("process"));
  EXPECT_EQ(all[2]["status"], "ok");
}

// results.json names the quantizer that is running before it starts: a run killed during a
// quantizer still says which one it was.
TEST(ptq_runner, results_name_the_running_quantizer_before_it_starts) {
  qexp::test::temp_dir dir;
  const fs::path config = dir.path() / "exp.yaml";
  qexp::test::write_file(config, "name: running_test\n" + model_line() +
                                     "data: { path: sst2/dev.tsv, limit: 4 }\n"
                                     "quantizers: [{ plugin: hangs, label: endless }]\n"
                                     "measure: { latency: { enabled: false } }\n");
  const fs::path out = dir.path() / "results";
  const std::string results = (out / "results.json").string();
  // qexp in the background; once results.json holds a running row, qexp (not its child) is killed,
  // and the child must not outlive it.
  const auto r = qexp::test::run_command(
      "'" + qexp::test::qexp_bin().string() + "' --plugin-path " + QEXP_BROKEN_PLUGIN_DIR + "/hangs run '" +
      config.string() + "' --results-dir '" + out.string() + "' > /dev/null 2>&1 & pid=$!; " +
      "for i in $(seq 600); do grep -q '\"running\"' '" + results + "' 2>/dev/null && break; sleep 0.1; done; " +
      "kill -9 $pid; wait $pid; " +
      // "[r]" keeps the pattern from matching this shell's own command line.
      "for i in $(seq 50); do pgrep -f '[r]esults-dir " + out.string() + "' > /dev/null || break; sleep 0.1; done; " +
      "pgrep -f '[r]esults-dir " + out.string() + "' > /dev/null && echo 'child outlived qexp' || echo 'all gone'");
  ASSERT_NE(r.output.find("all gone"), std::string::npos) << r.output;
  const json doc = qexp::test::read_results(out / "results.json");
  ASSERT_EQ(doc["results"].size(), 2u) << doc.dump();
  EXPECT_EQ(doc["results"][1]["label"], "endless");
  EXPECT_EQ(doc["results"][1]["status"], "running");
  EXPECT_FALSE(doc["experiment"]["complete"].get<bool>());
}

TEST(ptq_runner, a_timeout_without_isolation_is_a_config_error) {
  qexp::test::temp_dir dir;
  const fs::path config = dir.path() / "exp.yaml";
  qexp::test::write_file(config, "name: t\n" + model_line() +
                                     "quantizers: [{ plugin: dynamic-int8 }]\n"
                                     "measure: { isolate: false, timeout_s: 10 }\n");
  const auto r = qexp::test::run_qexp("validate '" + config.string() + "'");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("measure.timeout_s needs measure.isolate: true"), std::string::npos) << r.output;
}

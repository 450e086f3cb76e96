// results.h: the results.json structs, their one writer and one tolerant reader, and
// docs/results.md kept in step with them.
#include "results.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"

namespace {

using nlohmann::json;
namespace results = qexp::results;

results::latency_entry probe_entry() {
  results::latency_entry e;
  e.batch_size = 8, e.threads = 2, e.tokens = 22, e.warmup = 10, e.iterations = 100, e.sentences = 200;
  e.mean_tokens = 24.9, e.p50_ms = 1.5, e.p90_ms = 1.75, e.p99_ms = 2.25, e.mean_ms = 1.625, e.stdev_ms = 0.125;
  e.throughput_per_s = 4923.5, e.tokenize_ms = 0.01, e.speedup_vs_fp32 = 2.5, e.baseline_p50_ms = 3.75;
  e.baseline_mean_ms = 4.0, e.samples_ms = std::vector<double>{1.5, 1.25, 2.25};
  return e;
}

// Every member of every struct set, none to its default.
results::document full_document() {
  results::document d;
  auto& x = d.experiment;
  x.name = "ptq_int8", x.kind = "ptq", x.description = "d", x.config_file = "/c.yaml";
  x.resolved_config = {{"name", "ptq_int8"}, {"seed", 0}};
  x.started_at = "2026-12-03T17:00:00Z", x.finished_at = "2026-12-03T17:01:00Z", x.wall_seconds = 60.5;
  x.output_dir = "/runs/ptq_int8/20261203-170000", x.complete = true;
  auto& e = d.environment.emplace();
  e.cpu_model = "AMD EPYC", e.isa = {{"avx2", true}, {"amx_int8", false}}, e.logical_cpus = 2, e.torch_threads = 1;
  e.libtorch = "1.13.1", e.onednn = "2.6", e.blas = "openblas", e.qexp_version = "0.4.0", e.git_commit = "abc";
  e.hostname = "h", e.os = "Linux";
  d.model = results::model_section{"/m", 768, 6, 37, 66955010};
  d.data = results::data_section{"/dev.tsv", 872, 128, 25.1};
  results::scheme_result r;
  r.label = "int8", r.plugin = "dynamic-int8", r.plugin_version = "1.0.0";
  r.options = results::option_map{{"granularity", "per_channel"}};
  r.is_baseline = true, r.status = "failed", r.error = std::string("boom");
  r.process = results::process_section{139, 11, true, "measuring accuracy", 3.5};
  r.layers_quantized = 36, r.sites_quantized = 37;
  r.recipe = std::vector<results::recipe_rule_section>{
      {"dynamic-int8", "1.0.0", {{"granularity", "per_channel"}}, {"*"}, {"*classifier"}, {"a", "b"}}};
  r.prepare_seconds = 1.25, r.calibration_seconds = 0.5;
  r.calibration = results::calibration_section{"/train.tsv", 256, 250, 16, 7, "float", 2.5};
  r.size = results::size_section{139000000, std::string("/ck.safetensors"), 0.52, std::string("baseline checkpoint"),
                                 std::map<std::string, std::int64_t>{{"embeddings", 1}, {"header", 2}}};
  r.latency = results::latency_section{{probe_entry()}, {probe_entry()}};
  auto& a = r.accuracy.emplace();
  a.sentences = 872, a.accuracy = 0.91, a.accuracy_delta_vs_fp32 = -0.0011;
  a.accuracy_delta_ci95 = std::array<double, 2>{-0.005, 0.002}, a.accuracy_delta_significant = false;
  a.mcnemar_p = 0.5, a.sentences_only_fp32_right = 3, a.sentences_only_this_right = 2, a.agreement_with_fp32 = 0.99;
  a.mean_kl_vs_fp32 = 1e-5, a.max_abs_dp_vs_fp32 = 0.25, a.logits_sqnr_db = 30.5, a.probe_total_abs_dp = 0.001;
  a.probe_probabilities = std::vector<double>{0.25, 0.75};
  r.layer_error = std::vector<results::layer_error_entry>{{"x", {}, {}, false}, {"y", 20.5, 0.0089, {}}};
  d.results = {r};
  results::sensitivity_section sens;
  sens.scheme = "int4", sens.modes = {"one_at_a_time"}, sens.ranked_by = "one_at_a_time.mean_kl_vs_fp32, highest first";
  sens.calibration_mode = "float", sens.batch_size = 8, sens.threads = 2;
  results::sensitivity_site site;
  site.rank = 1, site.site = "pre_classifier", site.kind = "linear", site.stage = 3, site.plugin = "int4";
  site.fp32_bytes = 66048, site.quantized_bytes = 9000, site.bytes_saved = 57048.0;
  site.site_sqnr_db = results::nullable<double>();  // outputs not finite: written as null
  site.site_nmse = results::nullable<double>(0.01);
  results::variant_measurement alone;
  alone.sentences = 872, alone.accuracy = 0.8, alone.mean_kl_vs_fp32 = 2e-6, alone.seconds = 0.25;
  site.one_at_a_time = alone;
  results::sensitivity_site failed;
  failed.site = "classifier", failed.error = "outputs are not finite";
  sens.sites = {site, failed};
  sens.cost = results::sensitivity_cost{};
  sens.cost->variants = 1, sens.cost->variant_seconds = 0.25, sens.cost->stages_run = 1;
  d.sensitivity = sens;
  results::autotune_section tune;
  tune.objective = "size", tune.constraint = results::autotune_constraint{"kl", 8e-6};
  tune.sites = std::vector<results::autotune_site>{{"pre_classifier", "linear", 3, 66048, 0.01, {{"int4", 9000, 0.005}}}};
  tune.sensitivity = {{"pre_classifier", "int4", 2e-6, -0.001, 0.1}};
  results::autotune_trial trial;
  trial.index = 0, trial.phase = "start", trial.levels = {"int4"}, trial.meets_constraint = true, trial.kept = true;
  trial.accuracy = a;  // same_as_trial stays null
  tune.trials = {trial};
  tune.chosen = trial;
  tune.chosen->recipe_file = "chosen_recipe.yaml", tune.chosen->sites = std::map<std::string, std::string>{{"pre_classifier", "int4"}};
  tune.met = true;
  tune.final = results::autotune_final{};
  tune.final->config = "chosen_recipe.yaml", tune.final->error = "one line";
  d.autotune = tune;
  return d;
}

// Every key of a JSON value and the values below it, as dotted paths ("results[].size.file_bytes").
void collect_paths(const json& j, const std::string& prefix, std::set<std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
      out.insert(path);
      if (path != "experiment.resolved_config")
        collect_paths(it.value(), path, out);
    }
  } else if (j.is_array()) {
    for (const auto& e : j) collect_paths(e, prefix + "[]", out);
  }
}

TEST(results, a_full_document_reads_back_as_written) {
  const json written = full_document();
  const json again = written.get<results::document>();
  EXPECT_EQ(again, written);
  // Every member reached the JSON: the struct lists it in `fields`.
  std::set<std::string> paths;
  collect_paths(written, "", paths);
  for (const char* key : {"results[].process.signal", "results[].latency.dataset[].baseline_mean_ms",
                          "results[].accuracy.logits_sqnr_db", "results[].recipe[].sites", "environment.isa.amx_int8",
                          "results[].calibration.seed", "results[].size.breakdown.header",
                          "sensitivity.sites[].one_at_a_time.seconds", "sensitivity.sites[].site_sqnr_db",
                          "sensitivity.cost.stages_run", "autotune.trials[].accuracy.mean_kl_vs_fp32",
                          "autotune.chosen.sites.pre_classifier", "autotune.sites[].levels[].site_ms",
                          "autotune.trials[].same_as_trial", "autotune.final.error"})
    EXPECT_TRUE(paths.count(key)) << key;
  EXPECT_EQ(written["results"][0]["accuracy"]["accuracy_delta_ci95"], json({-0.005, 0.002}));
  EXPECT_EQ(written["results"][0]["layer_error"][0], json({{"layer", "x"}, {"sqnr_db", nullptr}, {"nmse", nullptr},
                                                           {"finite", false}}));
  // An optional nullable: absent when unset, null when set empty, the number otherwise.
  EXPECT_EQ(written["sensitivity"]["sites"][0]["site_sqnr_db"], nullptr);
  EXPECT_EQ(written["sensitivity"]["sites"][0]["site_nmse"], 0.01);
  EXPECT_FALSE(written["sensitivity"]["sites"][1].contains("site_sqnr_db"));
}

TEST(results, empty_optionals_are_left_out_and_empty_nullables_are_null) {
  results::scheme_result r;
  r.label = "fp32", r.plugin = "fp32", r.status = "running";
  const json j = r;
  EXPECT_EQ(j, json({{"label", "fp32"}, {"plugin", "fp32"}, {"is_baseline", false}, {"status", "running"},
                     {"error", nullptr}}));
  EXPECT_EQ(j.get<results::scheme_result>().error.value, std::nullopt);
}

TEST(results, reading_is_tolerant_of_missing_keys_other_types_and_unknown_keys) {
  const json j = {{"label", 5},
                  {"status", "ok"},
                  {"unknown", {1, 2}},
                  {"size", {{"file_bytes", 1234.0}, {"ratio_to_fp32", "half"}, {"breakdown", {{"a", 1}, {"b", "x"}}}}},
                  {"accuracy", {{"sentences", 3.5}, {"accuracy", 0.5}, {"accuracy_delta_ci95", {1}}}},
                  {"latency", {{"probe", {{{"threads", -1}, {"batch_size", 1e19}}, 7}}}},
                  {"layer_error", "none"},
                  {"error", nullptr}};
  const auto r = j.get<results::scheme_result>();
  EXPECT_EQ(r.label, "");  // not a string
  EXPECT_TRUE(r.ok());
  ASSERT_TRUE(r.size);
  EXPECT_EQ(r.size->file_bytes, 1234);  // a whole number written as a float
  EXPECT_EQ(r.size->ratio_to_fp32, std::nullopt);
  EXPECT_EQ(*r.size->breakdown, (std::map<std::string, std::int64_t>{{"a", 1}}));
  ASSERT_TRUE(r.accuracy);
  EXPECT_EQ(r.accuracy->sentences, std::nullopt);  // 3.5 sentences is no count
  EXPECT_EQ(r.accuracy->accuracy, 0.5);
  EXPECT_EQ(r.accuracy->accuracy_delta_ci95, std::nullopt);
  ASSERT_TRUE(r.latency);
  ASSERT_EQ(r.latency->probe.size(), 1u);  // the entry that is no object is skipped
  EXPECT_EQ(r.latency->probe[0].threads, -1);
  EXPECT_EQ(r.latency->probe[0].batch_size, std::nullopt);  // beyond a 64-bit integer
  EXPECT_EQ(r.layer_error, std::nullopt);
  EXPECT_EQ(json(1).get<results::scheme_result>().status, "");  // not an object: every member empty
  results::calibration_section c = json({{"seed", -3}}).get<results::calibration_section>();
  EXPECT_EQ(c.seed, std::nullopt);  // the seed is unsigned
}

// The key column of each table in docs/results.md under `heading`: every `name` in the first cell.
std::set<std::string> documented_keys(const std::string& doc, const std::string& heading) {
  std::set<std::string> keys;
  const auto at = doc.find("\n" + heading + "\n");
  EXPECT_NE(at, std::string::npos) << "docs/results.md has no heading " << heading;
  if (at == std::string::npos) return keys;
  std::istringstream lines(doc.substr(at + heading.size() + 2));
  std::string line;
  bool in_table = false;
  while (std::getline(lines, line)) {
    if (line.rfind("#", 0) == 0) break;
    if (line.rfind("|", 0) != 0) {
      if (in_table) break;
      continue;
    }
    in_table = true;
    const std::string first = line.substr(1, line.find('|', 1) - 1);
    for (std::size_t open = first.find('`'); open != std::string::npos; open = first.find('`', open)) {
      const std::size_t close = first.find('`', open + 1);
      if (close == std::string::npos) break;
      keys.insert(first.substr(open + 1, close - open - 1));
      open = close + 1;
    }
  }
  keys.erase("key");
  return keys;
}

template <class T>
std::set<std::string> struct_keys() {
  const auto keys = results::keys_of<T>();
  return {keys.begin(), keys.end()};
}

TEST(results, docs_results_md_lists_exactly_the_keys_the_structs_write) {
  std::ifstream in(qexp::test::source_dir() / "docs" / "results.md");
  ASSERT_TRUE(in);
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(documented_keys(doc, "### Top level"), struct_keys<results::document>());
  EXPECT_EQ(documented_keys(doc, "### `experiment`"), struct_keys<results::experiment_section>());
  EXPECT_EQ(documented_keys(doc, "### `environment`"), struct_keys<results::environment_section>());
  EXPECT_EQ(documented_keys(doc, "### `model`"), struct_keys<results::model_section>());
  EXPECT_EQ(documented_keys(doc, "### `data`"), struct_keys<results::data_section>());
  EXPECT_EQ(documented_keys(doc, "### `results[]`"), struct_keys<results::scheme_result>());
  EXPECT_EQ(documented_keys(doc, "#### `size`"), struct_keys<results::size_section>());
  EXPECT_EQ(documented_keys(doc, "#### `latency.probe[]` and `latency.dataset[]`"),
            struct_keys<results::latency_entry>());
  EXPECT_EQ(documented_keys(doc, "#### `accuracy`"), struct_keys<results::accuracy_section>());
  EXPECT_EQ(documented_keys(doc, "#### `layer_error[]`"), struct_keys<results::layer_error_entry>());
  EXPECT_EQ(documented_keys(doc, "### `sensitivity` (kind `sensitivity`)"), struct_keys<results::sensitivity_section>());
  EXPECT_EQ(documented_keys(doc, "#### `sensitivity.sites[]`"), struct_keys<results::sensitivity_site>());
  EXPECT_EQ(documented_keys(doc, "#### `sensitivity.cost`"), struct_keys<results::sensitivity_cost>());
  EXPECT_EQ(documented_keys(doc, "### `autotune` (kind `autotune`)"), struct_keys<results::autotune_section>());
}

}  // namespace

// The qexp command line end to end: exit codes, validate, dry-run and plugin listing.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "test_support.h"

using qexp::test::run_qexp;

namespace {
std::string shipped(const std::string& config) { return "'" + (qexp::test::source_dir() / "configs" / config).string() + "'"; }
}  // namespace

TEST(cli, version_prints_and_exits_zero) {
  auto r = run_qexp("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output.rfind("qexp ", 0), 0u) << r.output;
}

TEST(cli, a_usage_error_exits_2) {
  EXPECT_EQ(run_qexp("").exit_code, 2);
  EXPECT_EQ(run_qexp("run").exit_code, 2);
  EXPECT_EQ(run_qexp("frobnicate").exit_code, 2);
}

TEST(cli, an_unknown_subcommand_is_named) {
  auto r = run_qexp("--log-level warn frobnicate --x");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(r.output, "qexp: unknown subcommand 'frobnicate'; run `qexp --help` for the list\n");
  r = run_qexp("valdate x.yaml");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown subcommand 'valdate'; did you mean 'validate'?"), std::string::npos) << r.output;
}

TEST(cli, errors_and_logs_go_to_stderr_and_stdout_holds_only_output) {
  auto r = qexp::test::run_command("( '" + qexp::test::qexp_bin().string() + "' validate /no/such.yaml 2>/dev/null )");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.output, "");
  r = qexp::test::run_command("( '" + qexp::test::qexp_bin().string() + "' validate /no/such.yaml >/dev/null )");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.output.find("[error] config file /no/such.yaml: no such file"), std::string::npos) << r.output;
}

TEST(cli, a_failed_write_to_stdout_exits_non_zero_with_one_line) {
  const auto golden = qexp::test::shared_dir() / "golden/distilbert-tiny-random";
  for (const std::string& command : {"predict --model '" + golden.string() + "'", "tokenize --model '" + golden.string() + "'",
                                    "validate " + shipped("ptq_int8.yaml")}) {
    auto r = qexp::test::run_command("( echo 'a fine film' | '" + qexp::test::qexp_bin().string() + "' " + command +
                                     " >/dev/full )");
    EXPECT_EQ(r.exit_code, 1) << command << ": " << r.output;
    EXPECT_NE(r.output.find("cannot write to standard output (No space left on device)"), std::string::npos)
        << command << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << command << ": " << r.output;
  }
}

TEST(cli, init_model_refuses_a_negative_seed) {
  qexp::test::temp_dir dir;
  auto r = run_qexp("init-model --preset distilbert-tiny --seed -1 --out '" + (dir.path() / "m").string() + "'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--seed"), std::string::npos) << r.output;
}

TEST(cli, predict_refuses_a_model_whose_logits_are_not_finite) {
  const auto golden = qexp::test::shared_dir() / "golden/distilbert-tiny-random";
  auto r = qexp::test::run_command("echo 'a fine film' | '" + qexp::test::qexp_bin().string() + "' --plugin-path " +
                                   QEXP_PROBE_PLUGIN_DIR + " predict --json --model '" + golden.string() +
                                   "' --quantizer calibration-probe --set fail=nan --set calibrate=false");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("quantized by calibration-probe: logits of input line 1 are not finite"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("null"), std::string::npos) << r.output;
}

TEST(cli, a_latin1_description_is_refused_before_anything_runs) {
  qexp::test::temp_dir dir;
  qexp::test::write_file(dir.path() / "c.yaml",
                         "name: latin1\ndescription: caf\xe9\nmodel: { path: " +
                             (qexp::test::shared_dir() / "golden/distilbert-tiny-random").string() +
                             " }\nquantizers: [ { plugin: fp32 } ]\n");
  for (const char* command : {"validate", "run --dry-run"}) {
    auto r = run_qexp(std::string(command) + " '" + (dir.path() / "c.yaml").string() + "'");
    EXPECT_EQ(r.exit_code, 3) << command << ": " << r.output;
    EXPECT_NE(r.output.find("(key 'description') is 0xE9, not UTF-8"), std::string::npos) << r.output;
  }
}

TEST(cli, validate_accepts_the_main_config) {
  auto r = run_qexp("validate " + shipped("ptq_int8.yaml"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(cli, a_config_error_exits_3_with_one_line) {
  auto r = run_qexp("validate " + shipped("ptq_int8.yaml") + " --set measure.latency.warmup=soon");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("--set measure.latency.warmup=soon"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

// A plugin option is a config key like any other: an unknown one or a bad value exits 3, as an
// unknown config key does (5 is for a plugin that cannot be loaded or fails).
TEST(cli, a_bad_plugin_option_exits_3_naming_the_option) {
  auto r = run_qexp("validate " + shipped("ptq_int8.yaml") + " --set quantizers.0.options.colour=red");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("unknown option 'colour'"), std::string::npos) << r.output;
  auto value = run_qexp("validate " + shipped("ptq_int8.yaml") + " --set quantizers.0.options.granularity=per_row");
  EXPECT_EQ(value.exit_code, 3) << value.output;
  EXPECT_NE(value.output.find("option 'granularity' expects one of"), std::string::npos) << value.output;
  auto unknown_key = run_qexp("validate " + shipped("ptq_int8.yaml") + " --set measure.colour=red");
  EXPECT_EQ(unknown_key.exit_code, 3) << unknown_key.output;
}

TEST(cli, a_missing_config_file_exits_3) {
  auto r = run_qexp("validate /no/such/config.yaml");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("/no/such/config.yaml"), std::string::npos) << r.output;
}

TEST(cli, dry_run_output_parses_back_to_the_same_config) {
  qexp::test::temp_dir dir;
  auto first = run_qexp("run " + shipped("ptq_int8.yaml") + " --dry-run --set seed=7");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  qexp::test::write_file(dir.path() / "resolved.yaml", first.output);
  auto second = run_qexp("run '" + (dir.path() / "resolved.yaml").string() + "' --dry-run");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(first.output, second.output);
  EXPECT_NE(first.output.find("seed: 7"), std::string::npos);
}

TEST(cli, plugins_json_lists_fp32_with_its_options) {
  auto r = run_qexp("plugins --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto all = nlohmann::json::parse(r.output);
  bool found = false;
  for (const auto& p : all) {
    if (p["id"] != "fp32") continue;
    found = true;
    EXPECT_TRUE(p["supported"].get<bool>());
    ASSERT_EQ(p["options"].size(), 1u);
    EXPECT_EQ(p["options"][0]["name"], "backend");
    EXPECT_EQ(p["options"][0]["type"], "choice");
    EXPECT_EQ(p["options"][0]["default"], "auto");  // the model's own default Linear
  }
  EXPECT_TRUE(found) << r.output;
}

TEST(cli, docs_config_md_is_the_current_schema) {
  auto r = run_qexp("schema");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string doc = qexp::test::read_file(qexp::test::source_dir() / "docs/config.md");
  const std::string marker = "generated by tools/update-config-doc.sh from `qexp schema`. -->\n\n";
  const auto at = doc.find(marker);
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(doc.substr(at + marker.size()), r.output) << "run tools/update-config-doc.sh";
}

TEST(cli, docs_plugin_options_md_is_the_in_tree_plugins_option_tables) {
  auto r = qexp::test::run_command("env -u QEXP_PLUGIN_PATH '" + qexp::test::qexp_bin().string() + "' plugins --markdown");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* id : {"dynamic-int8", "onednn-int8", "static-int8", "int4", "embedding-int8"})
    EXPECT_NE(r.output.find(std::string("## plugin: ") + id + "\n"), std::string::npos) << id;
  EXPECT_NE(r.output.find("| `granularity` | one of per_tensor \\| per_channel |"), std::string::npos) << r.output;
  const std::string doc = qexp::test::read_file(qexp::test::source_dir() / "docs/plugin-options.md");
  const std::string marker = "generated by tools/update-config-doc.sh from `qexp plugins --markdown`. -->\n\n";
  const auto at = doc.find(marker);
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(doc.substr(at + marker.size()), r.output) << "run tools/update-config-doc.sh";
}

TEST(cli, predict_with_a_quantizer_matches_torch_quantize_dynamic) {
  // The golden file's logits_dynamic_int8_onednn come from torch.quantization.quantize_dynamic
  // with the onednn engine: dynamic-int8's per-tensor default is that scheme.
  const auto golden = qexp::test::shared_dir() / "golden/distilbert-tiny-random";
  std::ifstream in(golden / "expected.jsonl");
  std::string line;
  std::string texts;
  std::vector<nlohmann::json> expected;
  while (std::getline(in, line)) {
    auto record = nlohmann::json::parse(line);
    if (record["text"].get<std::string>().find('\n') != std::string::npos) continue;
    texts += record["text"].get<std::string>() + "\n";
    expected.push_back(record);
  }
  qexp::test::temp_dir dir;
  qexp::test::write_file(dir.path() / "texts.txt", texts);
  auto r = run_qexp("predict --json --model '" + golden.string() + "' --quantizer dynamic-int8 < '" +
                    (dir.path() / "texts.txt").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream out(r.output);
  std::size_t i = 0;
  while (std::getline(out, line) && i < expected.size()) {
    auto got = nlohmann::json::parse(line);
    for (int k = 0; k < 2; ++k)
      EXPECT_NEAR(got["logits"][k].get<double>(), expected[i]["logits_dynamic_int8_onednn"][k].get<double>(), 1e-5)
          << expected[i]["text"];
    ++i;
  }
  EXPECT_EQ(i, expected.size());
}

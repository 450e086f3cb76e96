// The qexp command line end to end: exit codes, validate, dry-run and plugin listing.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

TEST(cli, a_bad_plugin_option_exits_5_naming_the_option) {
  auto r = run_qexp("validate " + shipped("ptq_int8.yaml") + " --set quantizers.0.options.colour=red");
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find("unknown option 'colour'"), std::string::npos) << r.output;
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
    EXPECT_EQ(p["options"][0]["default"], "blas");
  }
  EXPECT_TRUE(found) << r.output;
}

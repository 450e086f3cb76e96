// The conformance suite itself (qexp/conformance.h) and `qexp check-plugin`: the cases derived from
// option specs and variants, and that plugins which break one promise each are caught by the check
// that names it, without taking the process down. The deliberately broken plugins are built from
// tests/broken_plugins/broken_plugin.cpp (cases 10 to 15).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "qexp/conformance.h"
#include "qexp/errors.h"
#include "qexp/plugin_registry.h"
#include "test_support.h"

namespace qexp {
namespace {

namespace fs = std::filesystem;

fs::path broken(const std::string& name) { return fs::path(QEXP_BROKEN_PLUGIN_DIR) / name; }

plugin_registry registry_of(const std::string& folder) {
  plugin_registry registry;
  for (const auto& f : fs::directory_iterator(broken(folder))) registry.load(f.path());
  return registry;
}

const conformance_check* find_check(const std::vector<conformance_check>& checks, const std::string& name) {
  for (const auto& c : checks)
    if (c.name == name) return &c;
  return nullptr;
}

std::vector<std::string> failed_names(const std::vector<conformance_check>& checks) {
  std::vector<std::string> out;
  for (const auto& c : checks)
    if (!c.passed) out.push_back(c.name);
  return out;
}

std::string describe(const std::vector<conformance_check>& checks) {
  std::string out;
  for (const auto& c : checks)
    out += (c.skipped ? "SKIP " : c.passed ? "PASS " : "FAIL ") + c.name + ": " + c.detail + "\n";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cases from specs and variants.

int supported_yes(const char**) { return 1; }

TEST(conformance_cases, derive_single_changes_range_ends_and_declared_variants_without_duplicates) {
  const option_spec specs[] = {
      {"mode", option_type::choice, "a", "a choice", "a|b|c"},
      {"flag", option_type::boolean, "true", "a boolean"},
      {"bits", option_type::integer, "4", "bounded integer", nullptr, "2", "8"},
      {"count", option_type::integer, "1", "bounded below only, at its default", nullptr, "1"},
      {"steps", option_type::integer, "10", "a non-integer bound rounds inwards", nullptr, "2.5", nullptr},
      {"alpha", option_type::number, "0.5", "bounded number", nullptr, "0", "1"},
      {"free", option_type::number, "0.5", "unbounded: never varied"},
      {"label", option_type::string, "x", "strings only through variants"},
      {"file", option_type::path, "", "paths only through variants"},
  };
  const char* const variants[] = {"flag=false,mode=b", "mode=b", "mode=a,bits=3", "label=y", nullptr};
  qexp_plugin_info info{};
  info.api_version = QEXP_PLUGIN_API_VERSION;
  info.id = "made-up";
  info.options = specs;
  info.n_options = sizeof(specs) / sizeof(specs[0]);
  info.supported = supported_yes;
  info.variants = variants;

  std::vector<std::string> names;
  for (const auto& c : conformance_cases(info)) {
    EXPECT_EQ(c.plugin, "made-up");
    EXPECT_EQ(c.name, conformance_case_name(c.options));
    names.push_back(c.name);
  }
  const std::vector<std::string> expected{"defaults", "mode=b",   "mode=c",  "flag=false",        "bits=2",
                                          "bits=8",   "steps=3",  "alpha=0", "alpha=1",           "flag=false,mode=b",
                                          "bits=3",   "label=y"};
  EXPECT_EQ(names, expected);
}

TEST(conformance_cases, a_plugin_without_options_has_one_case) {
  qexp_plugin_info info{};
  info.id = "bare";
  EXPECT_EQ(conformance_cases(info).size(), 1u);
  EXPECT_EQ(conformance_case_name({}), "defaults");
  EXPECT_EQ(conformance_case_name({{"b", "2"}, {"a", "1"}}), "a=1,b=2");
}

// ---------------------------------------------------------------------------------------------
// run_conformance on plugins that break one promise each.

TEST(run_conformance, a_dequantized_weight_that_lies_fails_that_check_only) {
  auto registry = registry_of("lying_weight");
  const auto checks = run_conformance(registry, {"lying-weight", {}, "defaults"});
  EXPECT_EQ(failed_names(checks), std::vector<std::string>{"linear.dequantized_weight_is_what_forward_multiplies_by"})
      << describe(checks);
  const auto* check = find_check(checks, "linear.dequantized_weight_is_what_forward_multiplies_by");
  ASSERT_TRUE(check);
  EXPECT_NE(check->detail.find("one-hot"), std::string::npos) << check->detail;
  EXPECT_EQ(check->detail.find('\n'), std::string::npos);
}

// The model runs the last block on [CLS] rows alone on this claim: a Linear that makes it falsely
// fails that check.
TEST(run_conformance, a_false_rows_independent_claim_fails_that_check_only) {
  auto registry = registry_of("row_mixing");
  const auto checks = run_conformance(registry, {"row-mixing", {}, "defaults"});
  EXPECT_EQ(failed_names(checks), std::vector<std::string>{"linear.rows_independent_holds_when_claimed"})
      << describe(checks);
  const auto* check = find_check(checks, "linear.rows_independent_holds_when_claimed");
  ASSERT_TRUE(check);
  EXPECT_NE(check->detail.find("alone differs from its row of the whole call"), std::string::npos) << check->detail;
}

TEST(run_conformance, a_load_that_is_not_bit_identical_fails_the_save_load_check) {
  auto registry = registry_of("lossy_load");
  const auto checks = run_conformance(registry, {"lossy-load", {}, "defaults"});
  EXPECT_EQ(failed_names(checks), std::vector<std::string>{"linear.save_then_load_gives_bit_identical_outputs"})
      << describe(checks);
}

TEST(run_conformance, a_plugin_throwing_a_non_std_exception_fails_checks_instead_of_crashing) {
  auto registry = registry_of("throws_int");
  const auto checks = run_conformance(registry, {"throws-int", {}, "defaults"});
  const auto* odd = find_check(checks, "linear.odd_shapes_match_the_float64_reference");
  ASSERT_TRUE(odd) << describe(checks);
  EXPECT_FALSE(odd->passed);
  EXPECT_NE(odd->detail.find("not a std::exception"), std::string::npos) << odd->detail;
  const auto* width = find_check(checks, "linear.wrong_input_width_is_an_error_not_a_crash");
  ASSERT_TRUE(width);
  EXPECT_FALSE(width->passed) << "an int is not the exception the contract asks for";
}

// A wrong width must be qexp::input_error (exit 4, as in the float Linear) and an id out of range
// std::out_of_range: another exception type fails the check and names what was thrown.
TEST(run_conformance, bad_input_refused_with_the_wrong_error_type_fails_those_checks) {
  auto registry = registry_of("untyped_errors");
  const auto checks = run_conformance(registry, {"untyped-errors", {}, "defaults"});
  EXPECT_EQ(failed_names(checks), (std::vector<std::string>{"linear.wrong_input_width_is_an_error_not_a_crash",
                                                            "table.out_of_range_id_is_an_error_not_a_crash"}))
      << describe(checks);
  const auto* width = find_check(checks, "linear.wrong_input_width_is_an_error_not_a_crash");
  ASSERT_TRUE(width);
  EXPECT_NE(width->detail.find("is not a qexp::input_error"), std::string::npos) << width->detail;
  const auto* id = find_check(checks, "table.out_of_range_id_is_an_error_not_a_crash");
  ASSERT_TRUE(id);
  EXPECT_NE(id->detail.find("is not a std::out_of_range"), std::string::npos) << id->detail;
}

TEST(run_conformance, a_correct_table_plugin_passes_the_table_checks_and_gets_no_linear_ones) {
  auto registry = registry_of("float_table");
  const auto checks = run_conformance(registry, {"float-table", {}, "defaults"});
  EXPECT_TRUE(failed_names(checks).empty()) << describe(checks);
  EXPECT_TRUE(find_check(checks, "table.out_of_range_id_is_an_error_not_a_crash")) << describe(checks);
  EXPECT_TRUE(find_check(checks, "table.save_then_load_gives_bit_identical_lookups"));
  for (const auto& c : checks) EXPECT_NE(c.name.rfind("linear.", 0), 0u) << c.name;
  EXPECT_GE(checks.size(), 9u);
}

TEST(run_conformance, a_dequantized_table_that_lies_fails_the_lookup_check) {
  auto registry = registry_of("lying_table");
  const auto checks = run_conformance(registry, {"lying-table", {}, "defaults"});
  EXPECT_EQ(failed_names(checks), std::vector<std::string>{"table.lookup_matches_the_dequantized_and_float_tables"})
      << describe(checks);
}

// The calibrating plugin refuses prepare() before finish_calibration(), so passing also shows the
// suite runs begin, observe and finish_calibration first; its one-hot outputs are not exactly v.
TEST(run_conformance, a_correct_calibrating_plugin_passes) {
  auto registry = registry_of("calibrating");
  const auto checks = run_conformance(registry, {"calibrating", {}, "defaults"});
  EXPECT_TRUE(failed_names(checks).empty()) << describe(checks);
  EXPECT_GE(checks.size(), 12u) << describe(checks);
}

TEST(run_conformance, a_plugin_that_cannot_run_here_gives_one_skipped_entry) {
  auto registry = registry_of("unsupported");
  const auto checks = run_conformance(registry, {"not-here", {}, "defaults"});
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_TRUE(checks[0].skipped);
  EXPECT_FALSE(checks[0].passed);
  EXPECT_NE(checks[0].detail.find("instruction set"), std::string::npos) << checks[0].detail;
}

TEST(run_conformance, options_that_do_not_resolve_are_one_failed_setup_check) {
  auto registry = registry_of("options_check");
  const auto checks = run_conformance(registry, {"options-check", {{"level", "high"}}, "level=high"});
  ASSERT_EQ(checks.size(), 1u) << describe(checks);
  EXPECT_EQ(checks[0].name, "options_and_budget");
  EXPECT_FALSE(checks[0].passed);
  EXPECT_NE(checks[0].detail.find("level"), std::string::npos) << checks[0].detail;
}

TEST(run_conformance, a_failing_factory_is_one_failed_creation_check) {
  auto registry = registry_of("failing_factory");
  const auto checks = run_conformance(registry, {"failing-factory", {}, "defaults"});
  EXPECT_EQ(failed_names(checks), std::vector<std::string>{"linear.create_quantizer"}) << describe(checks);
  EXPECT_EQ(checks.size(), 2u);
}

TEST(run_conformance, an_unknown_plugin_is_a_plugin_error) {
  plugin_registry registry;
  EXPECT_THROW(run_conformance(registry, {"nowhere", {}, "defaults"}), plugin_error);
}

// ---------------------------------------------------------------------------------------------
// qexp check-plugin.

std::string in(const std::string& folder) { return "--plugin-path '" + broken(folder).string() + "'"; }

TEST(check_plugin, names_the_failing_check_and_exits_1) {
  auto r = test::run_qexp("check-plugin lying-weight " + in("lying_weight"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("FAIL linear.dequantized_weight_is_what_forward_multiplies_by: "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("PASS linear.odd_shapes_match_the_float64_reference"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" passed, 1 failed"), std::string::npos) << r.output;
}

TEST(check_plugin, survives_a_plugin_that_throws_an_int) {
  auto r = test::run_qexp("check-plugin throws-int " + in("throws_int"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("not a std::exception"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" failed"), std::string::npos) << r.output;
}

// Issue 17: each case runs in a child process, so a crash or a hang fails its case, not the suite.
TEST(check_plugin, a_plugin_that_segfaults_aborts_or_hangs_fails_its_case_with_exit_1) {
  auto segfault = test::run_qexp_with_deliberate_crashes("check-plugin segfaults " + in("segfaults"));
  EXPECT_EQ(segfault.exit_code, 1) << segfault.output;
  EXPECT_NE(segfault.output.find("FAIL case_runs_to_the_end: the case's process "), std::string::npos)
      << segfault.output;
  EXPECT_NE(segfault.output.find("was killed by signal 11 (Segmentation fault) after 0 check(s) (a crash in the "
                                 "plugin, most likely)"),
            std::string::npos)
      << segfault.output;
  EXPECT_NE(segfault.output.find("0 passed, 1 failed"), std::string::npos) << segfault.output;

  auto aborted = test::run_qexp("check-plugin aborts " + in("aborts"));
  EXPECT_EQ(aborted.exit_code, 1) << aborted.output;
  EXPECT_NE(aborted.output.find("was killed by signal 6 (Aborted)"), std::string::npos) << aborted.output;

  auto hang = test::run_qexp("check-plugin hangs --timeout 3 " + in("hangs"));
  EXPECT_EQ(hang.exit_code, 1) << hang.output;
  EXPECT_NE(hang.output.find("FAIL case_runs_to_the_end: the case's process was killed after 3 s (--timeout)"),
            std::string::npos)
      << hang.output;
}

TEST(check_plugin, passes_fp32_in_every_case) {
  auto r = test::run_qexp("check-plugin fp32");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("case defaults"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("case backend=blas"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" passed, 0 failed"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("FAIL"), std::string::npos) << r.output;
}

TEST(check_plugin, set_checks_one_option_set) {
  auto r = test::run_qexp("check-plugin fp32 --set backend=blas");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 case"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("case backend=blas"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("case defaults"), std::string::npos) << r.output;
}

TEST(check_plugin, the_global_plugin_path_works_too_and_table_plugins_pass) {
  auto r = test::run_qexp(in("float_table") + " check-plugin float-table");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("PASS table.lookup_matches_the_dequantized_and_float_tables"), std::string::npos)
      << r.output;
}

// An unknown option is a mistake in what was written for the plugin (exit 3, as in a config), an
// unknown or broken plugin exit 5.
TEST(check_plugin, an_unknown_plugin_exits_5_an_unknown_option_3_and_a_malformed_set_2) {
  auto unknown = test::run_qexp("check-plugin no-such-plugin");
  EXPECT_EQ(unknown.exit_code, 5) << unknown.output;
  EXPECT_NE(unknown.output.find("no-such-plugin"), std::string::npos) << unknown.output;
  auto option = test::run_qexp("check-plugin fp32 --set backnd=blas");
  EXPECT_EQ(option.exit_code, 3) << option.output;
  EXPECT_NE(option.output.find("backnd"), std::string::npos) << option.output;
  auto malformed = test::run_qexp("check-plugin fp32 --set backend");
  EXPECT_EQ(malformed.exit_code, 2) << malformed.output;
  auto broken_path = test::run_qexp("check-plugin fp32 " + in("api_version"));
  EXPECT_EQ(broken_path.exit_code, 5) << broken_path.output;
}

TEST(check_plugin, a_plugin_that_cannot_run_here_is_skipped_with_exit_0) {
  auto r = test::run_qexp("check-plugin not-here " + in("unsupported"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SKIP"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0 passed, 0 failed, 1 skipped"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace qexp

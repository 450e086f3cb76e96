// The plugin seam: discovery, ABI checks, option validation and factory failures. Every broken
// case must end in one plugin_error naming the file and the cause, never a crash.
#include "qexp/plugin_registry.h"

#include <ATen/ATen.h>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "qexp/errors.h"
#include "qexp/float_linear.h"
#include "test_support.h"

namespace fs = std::filesystem;
using qexp::config_error;
using qexp::plugin_error;
using qexp::plugin_registry;

namespace {

fs::path broken(const std::string& name) { return fs::path(QEXP_BROKEN_PLUGIN_DIR) / name; }

// The message of the plugin_error that discovering `folder` alone throws.
std::string discovery_error(const fs::path& folder) {
  try {
    plugin_registry registry;
    for (const auto& f : fs::directory_iterator(folder)) registry.load(f.path());
  } catch (const plugin_error& e) {
    return e.what();
  }
  return "";
}

plugin_registry registry_of(const std::string& folder) {
  plugin_registry registry;
  for (const auto& f : fs::directory_iterator(broken(folder))) registry.load(f.path());
  return registry;
}

}  // namespace

TEST(plugin_registry, discovers_the_fp32_plugin_on_the_search_path) {
  auto registry = plugin_registry::discover();
  const auto& fp32 = registry.find("fp32");
  EXPECT_EQ(std::string(fp32.info->version), "1.0.0");
  EXPECT_TRUE(fp32.supported);
  ASSERT_GE(fp32.info->n_options, 1u);
  EXPECT_EQ(std::string(fp32.info->options[0].name), "backend");
}

TEST(plugin_registry, a_text_file_is_not_a_shared_library) {
  const std::string message = discovery_error(broken("not_a_library"));
  EXPECT_NE(message.find("libqexp-text.so"), std::string::npos) << message;
  EXPECT_NE(message.find("not a shared library"), std::string::npos) << message;
}

TEST(plugin_registry, a_library_without_the_entry_symbol_is_rejected) {
  const std::string message = discovery_error(broken("no_entry"));
  EXPECT_NE(message.find("libqexp-broken_no_entry.so"), std::string::npos) << message;
  EXPECT_NE(message.find("no 'qexp_plugin_entry' symbol"), std::string::npos) << message;
}

TEST(plugin_registry, an_api_version_mismatch_is_reported_with_both_versions) {
  const std::string message = discovery_error(broken("api_version"));
  // The broken plugin declares the host's version + 98.
  const std::string expected = "incompatible plugin API version (plugin: " + std::to_string(QEXP_PLUGIN_API_VERSION + 98) +
                               ", host: " + std::to_string(QEXP_PLUGIN_API_VERSION) + ")";
  EXPECT_NE(message.find(expected), std::string::npos) << message;
}

TEST(plugin_registry, a_plugin_built_against_another_libtorch_is_rejected) {
  const std::string message = discovery_error(broken("torch_version"));
  EXPECT_NE(message.find("built against libtorch"), std::string::npos) << message;
}

TEST(plugin_registry, a_plugin_built_with_the_other_string_abi_is_rejected) {
  const std::string message = discovery_error(broken("cxx_abi"));
  EXPECT_NE(message.find("_GLIBCXX_USE_CXX11_ABI"), std::string::npos) << message;
}

TEST(plugin_registry, two_plugins_with_one_id_are_an_error_naming_both_files) {
  const std::string message = discovery_error(broken("duplicate"));
  EXPECT_NE(message.find("plugin id 'twin' is already provided by"), std::string::npos) << message;
  EXPECT_NE(message.find("broken_duplicate_a"), std::string::npos) << message;
  EXPECT_NE(message.find("broken_duplicate_b"), std::string::npos) << message;
}

TEST(plugin_registry, a_missing_search_path_entry_is_an_error) {
  EXPECT_THROW(plugin_registry::discover({"/nonexistent/plugins"}), plugin_error);
}

TEST(plugin_registry, options_are_checked_against_the_plugin_specs) {
  auto registry = registry_of("options_check");
  auto values = registry.resolve_options("options-check", {});
  EXPECT_EQ(values.get_int("level"), 1);  // the default
  EXPECT_EQ(registry.resolve_options("options-check", {{"level", "+7"}}).get_string("level"), "7");
  try {
    registry.resolve_options("options-check", {{"levle", "2"}}, "x.yaml:3:4");
    FAIL() << "unknown option accepted";
  } catch (const config_error& e) {  // a mistake in the config, exit 3 like an unknown config key
    EXPECT_STREQ(e.what(), "x.yaml:3:4: plugin 'options-check': unknown option 'levle'; did you mean 'level'?");
  }
  try {
    registry.resolve_options("options-check", {{"level", "high"}});
    FAIL() << "wrong type accepted";
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "plugin 'options-check': option 'level' expects an integer, got 'high'");
  }
}

TEST(plugin_registry, choice_options_suggest_the_closest_choice) {
  auto registry = plugin_registry::discover();
  try {
    registry.resolve_options("fp32", {{"backend", "onednm"}});
    FAIL() << "bad choice accepted";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("got 'onednm'; did you mean 'onednn'?"), std::string::npos) << e.what();
  }
}

TEST(plugin_registry, an_unknown_plugin_id_suggests_a_known_one) {
  auto registry = plugin_registry::discover();
  try {
    registry.find("fp23");
    FAIL();
  } catch (const plugin_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown plugin 'fp23'; did you mean 'fp32'?"), std::string::npos) << e.what();
  }
}

TEST(plugin_registry, a_failing_factory_reports_its_reason) {
  auto registry = registry_of("failing_factory");
  try {
    registry.create_linear("failing-factory");
    FAIL();
  } catch (const plugin_error& e) {
    EXPECT_NE(std::string(e.what()).find("factory failed: calibration table missing"), std::string::npos) << e.what();
  }
}

TEST(plugin_registry, a_throwing_factory_becomes_a_plugin_error) {
  auto registry = registry_of("throwing_factory");
  try {
    registry.create_linear("throwing-factory");
    FAIL();
  } catch (const plugin_error& e) {
    EXPECT_NE(std::string(e.what()).find("factory threw: out of coffee"), std::string::npos) << e.what();
  }
}

TEST(plugin_registry, an_unsupported_plugin_is_listed_but_cannot_be_created) {
  auto registry = registry_of("unsupported");
  const auto& record = registry.find("not-here");
  EXPECT_FALSE(record.supported);
  EXPECT_EQ(record.unsupported_reason, "needs an instruction set this test pretends is missing");
  EXPECT_THROW(registry.create_linear("not-here"), plugin_error);
}

TEST(plugin_registry, the_fp32_plugin_prepares_a_working_linear) {
  auto registry = plugin_registry::discover();
  for (const char* backend : {"blas", "onednn", "qexp", "auto"}) {
    auto quantizer = registry.create_linear("fp32", {{"backend", backend}});
    qexp::layer l{"test.lin", at::randn({24, 40}), at::randn({24})};
    auto linear = quantizer->prepare(l);
    auto x = at::randn({3, 5, 40});
    auto expected = at::matmul(x, l.weight.t()) + l.bias;
    EXPECT_TRUE(at::allclose(linear->forward(x), expected, 1e-4, 1e-4)) << backend;
    EXPECT_EQ(linear->packed_bytes(), (24 * 40 + 24) * sizeof(float));
  }
}

TEST(plugin_registry, the_cli_turns_each_broken_plugin_into_one_error_line_and_exit_code_5) {
  for (const char* folder : {"not_a_library", "no_entry", "api_version", "torch_version", "cxx_abi", "duplicate"}) {
    auto result = qexp::test::run_qexp("--plugin-path '" + broken(folder).string() + "' plugins");
    EXPECT_EQ(result.exit_code, 5) << folder << ": " << result.output;
    EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1) << result.output;
    EXPECT_NE(result.output.find("[error] plugin "), std::string::npos) << result.output;
  }
}

TEST(plugin_registry, the_fp32_baseline_defaults_to_the_models_own_float_linear) {
  auto registry = plugin_registry::discover();
  EXPECT_STREQ(registry.find("fp32").info->options[0].default_value, "auto");
  // Backends sum in different orders: the same bits mean the same kernel.
  at::manual_seed(8);
  qexp::layer l{"test.lin", at::randn({200, 300}), at::randn({200})};
  const auto x = at::randn({25, 300});
  const auto baseline = registry.create_linear("fp32")->prepare(l)->forward(x);
  EXPECT_TRUE(at::equal(baseline, qexp::make_float_linear(l)->forward(x)));
  for (const auto other : {qexp::float_backend::blas, qexp::float_backend::onednn, qexp::float_backend::qexp}) {
    if (other == qexp::default_float_backend()) continue;
    EXPECT_FALSE(at::equal(baseline, qexp::make_float_linear(l, other)->forward(x))) << qexp::to_string(other);
  }
}

// Issue 17: a library cut short would be mapped past its end by dlopen (SIGBUS); a FIFO would
// block the ELF check forever.
TEST(plugin_registry, a_truncated_library_on_the_path_is_skipped_with_a_warning) {
  qexp::test::temp_dir dir;
  const auto fp32 = plugin_registry::discover().find("fp32").file;
  const std::string bytes = qexp::test::read_file(fp32);
  for (const std::size_t keep : {std::size_t{10}, std::size_t{100}, bytes.size() / 2, bytes.size() - 1})
    qexp::test::write_file(dir.path() / ("libqexp-cut-" + std::to_string(keep) + ".so"), bytes.substr(0, keep));
  auto result = qexp::test::run_qexp("--plugin-path '" + dir.path().string() + "' plugins");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("fp32"), std::string::npos) << result.output;
  for (const std::size_t keep : {std::size_t{100}, bytes.size() / 2, bytes.size() - 1})
    EXPECT_NE(result.output.find("libqexp-cut-" + std::to_string(keep) + ".so: skipped: truncated shared library"),
              std::string::npos)
        << keep << ": " << result.output;
  // Loaded by name, it is an error naming it.
  try {
    plugin_registry registry;
    registry.load(dir.path() / ("libqexp-cut-" + std::to_string(bytes.size() / 2) + ".so"));
    ADD_FAILURE() << "no error";
  } catch (const plugin_error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated shared library"), std::string::npos) << e.what();
  }
}

TEST(plugin_registry, a_fifo_on_the_path_is_an_error_not_a_hang) {
  qexp::test::temp_dir dir;
  ASSERT_EQ(mkfifo((dir.path() / "libqexp-fifo.so").c_str(), 0600), 0);
  auto result = qexp::test::run_qexp("--plugin-path '" + dir.path().string() + "' plugins");
  EXPECT_EQ(result.exit_code, 5) << result.output;
  EXPECT_NE(result.output.find("libqexp-fifo.so: is a FIFO, expected a regular file"), std::string::npos)
      << result.output;
}

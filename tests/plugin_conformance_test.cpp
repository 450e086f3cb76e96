// The plugin conformance suite under ctest: every plugin the registry discovers, with every case
// conformance_cases() derives for it, goes through qexp::run_conformance (framework/src/
// conformance.cpp, the same checks `qexp check-plugin` runs), one test per case. Budgets are the
// plugins' own (their `budget` callback); this file knows no plugin but the three it expects to find.
#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "qexp/conformance.h"
#include "qexp/plugin_registry.h"

namespace qexp {

// How GoogleTest prints a case (found by argument-dependent lookup, so in namespace qexp).
void PrintTo(const conformance_case& c, std::ostream* os) { *os << c.plugin << " {" << c.name << "}"; }

namespace {

struct discovery {
  plugin_registry registry;
  std::vector<conformance_case> cases;
  std::vector<std::string> test_names;  // one per case: "dynamic_int8_granularity_per_channel"
  std::string error;  // set when discovery itself failed: the discovery test reports it
};

std::string sanitize(const std::string& text) {
  std::string out;
  for (char ch : text) out += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return out;
}

discovery& discovered() {
  static discovery* d = [] {
    auto* result = new discovery();
    try {
      result->registry = plugin_registry::discover();
      for (const auto& record : result->registry.plugins())
        for (auto& c : conformance_cases(*record.info)) result->cases.push_back(std::move(c));
      std::set<std::string> taken;
      for (const auto& c : result->cases) {
        std::string name = sanitize(c.plugin + "_" + c.name);
        while (!taken.insert(name).second) name += "_";
        result->test_names.push_back(name);
      }
    } catch (const std::exception& e) {
      result->error = e.what();
    }
    return result;
  }();
  return *d;
}

TEST(plugin_conformance_discovery, finds_the_plugins_of_this_tree) {
  ASSERT_TRUE(discovered().error.empty()) << discovered().error;
  std::set<std::string> ids;
  for (const auto& c : discovered().cases) ids.insert(c.plugin);
  for (const char* id : {"fp32", "dynamic-int8", "onednn-int8"}) EXPECT_TRUE(ids.count(id)) << id;
}

class plugin_conformance : public ::testing::TestWithParam<conformance_case> {};

TEST_P(plugin_conformance, meets_the_plugin_contract) {
  const conformance_case& c = GetParam();
  const auto checks = run_conformance(discovered().registry, c);
  ASSERT_FALSE(checks.empty()) << "run_conformance returned no checks";
  if (checks.size() == 1 && checks.front().skipped) GTEST_SKIP() << c.plugin << ": " << checks.front().detail;
  for (const auto& check : checks) {
    EXPECT_TRUE(check.passed) << check.name << ": " << check.detail;
    for (const auto& [what, value] : check.measured) {
      std::ostringstream text;
      text << std::scientific << value;
      RecordProperty(check.name + "." + what, text.str());
    }
  }
  // A Linear plugin gets the setup check, the creation check and the Linear checks at least.
  EXPECT_GE(checks.size(), 3u);
}

std::string case_name(const ::testing::TestParamInfo<conformance_case>& info) {
  return discovered().test_names.at(info.index);
}

INSTANTIATE_TEST_SUITE_P(every_plugin, plugin_conformance, ::testing::ValuesIn(discovered().cases), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(plugin_conformance);

}  // namespace
}  // namespace qexp

// `qexp check-plugin ID [--set key=value]... [--plugin-path DIR]...`: the conformance suite
// (qexp/conformance.h) on one plugin, in tree or not, judged by the budgets the plugin itself
// declares. Without --set it checks every case conformance_cases() derives from the plugin's option
// specs and variants; with --set, that one option set.
//
// Output: a line per case ("case NAME"), a line per check ("PASS name: detail", "FAIL name:
// detail"), and "N passed, M failed" last. Exit 0 when every check passed, 1 when one failed, 2 for
// a malformed --set, 5 when the plugin cannot be found or loaded or --set does not fit its options.
// A plugin that cannot run on this CPU is not a failure: each case prints "SKIP" with the reason,
// the closing line counts them as skipped, and the exit code is 0.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "qexp/conformance.h"
#include "qexp/errors.h"
#include "qexp/plugin_registry.h"

namespace {

struct check_plugin_options {
  std::string id;
  std::vector<std::string> sets;
  std::vector<std::string> plugin_paths;
};

int check_plugin(const check_plugin_options& o) {
  std::map<std::string, std::string> given;
  for (const auto& s : o.sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "check-plugin: --set expects key=value, got '" << s << "'\n";
      return static_cast<int>(qexp::exit_code::usage);
    }
    given[s.substr(0, eq)] = s.substr(eq + 1);
  }

  std::vector<std::filesystem::path> paths(qexp::cli::globals().plugin_paths.begin(),
                                           qexp::cli::globals().plugin_paths.end());
  paths.insert(paths.end(), o.plugin_paths.begin(), o.plugin_paths.end());
  const auto registry = qexp::plugin_registry::discover(paths);
  const qexp::plugin_record& record = registry.find(o.id);  // plugin_error (exit 5) when absent

  std::vector<qexp::conformance_case> cases;
  if (o.sets.empty()) {
    cases = qexp::conformance_cases(*record.info);
  } else {
    registry.resolve_options(o.id, given, "--set");  // plugin_error (exit 5) naming a bad option
    cases.push_back({o.id, given, qexp::conformance_case_name(given)});
  }

  std::cout << "check-plugin " << o.id << " " << record.info->version << " (" << record.file.string() << "): "
            << cases.size() << " case" << (cases.size() == 1 ? "" : "s") << "\n";
  int passed = 0, failed = 0, skipped = 0;
  for (const auto& c : cases) {
    std::cout << "case " << c.name << std::endl;
    const auto started = std::chrono::steady_clock::now();
    const auto checks = qexp::run_conformance(registry, c);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    for (const auto& check : checks) {
      const char* verdict = check.skipped ? "SKIP" : check.passed ? "PASS" : "FAIL";
      std::cout << "  " << verdict << " " << check.name << (check.detail.empty() ? "" : ": " + check.detail) << "\n";
      (check.skipped ? skipped : check.passed ? passed : failed)++;
    }
    char took[64];
    std::snprintf(took, sizeof took, "  (%.1f s)", seconds);
    std::cout << took << std::endl;
  }
  std::cout << passed << " passed, " << failed << " failed";
  if (skipped) std::cout << ", " << skipped << " skipped (" << o.id << " cannot run on this CPU: "
                         << record.unsupported_reason << ")";
  std::cout << std::endl;
  return failed ? static_cast<int>(qexp::exit_code::runtime_failure) : 0;
}

}  // namespace

QEXP_COMMAND("check-plugin",
             "Run the conformance suite on a plugin: every option set it declares, or the one --set gives",
             [](CLI::App& cmd, std::function<int()>& run) {
               auto o = std::make_shared<check_plugin_options>();
               cmd.add_option("ID", o->id, "Plugin id, as `qexp plugins` lists it")->required();
               cmd.add_option("--set", o->sets,
                              "key=value: check this one option set instead of every case (repeatable)");
               cmd.add_option("--plugin-path", o->plugin_paths,
                              "Folder or .so file to search for plugins (repeatable), as the global option");
               cmd.footer(
                   "Prints PASS/FAIL per check and 'N passed, M failed'. Exit 0 when all pass (also when the "
                   "plugin cannot run on this CPU: every case prints SKIP), 1 when a check fails, 2 for a "
                   "malformed --set, 5 when the plugin cannot be found or loaded or --set names a bad option.");
               run = [o] { return check_plugin(*o); };
             });

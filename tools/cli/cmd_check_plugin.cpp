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
//
// Each case runs in a child process (qexp/isolation.h: this program again, told by case_variable
// which case to run), so a plugin that crashes or hangs fails its case with how the process
// ended, and the other cases still run. --no-isolate runs them in this process (for a debugger).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "qexp/conformance.h"
#include "qexp/errors.h"
#include "qexp/isolation.h"
#include "qexp/plugin_registry.h"

#include <nlohmann/json.hpp>

namespace {

struct check_plugin_options {
  std::string id;
  std::vector<std::string> sets;
  std::vector<std::string> plugin_paths;
  bool no_isolate = false;
  double timeout_s = 300;
};

// Set in the environment of the child process that runs one case.
constexpr const char* case_variable = "QEXP_CHECK_PLUGIN_CASE";

nlohmann::json check_json(const qexp::conformance_check& c) {
  return {{"name", c.name}, {"passed", c.passed}, {"skipped", c.skipped}, {"detail", c.detail}, {"measured", c.measured}};
}

qexp::conformance_check check_from(const nlohmann::json& j) {
  qexp::conformance_check c;
  c.name = j.at("name").get<std::string>();
  c.passed = j.at("passed").get<bool>();
  c.skipped = j.at("skipped").get<bool>();
  c.detail = j.at("detail").get<std::string>();
  c.measured = j.at("measured").get<std::map<std::string, double>>();
  return c;
}

// One case in a child process: its checks as the child sent them, and a failed check when the
// child did not finish.
std::vector<qexp::conformance_check> run_case_in_child(std::size_t index, double timeout_s) {
  const auto child = qexp::run_isolated(qexp::this_program_command_line(), {{case_variable, std::to_string(index)}},
                                        timeout_s);
  std::vector<qexp::conformance_check> checks;
  for (const auto& message : child.messages) {
    const auto j = nlohmann::json::parse(message, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("name")) checks.push_back(check_from(j));
  }
  if (!child.finished) {
    qexp::conformance_check crashed;
    crashed.name = "case_runs_to_the_end";
    crashed.detail = "the case's process " + child.ending("--timeout") + " after " + std::to_string(checks.size()) +
                     " check(s)" + (child.signal > 0 && !child.timed_out ? " (a crash in the plugin, most likely)" : "");
    checks.push_back(crashed);
  }
  return checks;
}

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
    registry.resolve_options(o.id, given, "--set");  // config_error (exit 3) naming a bad option
    cases.push_back({o.id, given, qexp::conformance_case_name(given)});
  }

  if (const char* only = std::getenv(case_variable)) {
    // The child's side of run_case_in_child: one case, each check sent to the parent.
    const auto& send = qexp::parent_channel();
    const std::size_t index = std::stoul(only);
    if (!send || index >= cases.size()) throw qexp::error(std::string(case_variable) + " is set, but this process "
                                                         "was not started by check-plugin for one of its cases");
    for (const auto& check : qexp::run_conformance(registry, cases[index])) send(check_json(check).dump());
    return 0;
  }

  std::cout << "check-plugin " << o.id << " " << record.info->version << " (" << record.file.string() << "): "
            << cases.size() << " case" << (cases.size() == 1 ? "" : "s") << "\n";
  int passed = 0, failed = 0, skipped = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    std::cout << "case " << c.name << std::endl;
    const auto started = std::chrono::steady_clock::now();
    const auto checks = o.no_isolate ? qexp::run_conformance(registry, c) : run_case_in_child(i, o.timeout_s);
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
               cmd.add_flag("--no-isolate", o->no_isolate,
                            "Run the cases in this process instead of one child process each (a crash then ends "
                            "check-plugin; for debuggers)");
               cmd.add_option("--timeout", o->timeout_s,
                              "Seconds one case may run in its child process before it is killed and fails (0: no "
                              "limit)")
                   ->check(CLI::NonNegativeNumber)
                   ->capture_default_str();
               cmd.footer(
                   "Prints PASS/FAIL per check and 'N passed, M failed'. Exit 0 when all pass (also when the "
                   "plugin cannot run on this CPU: every case prints SKIP), 1 when a check fails (a case whose "
                   "process crashes or runs past --timeout fails case_runs_to_the_end), 2 for a "
                   "malformed --set, 5 when the plugin cannot be found or loaded or --set names a bad option.");
               run = [o] { return check_plugin(*o); };
             });

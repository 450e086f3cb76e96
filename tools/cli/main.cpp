// qexp: post-training quantization experiments. This file wires the global options, logging and
// the mapping from error kinds to exit codes; the subcommands live in cmd_*.cpp.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>

#include "cli.h"
#include "qexp/suggest.h"
#include "qexp/text.h"
#include "qexp/version.h"

namespace qexp::cli {
namespace {

struct registered_command {
  std::string name, description;
  command_setup setup;
};

std::vector<registered_command>& registry() {
  static std::vector<registered_command> commands;
  return commands;
}

global_options& mutable_globals() {
  static global_options g;
  return g;
}

}  // namespace

const global_options& globals() { return mutable_globals(); }

plugin_registry discover_plugins() {
  std::vector<std::filesystem::path> paths(globals().plugin_paths.begin(), globals().plugin_paths.end());
  return plugin_registry::discover(paths);
}

void check_stdout() {
  std::cout.flush();
  if (std::cout && std::fflush(stdout) == 0 && !std::ferror(stdout)) return;
  const int e = errno;
  throw qexp::error(std::string("cannot write to standard output (") + (e ? std::strerror(e) : "write failed") +
                    "); the output is incomplete");
}

command_registration::command_registration(const char* name, const char* description,
                                           command_setup setup) {
  registry().push_back({name, description, std::move(setup)});
}

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const auto& c : registry()) names.push_back(c.name);
  return names;
}

}  // namespace qexp::cli

namespace {

// The first word that is not a global option or its value: the subcommand. CLI11 reports an
// unknown one as "A subcommand is required"; qexp names it.
std::string unknown_subcommand(int argc, char** argv) {
  std::vector<std::string> names;
  for (const auto& c : qexp::cli::command_names()) names.push_back(c);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") return "";
    if (arg == "--plugin-path" || arg == "--log-level") {
      ++i;
      continue;
    }
    if (!arg.empty() && arg[0] == '-') continue;
    if (std::find(names.begin(), names.end(), arg) != names.end()) return "";
    return "unknown subcommand '" + arg + "'" + qexp::did_you_mean(arg, names) + "; run `qexp --help` for the list";
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace qexp::cli;
  // Logs and errors go to standard error: standard output carries only what a command prints
  // (predictions, tables, JSON), so that it can be redirected to a file or a pipe.
  spdlog::set_default_logger(spdlog::stderr_color_mt("qexp"));
  CLI::App app{"qexp: post-training quantization experiments on transformer models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("qexp ") + qexp::version_string());
  bool verbose = false;
  std::string log_level = "info";
  app.add_flag("-v,--verbose", verbose, "Log debug messages (same as --log-level debug)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--plugin-path", mutable_globals().plugin_paths,
                 "Folder or .so file to search for plugins (repeatable); searched before "
                 "QEXP_PLUGIN_PATH and the built-in plugin folder");
  app.footer(
      "Exit codes: 0 ok, 1 runtime failure, 2 usage, 3 config error, 4 input/checkpoint error, "
      "5 plugin error.");

  std::function<int()> selected;
  std::vector<std::unique_ptr<std::function<int()>>> runners;
  for (auto& command : registry()) {
    auto* sub = app.add_subcommand(command.name, command.description);
    runners.push_back(std::make_unique<std::function<int()>>());
    command.setup(*sub, *runners.back());
    auto* runner = runners.back().get();
    sub->callback([&selected, runner] { selected = *runner; });
  }

  if (const std::string unknown = unknown_subcommand(argc, argv); !unknown.empty()) {
    std::cerr << "qexp: " << unknown << "\n";
    return static_cast<int>(qexp::exit_code::usage);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 has its own code per parse error; qexp documents one: 2 for any usage error.
    return app.exit(e) == 0 ? 0 : static_cast<int>(qexp::exit_code::usage);
  }

  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_level(spdlog::level::from_str(verbose ? "debug" : log_level));

  try {
    const int code = selected ? selected() : 0;
    check_stdout();
    return code;
  } catch (const qexp::error& e) {
    spdlog::error("{}", qexp::error_message(e));
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    spdlog::error("{}", qexp::error_message(e));
    return static_cast<int>(qexp::exit_code::runtime_failure);
  }
}

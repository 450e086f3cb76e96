// The qexp command line is one CLI11 app; each subcommand lives in its own cmd_<name>.cpp and
// registers itself with QEXP_COMMAND, so adding a command is adding a file.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "qexp/errors.h"
#include "qexp/plugin_registry.h"

namespace qexp::cli {

// Options every subcommand sees (set on the top-level app before the subcommand runs).
struct global_options {
  std::vector<std::string> plugin_paths;  // --plugin-path, searched before QEXP_PLUGIN_PATH
};

const global_options& globals();

// The plugins on the search path (--plugin-path entries first).
plugin_registry discover_plugins();

// `setup` adds the subcommand's options to `cmd`; the callback it installs returns the exit code.
using command_setup = std::function<void(CLI::App& cmd, std::function<int()>& run)>;

struct command_registration {
  command_registration(const char* name, const char* description, command_setup setup);
};

// The names of the registered subcommands.
std::vector<std::string> command_names();

// Flushes standard output and throws qexp::error (exit 1) when a write to it failed (a full disk,
// a closed descriptor): a command whose output was lost must not exit 0. main() calls it after
// every command; commands that print as they go call it after each record.
void check_stdout();

}  // namespace qexp::cli

#define QEXP_COMMAND_CONCAT2(a, b) a##b
#define QEXP_COMMAND_CONCAT(a, b) QEXP_COMMAND_CONCAT2(a, b)
// Variadic so that the setup lambda may contain commas.
#define QEXP_COMMAND(NAME, DESCRIPTION, ...)                                     \
  static const ::qexp::cli::command_registration QEXP_COMMAND_CONCAT(           \
      qexp_command_registration_, __LINE__)(NAME, DESCRIPTION, __VA_ARGS__)

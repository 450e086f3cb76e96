// Running a command line through /bin/sh and reading what it prints: the one popen wrapper
// (the environment probe's git describe, the Slurm executor's sbatch and squeue).
#pragma once

#include <string>

namespace qexp {

struct shell_result {
  int exit_code = -1;  // 128 + the signal when one ended it; -1 when /bin/sh could not start
  std::string output;  // its standard output; when /bin/sh could not start, why
};

// Runs `command_line` with /bin/sh (popen). Standard error is not captured: the command line says
// where it goes ("2>&1" to read it, "2>/dev/null" to drop it).
shell_result run_shell(const std::string& command_line);

// `text` as one shell word: unchanged when it holds only characters the shell leaves alone,
// otherwise in single quotes.
std::string shell_quote(const std::string& text);

}  // namespace qexp

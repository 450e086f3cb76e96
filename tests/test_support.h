// Helpers shared by the test files: where the shared reference data and the built binaries are.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace qexp::test {

// ../shared beside the checkout (QEXP_SHARED_DIR); the tests need its golden and data folders.
std::filesystem::path shared_dir();
std::filesystem::path source_dir();
std::filesystem::path binary_dir();
// The built qexp executable (QEXP_BIN).
std::filesystem::path qexp_bin();

struct command_result {
  int exit_code;
  std::string output;  // stdout and stderr together
};
// Runs a shell command line and captures what it prints.
command_result run_command(const std::string& command_line);
// Runs the built qexp with these arguments (already shell-quoted where needed).
command_result run_qexp(const std::string& arguments);
// run_qexp for a test whose plugin segfaults on purpose: under AddressSanitizer (tools/sanitize.sh)
// that segfault is not a finding, and the signal is left to end the process, as without it.
command_result run_qexp_with_deliberate_crashes(const std::string& arguments);

// An experiment run through the CLI: `qexp --plugin-path <probe plugins> run CONFIG --results-dir
// DIR`, with DIR/results.json read back (null when the run wrote none).
struct experiment_run {
  int exit_code = 0;
  std::string output;
  nlohmann::json results;
  std::filesystem::path dir;
};
experiment_run run_experiment(const std::filesystem::path& config, const std::filesystem::path& results_dir);
// A results.json, parsed; a test failure (not an exception) when it does not read back through
// results.h's structs as the same document, so every run a test makes checks the structs cover it.
nlohmann::json read_results(const std::filesystem::path& file);

// A fresh temporary folder, removed when the object goes.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& content);

}  // namespace qexp::test

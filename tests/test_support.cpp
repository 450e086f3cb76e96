#include "test_support.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "results.h"

namespace qexp::test {
namespace {

std::filesystem::path env_path(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

// The library and the qexp processes a test starts read these; point them at this build and at
// ../shared unless the caller already did.
const bool environment_ready = [] {
  setenv("QEXP_PLUGIN_PATH", QEXP_TEST_PLUGIN_PATH, 0);
  setenv("QEXP_DATA_PATH", QEXP_TEST_DATA_PATH, 0);
  setenv("OMP_NUM_THREADS", "1", 0);
  return true;
}();

}  // namespace

std::filesystem::path shared_dir() { return env_path("QEXP_SHARED_DIR", QEXP_TEST_SHARED_DIR); }
std::filesystem::path source_dir() { return env_path("QEXP_SOURCE_DIR", QEXP_TEST_SOURCE_DIR); }
std::filesystem::path binary_dir() { return env_path("QEXP_BINARY_DIR", QEXP_TEST_BINARY_DIR); }
std::filesystem::path qexp_bin() { return env_path("QEXP_BIN", QEXP_TEST_BIN); }

command_result run_command(const std::string& command_line) {
  std::string full = command_line + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run: " + command_line);
  std::string output;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  int status = pclose(pipe);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, output};
}

command_result run_qexp(const std::string& arguments) {
  return run_command("'" + qexp_bin().string() + "' " + arguments);
}

command_result run_qexp_with_deliberate_crashes(const std::string& arguments) {
  return run_command("ASAN_OPTIONS=\"$ASAN_OPTIONS:handle_segv=0\" '" + qexp_bin().string() + "' " + arguments);
}

experiment_run run_experiment(const std::filesystem::path& config, const std::filesystem::path& results_dir) {
  const auto r = run_qexp(std::string("--plugin-path '") + QEXP_PROBE_PLUGIN_DIR + "' run '" + config.string() +
                          "' --results-dir '" + results_dir.string() + "'");
  experiment_run run{r.exit_code, r.output, nullptr, results_dir};
  if (std::filesystem::exists(results_dir / "results.json")) run.results = read_results(results_dir / "results.json");
  return run;
}

nlohmann::json read_results(const std::filesystem::path& file) {
  const auto doc = nlohmann::json::parse(read_file(file));
  const nlohmann::json again = doc.get<qexp::results::document>();
  if (again != doc)
    ADD_FAILURE() << file.string() << " does not read back as itself through results.h (a key the structs do not "
                  << "list, or of another type); the difference: " << nlohmann::json::diff(doc, again).dump();
  return doc;
}

temp_dir::temp_dir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() / ("qexp-test-" + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

temp_dir::~temp_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::filesystem::path& path, const std::string& content) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace qexp::test

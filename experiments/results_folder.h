// One run's results folder, as every experiment kind writes it: runs/<name>/<timestamp>/ (or the
// folder a sweep names) with config.yaml, and results.json rewritten atomically after each row,
// with the report files rebuilt from it (docs/results.md).
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "experiment.h"
#include "results.h"

namespace qexp {

// "2026-12-02T17:43:35Z" with the default format.
std::string utc_stamp(const char* format = "%Y-%m-%dT%H:%M:%SZ");

// A resolved config as JSON, scalars typed back from the text the schema wrote.
nlohmann::json yaml_to_json(const YAML::Node& node);

class results_folder {
 public:
  // Creates the folder (request.results_dir, else <request.out_root or output_dir>/<name>/<stamp>),
  // writes config.yaml and a first results.json with complete: false.
  results_folder(const std::string& kind, const std::string& name, const std::string& description,
                 const std::filesystem::path& config_file, const YAML::Node& resolved, const std::string& output_dir,
                 const run_request& request);

  const std::filesystem::path& dir() const { return dir_; }
  results::document& doc() { return doc_; }
  // Appends a row to "results" and writes; returns its index.
  std::size_t append(const results::scheme_result& row);
  // Rewrites results.json (and the report) with the document as it is now.
  void write();
  // Marks the run complete and writes.
  void finish();
  double elapsed_seconds() const;

 private:
  std::filesystem::path dir_;
  results::document doc_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace qexp

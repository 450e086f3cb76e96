#include "results_folder.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <ctime>

#include "results_report.h"
#include "qexp/environment.h"
#include "qexp/errors.h"
#include "qexp/text.h"

namespace qexp {
namespace fs = std::filesystem;
using nlohmann::json;

std::string utc_stamp(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, format, &tm);
  return buffer;
}

json yaml_to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    json out = json::object();
    for (const auto& e : n) out[e.first.as<std::string>()] = yaml_to_json(e.second);
    return out;
  }
  if (n.IsSequence()) {
    json out = json::array();
    for (const auto& e : n) out.push_back(yaml_to_json(e));
    return out;
  }
  if (!n.IsScalar()) return nullptr;
  // The resolved config holds typed scalars; recover the type from the text the schema wrote.
  const std::string text = n.Scalar();
  if (text == "true" || text == "false") return text == "true";
  char* end = nullptr;
  const long long i = std::strtoll(text.c_str(), &end, 10);
  if (!text.empty() && *end == '\0') return i;
  const double d = std::strtod(text.c_str(), &end);
  if (!text.empty() && *end == '\0') return d;
  return text;
}

namespace {

fs::path make_run_dir(const fs::path& root, const std::string& name) {
  const fs::path base = fs::absolute(root) / name;
  fs::create_directories(base);
  const std::string stamp = utc_stamp("%Y%m%d-%H%M%S");
  fs::path dir = base / stamp;
  for (int suffix = 2; fs::exists(dir); ++suffix) dir = base / (stamp + "-" + std::to_string(suffix));
  fs::create_directories(dir);
  return dir;
}

}  // namespace

results_folder::results_folder(const std::string& kind, const std::string& name, const std::string& description,
                               const fs::path& config_file, const YAML::Node& resolved, const std::string& output_dir,
                               const run_request& request)
    : started_(std::chrono::steady_clock::now()) {
  const fs::path root = request.out_root.empty() ? fs::path(output_dir) : request.out_root;
  if (request.results_dir.empty()) {
    dir_ = make_run_dir(root, name);
  } else {
    dir_ = fs::absolute(request.results_dir);
    fs::create_directories(dir_);
  }
  write_text_atomically(dir_ / "config.yaml", to_yaml_text(resolved));
  auto& e = doc_.experiment;
  e.name = name;
  e.kind = kind;
  e.description = description;
  e.config_file = config_file.string();
  e.resolved_config = yaml_to_json(resolved);
  e.started_at = utc_stamp();
  e.output_dir = dir_.string();
  doc_.environment = json(environment_json(config_file.parent_path())).get<results::environment_section>();
  spdlog::info("experiment '{}': results in {}", name, dir_.string());
}

double results_folder::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

std::size_t results_folder::append(const results::scheme_result& row) {
  doc_.results.push_back(row);
  write();
  return doc_.results.size() - 1;
}

void results_folder::write() {
  doc_.experiment.finished_at = utc_stamp();
  doc_.experiment.wall_seconds = elapsed_seconds();
  // Text that is not UTF-8 (a plugin's strings, a path) is written as U+FFFD rather than lost
  // with the whole file; config strings were already checked to be UTF-8.
  write_text_atomically(dir_ / "results.json", json(doc_).dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  try {
    rebuild_report(dir_);
  } catch (const std::exception& e) {
    const bool complete = doc_.experiment.complete;
    spdlog::warn("report not rebuilt ({}); results.json is written{}", error_message(e),
                 complete ? " and complete" : " (the run is not finished: complete is false)");
  }
}

void results_folder::finish() {
  doc_.experiment.complete = true;
  write();
}

}  // namespace qexp

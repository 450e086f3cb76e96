// The `ptq` experiment: its YAML schema and the typed view the driver works with.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "qexp/config_schema.h"
#include "qexp/layer_selection.h"
#include "qexp/recipe.h"

namespace qexp {

// One row of the results: a recipe (a plain `{plugin, options, layers}` entry is a one-rule
// recipe; `rules:` lists several).
struct quantizer_entry {
  std::string label;  // the row name in results; defaults to the rules' plugins and options
  recipe scheme;      // scheme.label == label
  std::string where;  // "configs/x.yaml:7:5": the entry, for messages
};

struct calibration_settings {
  std::filesystem::path data_path;  // resolved; checked to exist only when a plugin calibrates
  int sentences = 128;              // 0: no calibration data
  int batch_size = 8;
  std::uint64_t seed = 0;
  calibration_mode mode = calibration_mode::float_inputs;
  std::string where;  // "configs/x.yaml:12:3": the calibration section, for messages
};

struct latency_settings {
  bool enabled = true;
  int warmup = 10;
  int iterations = 100;
  std::vector<int> batch_sizes{1, 8};
  std::vector<int> threads{1};
  std::string probe_text;
  int dataset_sentences = 200;  // dev sentences timed one batch at a time
};

struct accuracy_settings {
  bool enabled = true;
  int batch_size = 1;
};

struct layer_error_settings {
  bool enabled = true;
  int batches = 4;
  int batch_size = 8;
};

struct ptq_config {
  std::filesystem::path source_file;  // the YAML, absolute
  std::string name, description;
  std::filesystem::path model_path;
  std::filesystem::path data_path;
  int max_length = 128;
  std::int64_t data_limit = 0;  // 0: every sentence
  quantizer_entry baseline;
  std::vector<quantizer_entry> quantizers;
  calibration_settings calibration;
  bool measure_size = true;
  // Each quantizer measured in a child process (qexp/isolation.h): a crash costs only its row.
  bool isolate = true;
  double timeout_s = 0;  // per quantizer, with isolate; 0: no limit
  latency_settings latency;
  accuracy_settings accuracy;
  layer_error_settings layer_error;
  std::string output_dir;
  std::uint64_t seed = 0;
};

extern const char* const default_probe_text;

schema_node ptq_schema();
// The typed view of a resolved document (call after resolve_config with ptq_schema()).
ptq_config ptq_config_from(const YAML::Node& resolved, const config_source& source);

}  // namespace qexp

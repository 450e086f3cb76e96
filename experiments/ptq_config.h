// The `ptq` experiment: its YAML schema and the typed view the driver works with.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "qexp/config_schema.h"
#include "qexp/layer_selection.h"
#include "qexp/plugin_registry.h"
#include "measurement.h"
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
  // Resolved against the data search path; checked to exist only when a plugin calibrates.
  std::filesystem::path data_path = "sst2/train.tsv";
  int sentences = 128;              // 0: no calibration data
  int batch_size = 8;
  std::uint64_t seed = 0;
  calibration_mode mode = calibration_mode::float_inputs;
  std::string where;  // "configs/x.yaml:12:3": the calibration section, for messages
};

// What every kind that measures a model on labelled sentences (ptq, sensitivity, autotune) reads
// alike: the config file, name, description, model and data sections, output folder and seed.
struct experiment_basics {
  std::filesystem::path source_file;  // the YAML, absolute
  std::string name, description;
  std::filesystem::path model_path;
  std::filesystem::path data_path;
  int max_length = 128;
  std::int64_t data_limit = 0;  // 0: every sentence
  std::string output_dir;
  std::uint64_t seed = 0;
};
experiment_basics experiment_basics_from(const YAML::Node& resolved, const config_source& source);

struct ptq_config : experiment_basics {
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
};

// The sections of a ptq config that the other kinds (sensitivity, autotune) share, so they read,
// validate and document alike.
schema_node recipe_entry_schema(const std::string& default_plugin);  // {plugin, options, layers} or rules
quantizer_entry quantizer_from(const YAML::Node& entry, const config_source& source, const std::string& key);
schema_node model_section_schema();
schema_node data_section_schema();
schema_node calibration_section_schema(bool with_mode);
calibration_settings calibration_from(const YAML::Node& section, const config_source& source);
schema_node layer_error_section_schema();
layer_error_settings layer_error_from(const YAML::Node& section);
schema_node output_section_schema();
// Checks each recipe against the plugins and the model's sites (a rule that matches no site is an
// error), the files, and the calibration data when a plugin will ask for it. Returns the per-site
// assignment of each recipe, for the user.
std::string validate_recipes(const std::vector<quantizer_entry>& entries, const std::filesystem::path& model_path,
                             const std::filesystem::path& data_path, const calibration_settings& calibration,
                             const config_source& source, const plugin_registry& plugins);
schema_node seed_field();

schema_node ptq_schema();
// The typed view of a resolved document (call after resolve_config with ptq_schema()).
ptq_config ptq_config_from(const YAML::Node& resolved, const config_source& source);

}  // namespace qexp

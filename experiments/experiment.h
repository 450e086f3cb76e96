// Experiment kinds: each driver in this folder registers the `kind:` it handles, with its schema,
// its checks beyond the schema (plugins and their options) and its run function. The host picks
// one by the `kind:` key of the YAML and knows no driver by name.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "qexp/config_schema.h"
#include "qexp/plugin_registry.h"

namespace qexp {

struct run_request {
  std::filesystem::path out_root;     // --out, else the config's output.dir ("runs" under the current folder)
  std::filesystem::path results_dir;  // --results-dir: write exactly here (sweeps), not <root>/<name>/<stamp>
  const plugin_registry* plugins = nullptr;
  // Global options a child `qexp` needs to see the same plugins (--plugin-path DIR ...), for the
  // kinds that start qexp runs of their own (autotune's local and Slurm trial executors).
  std::vector<std::string> global_args;
};

struct experiment_kind {
  std::string name;
  std::string summary;
  std::function<schema_node()> schema;
  // Cross-key checks the schema cannot express, without files or plugins (e.g. an entry gives a
  // plugin or rules, not both); load_experiment runs them, so --dry-run fails on them too.
  std::function<void(const YAML::Node& resolved, const config_source& source)> check;
  // Semantic checks the schema cannot do (plugins exist, their options are valid, files exist).
  // Returns notes for the user, e.g. which sites each recipe rule got ("" when none).
  std::function<std::string(const YAML::Node& resolved, const config_source& source, const plugin_registry& plugins)>
      validate;
  // Runs the experiment; returns the process exit code.
  std::function<int(const YAML::Node& resolved, const config_source& source, const run_request& request)> run;
};

struct experiment_kind_registration {
  explicit experiment_kind_registration(experiment_kind kind);
};

const experiment_kind& find_experiment_kind(const std::string& name);
std::vector<std::string> experiment_kind_names();

// The keys every kind shares (name, kind, description), to start each kind's schema with.
std::vector<std::pair<std::string, schema_node>> common_experiment_fields(const std::string& kind);

// Fields several kinds' data sections share, so they read and validate alike.
schema_node max_length_field();                       // tokens per sentence, 2..512, default 128
schema_node sentence_limit_field(const std::string& which);  // "use the first N <which> (0: all)"

struct loaded_experiment {
  YAML::Node resolved;
  config_source source;
  const experiment_kind* kind = nullptr;
};

// Reads the YAML, applies --set overrides, picks the kind and resolves against its schema.
loaded_experiment load_experiment(const std::filesystem::path& file, const std::vector<std::string>& overrides);

}  // namespace qexp

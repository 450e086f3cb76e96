#include "experiment.h"

#include <map>

#include "qexp/errors.h"
#include "qexp/suggest.h"

namespace qexp {
namespace {

std::map<std::string, experiment_kind>& kinds() {
  static std::map<std::string, experiment_kind> all;
  return all;
}

}  // namespace

experiment_kind_registration::experiment_kind_registration(experiment_kind kind) {
  std::string name = kind.name;
  kinds().emplace(std::move(name), std::move(kind));
}

std::vector<std::string> experiment_kind_names() {
  std::vector<std::string> names;
  for (const auto& [name, kind] : kinds()) names.push_back(name);
  return names;
}

const experiment_kind& find_experiment_kind(const std::string& name) {
  auto it = kinds().find(name);
  if (it == kinds().end()) {
    std::string known;
    for (const auto& n : experiment_kind_names()) known += (known.empty() ? "" : ", ") + n;
    throw config_error("unknown experiment kind '" + name + "'" + did_you_mean(name, experiment_kind_names()) +
                       " (known: " + known + ")");
  }
  return it->second;
}

std::vector<std::pair<std::string, schema_node>> common_experiment_fields(const std::string& kind) {
  return {
      {"name", schema_node::of(value_kind::string,
                               "experiment name, one folder name (no `/`, not `..`); results go to "
                               "`<output.dir>/<name>/<timestamp>/`")
                   .is_required()
                   .as_folder_name()},
      {"kind", schema_node::choice_of(experiment_kind_names(), "experiment driver").with_default(kind)},
      {"description", schema_node::of(value_kind::string, "free text kept with the results").with_default("")},
  };
}

schema_node max_length_field() {
  return schema_node::of(value_kind::integer, "tokens per sentence, [CLS] and [SEP] included")
      .at_least(2)
      .at_most(512)
      .with_default(128);
}

schema_node sentence_limit_field(const std::string& which) {
  return schema_node::of(value_kind::integer, "use the first N " + which + " (0: all)").at_least(0).with_default(0);
}

loaded_experiment load_experiment(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  loaded_experiment out;
  out.source.file = file;
  out.source.data_search_path = default_data_search_path(file);
  YAML::Node document = load_yaml_file(file);
  apply_overrides(document, overrides, out.source);
  out.source.document = document;
  std::string kind = "ptq";
  if (document.IsMap() && document["kind"]) {
    const YAML::Node k = document["kind"];
    if (!k.IsScalar())
      throw config_error("expected a string at " + file.string() + ":" + std::to_string(k.Mark().line + 1) + ":" +
                         std::to_string(k.Mark().column + 1) + " (key 'kind')");
    kind = k.as<std::string>();
  }
  out.kind = &find_experiment_kind(kind);
  out.resolved = resolve_config(document, out.kind->schema(), out.source);
  if (out.kind->check) out.kind->check(out.resolved, out.source);
  return out;
}

}  // namespace qexp

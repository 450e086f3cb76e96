#include "ptq_config.h"

#include <sstream>

#include "experiment.h"
#include "qexp/distilbert.h"
#include "qexp/errors.h"
#include "qexp/settings_section.h"
#include "qexp/input_file.h"
#include "qexp/threads.h"
#include "qexp/text.h"

namespace qexp {

namespace {

schema_node layers_schema() {
  return schema_node::map_of({
      {"include", schema_node::list_of(schema_node::of(value_kind::string),
                                       "globs on site names (Hugging Face module names); a site must match one")
                      .with_default(std::vector<std::string>{"*"})},
      {"exclude", schema_node::list_of(schema_node::of(value_kind::string),
                                       "globs of sites kept in fp32, e.g. \"*classifier\"")
                      .with_default(YAML::Node(YAML::NodeType::Sequence))},
  });
}

schema_node options_schema() {
  return schema_node::of(value_kind::scalar_map, "the plugin's options (see `qexp plugins`)")
      .with_default(YAML::Node(YAML::NodeType::Map));
}

}  // namespace

schema_node recipe_entry_schema(const std::string& default_plugin) {
  schema_node rule = schema_node::map_of({
      {"layers", layers_schema()},
      {"plugin", schema_node::of(value_kind::string, "plugin id, as `qexp plugins` lists it").is_required()},
      {"options", options_schema()},
  });
  return schema_node::map_of({
      {"plugin", schema_node::of(value_kind::string,
                                 "plugin id, as `qexp plugins` lists it (a one-rule recipe; or give `rules`)")
                     .with_default(default_plugin)},
      {"label", schema_node::of(value_kind::string, "row name in the results (default: plugins and options)")
                    .with_default("")},
      {"options", options_schema()},
      {"layers", layers_schema()},
      {"rules", schema_node::list_of(rule,
                                     "a recipe: each site (every Linear, the word and position embedding tables) "
                                     "takes the first rule that matches it and whose plugin handles its kind; "
                                     "unmatched sites stay fp32")
                    .with_default(YAML::Node(YAML::NodeType::Sequence))},
  });
}

namespace {

std::string default_label(const recipe& r) {
  std::vector<std::string> parts;
  for (const auto& rule : r.rules) {
    std::ostringstream label;
    label << rule.plugin;
    for (const auto& [k, v] : rule.options) label << " " << k << "=" << v;
    if (rule.layers.include != std::vector<std::string>{"*"}) label << " include=" << join(rule.layers.include, ",");
    if (!rule.layers.exclude.empty()) label << " exclude=" << join(rule.layers.exclude, ",");
    parts.push_back(label.str());
  }
  return join(parts, " + ");
}

recipe_rule rule_from(const YAML::Node& n, const config_source& source, const std::string& key) {
  recipe_rule rule;
  rule.plugin = n["plugin"].as<std::string>();
  for (const auto& entry : n["options"]) rule.options[entry.first.as<std::string>()] = entry.second.as<std::string>();
  rule.layers.include = n["layers"]["include"].as<std::vector<std::string>>();
  rule.layers.exclude = n["layers"]["exclude"].as<std::vector<std::string>>();
  rule.where = location_of(source, key + ".plugin");
  rule.options_where = location_of(source, key + ".options");
  return rule;
}

}  // namespace

quantizer_entry quantizer_from(const YAML::Node& n, const config_source& source, const std::string& key) {
  quantizer_entry q;
  q.where = location_of(source, key);
  q.scheme.base_dir = std::filesystem::absolute(source.file).parent_path();
  const bool plain = !n["plugin"].as<std::string>().empty();
  if (n["rules"].size() > 0) {
    if (plain || n["options"].size() > 0 || n["layers"]["include"].as<std::vector<std::string>>() != std::vector<std::string>{"*"} ||
        n["layers"]["exclude"].size() > 0)
      throw config_error(location_of(source, key + ".rules") + ": " + key +
                         " has both `rules` and a plain plugin/options/layers entry; give one or the other");
    for (std::size_t j = 0; j < n["rules"].size(); ++j)
      q.scheme.rules.push_back(rule_from(n["rules"][j], source, key + ".rules." + std::to_string(j)));
  } else {
    if (!plain) throw config_error(q.where + ": " + key + " needs a `plugin` (or a `rules` list)");
    q.scheme.rules.push_back(rule_from(n, source, key));
  }
  q.label = n["label"].as<std::string>();
  if (q.label.empty()) q.label = default_label(q.scheme);
  q.scheme.label = q.label;
  return q;
}

schema_node model_section_schema() {
  return schema_node::map_of({
      {"path", schema_node::of(value_kind::path,
                               "Hugging Face model folder (config.json, model.safetensors or pytorch_model.bin, "
                               "vocab.txt)")
                   .is_required()
                   .existing()},
  });
}

schema_node data_section_schema() {
  return schema_node::map_of({
      {"path", schema_node::of(value_kind::data_path,
                               "SST-2 style TSV (`sentence<TAB>label`); also searched in QEXP_DATA_PATH")
                   .with_default("sst2/dev.tsv")
                   .existing()},
      {"max_length", max_length_field()},
      {"limit", sentence_limit_field("sentences")},
  });
}

namespace {

settings_section<calibration_settings> calibration_fields(bool with_mode) {
  using c = calibration_settings;
  auto section =
      settings_section<c>()
          .field("data", &c::data_path,
                 schema_node::of(value_kind::data_path,
                                 "SST-2 style TSV the calibration sentences come from; never the evaluation file; also "
                                 "searched in QEXP_DATA_PATH"))
          .field("sentences", &c::sentences,
                 schema_node::of(value_kind::integer,
                                 "sentences drawn (without replacement, by `seed`) for plugins that calibrate (0: none; "
                                 "such a plugin then fails before anything is measured)")
                     .at_least(0)
                     .at_most(1000000))
          .field("batch_size", &c::batch_size,
                 schema_node::of(value_kind::integer, "calibration sentences per forward pass").at_least(1))
          .field("seed", &c::seed, schema_node::of(value_kind::integer, "seed of the sentence draw").at_least(0).wide_integer());
  if (with_mode)
    section.choice("mode", &c::mode, {calibration_mode::float_inputs, calibration_mode::sequential},
                   "float: every site sees the fp32 model's inputs; sequential: block by block, each block sees the "
                   "outputs of the blocks already quantized (GPTQ-style)");
  return section;
}

// The calibration section with `mode` (ptq) or without it (sensitivity and autotune calibrate in
// float mode).
const settings_section<calibration_settings>& calibration_section(bool with_mode) {
  static const auto with = calibration_fields(true), without = calibration_fields(false);
  return with_mode ? with : without;
}

const settings_section<layer_error_settings>& layer_error_section() {
  using l = layer_error_settings;
  static const auto section =
      settings_section<l>()
          .field("enabled", &l::enabled, schema_node::of(value_kind::boolean))
          .field("batches", &l::batches,
                 schema_node::of(value_kind::integer, "batches of dev sentences fed through both models").at_least(1))
          .field("batch_size", &l::batch_size, schema_node::of(value_kind::integer, "sentences per batch").at_least(1));
  return section;
}

const settings_section<latency_settings>& latency_section() {
  using l = latency_settings;
  static const auto section =
      settings_section<l>()
          .field("enabled", &l::enabled, schema_node::of(value_kind::boolean))
          .field("warmup", &l::warmup, schema_node::of(value_kind::integer, "untimed iterations first").at_least(0))
          .field("iterations", &l::iterations,
                 schema_node::of(value_kind::integer, "timed iterations per setting on the probe text").at_least(1))
          .field("batch_sizes", &l::batch_sizes,
                 schema_node::list_of(schema_node::of(value_kind::integer).at_least(1),
                                      "probe batch sizes (the probe text repeated)")
                     .non_empty())
          .field("threads", &l::threads,
                 schema_node::list_of(schema_node::of(value_kind::integer).at_least(1).at_most(max_compute_threads),
                                      "intra-op threads (more than the machine's cores: a warning)")
                     .non_empty())
          .field("probe_text", &l::probe_text, schema_node::of(value_kind::string, "fixed text timed at each batch size"))
          .field("dataset_sentences", &l::dataset_sentences,
                 schema_node::of(value_kind::integer, "dev sentences timed one at a time (0: skip)").at_least(0));
  return section;
}

const settings_section<accuracy_settings>& accuracy_section() {
  using a = accuracy_settings;
  static const auto section =
      settings_section<a>()
          .field("enabled", &a::enabled, schema_node::of(value_kind::boolean))
          .field("batch_size", &a::batch_size,
                 schema_node::of(value_kind::integer,
                                 "sentences per forward pass; 1 runs each sentence alone like the reference pipeline "
                                 "(padding rows would enter per-tensor dynamic activation ranges)")
                     .at_least(1));
  return section;
}

}  // namespace

schema_node calibration_section_schema(bool with_mode) { return calibration_section(with_mode).schema(); }

calibration_settings calibration_from(const YAML::Node& cal, const config_source& source) {
  calibration_settings c = calibration_section(cal["mode"].IsDefined()).read(cal);
  c.where = location_of(source, "calibration");
  return c;
}

schema_node layer_error_section_schema() { return layer_error_section().schema(); }

layer_error_settings layer_error_from(const YAML::Node& n) { return layer_error_section().read(n); }

schema_node output_section_schema() {
  return schema_node::map_of({
      {"dir", schema_node::of(value_kind::string, "results root, relative to the current folder (--out overrides)")
                  .with_default("runs")},
  });
}

schema_node seed_field() {
  return schema_node::of(value_kind::integer, "seed for anything random").at_least(0).wide_integer().with_default(0);
}

std::string validate_recipes(const std::vector<quantizer_entry>& entries, const std::filesystem::path& model_path,
                             const std::filesystem::path& data_path, const calibration_settings& calibration,
                             const config_source& source, const plugin_registry& plugins) {
  std::error_code ec;
  if (const auto problem = regular_file_problem(model_path / "config.json"); !problem.empty())
    throw config_error("model folder " + model_path.string() + ": config.json " + problem + " at " +
                       location_of(source, "model.path"));
  if (const auto problem = regular_file_problem(data_path); !problem.empty())
    throw config_error(location_of(source, "data.path") + ": dataset " + data_path.string() + ": " + problem);
  const auto sites = distilbert_classifier::sites_of(distilbert_config::from_json_file(model_path / "config.json"));
  std::ostringstream notes;
  for (const auto& q : entries) {
    const auto assignment = assign_sites(q.scheme, sites, plugins);
    for (const auto& rule : q.scheme.rules) plugins.resolve_options(rule.plugin, rule.options, rule.options_where, q.scheme.base_dir);
    notes << assignment_text(q.scheme, assignment);
    if (!recipe_wants_calibration(q.scheme, assignment, plugins)) continue;
    if (calibration.sentences == 0)
      throw config_error(q.where + ": '" + q.label + "' calibrates, but calibration.sentences is 0 at " + calibration.where);
    if (const auto problem = regular_file_problem(calibration.data_path); !problem.empty())
      throw config_error(location_of(source, "calibration.data") + ": calibration data " + calibration.data_path.string() +
                         ": " + problem + " ('" + q.label + "' calibrates; set calibration.data or QEXP_DATA_PATH)");
    if (std::filesystem::equivalent(calibration.data_path, data_path, ec))
      throw config_error(location_of(source, "calibration.data") + ": calibration data " + calibration.data_path.string() +
                         " is the evaluation file (data.path); calibrate on other sentences, e.g. sst2/train.tsv");
  }
  return notes.str();
}

schema_node ptq_schema() {
  auto fields = common_experiment_fields("ptq");
  fields.insert(fields.end(), {
      {"model", model_section_schema()},
      {"data", data_section_schema()},
      {"baseline", recipe_entry_schema("fp32")},
      {"quantizers", schema_node::list_of(recipe_entry_schema(""), "the schemes compared with the baseline, in order")
                         .non_empty()
                         .is_required()},
      {"calibration", calibration_section_schema(true)},
      {"measure",
       schema_node::map_of({
           {"isolate", schema_node::of(value_kind::boolean,
                                       "measure each quantizer in a child process of its own, so a plugin that "
                                       "crashes (segfault, abort, a throw that is not a std::exception) costs only "
                                       "its row; the baseline runs in qexp's own process")
                           .with_default(true)},
           {"timeout_s", schema_node::of(value_kind::number,
                                         "seconds one quantizer (prepare and every measurement) may take before its "
                                         "child process is killed and the row fails, not counting the child's start "
                                         "(loading the model: up to 300 s more) (0: no limit; needs isolate)")
                             .at_least(0)
                             .with_default(0)},
           {"size", schema_node::map_of({{"enabled", schema_node::of(value_kind::boolean).with_default(true)}})},
           {"latency", latency_section().schema()},
           {"accuracy", accuracy_section().schema()},
           {"layer_error", layer_error_section_schema()},
       })},
      {"output", output_section_schema()},
      {"seed", seed_field()},
  });
  return schema_node::map_of(std::move(fields));
}

experiment_basics experiment_basics_from(const YAML::Node& r, const config_source& source) {
  experiment_basics c;
  c.source_file = std::filesystem::absolute(source.file);
  c.name = r["name"].as<std::string>();
  c.description = r["description"].as<std::string>();
  c.model_path = r["model"]["path"].as<std::string>();
  c.data_path = r["data"]["path"].as<std::string>();
  c.max_length = r["data"]["max_length"].as<int>();
  c.data_limit = r["data"]["limit"].as<std::int64_t>();
  c.output_dir = r["output"]["dir"].as<std::string>();
  c.seed = r["seed"].as<std::uint64_t>();
  return c;
}

ptq_config ptq_config_from(const YAML::Node& r, const config_source& source) {
  ptq_config c;
  static_cast<experiment_basics&>(c) = experiment_basics_from(r, source);
  c.baseline = quantizer_from(r["baseline"], source, "baseline");
  c.calibration = calibration_from(r["calibration"], source);
  for (std::size_t i = 0; i < r["quantizers"].size(); ++i)
    c.quantizers.push_back(quantizer_from(r["quantizers"][i], source, "quantizers." + std::to_string(i)));
  const YAML::Node m = r["measure"];
  c.measure_size = m["size"]["enabled"].as<bool>();
  c.isolate = m["isolate"].as<bool>();
  c.timeout_s = m["timeout_s"].as<double>();
  if (c.timeout_s > 0 && !c.isolate)
    throw config_error(location_of(source, "measure.timeout_s") +
                       ": measure.timeout_s needs measure.isolate: true (only a child process can be stopped)");
  c.latency = latency_section().read(m["latency"]);
  c.accuracy = accuracy_section().read(m["accuracy"]);
  c.layer_error = layer_error_from(m["layer_error"]);
  return c;
}

}  // namespace qexp

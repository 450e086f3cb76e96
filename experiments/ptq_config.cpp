#include "ptq_config.h"

#include <sstream>

#include "experiment.h"

namespace qexp {

const char* const default_probe_text =
    "Texto para teste de performance sobre os benefícios da quantização.";

namespace {

schema_node quantizer_schema(const std::string& default_plugin, bool plugin_required) {
  schema_node plugin = schema_node::of(value_kind::string, "plugin id, as `qexp plugins` lists it");
  if (plugin_required) plugin.is_required();
  else plugin.with_default(default_plugin);
  return schema_node::map_of({
      {"plugin", plugin},
      {"label", schema_node::of(value_kind::string, "row name in the results (default: plugin and options)")
                    .with_default("")},
      {"options", schema_node::of(value_kind::scalar_map, "the plugin's options (see `qexp plugins`)")
                      .with_default(YAML::Node(YAML::NodeType::Map))},
      {"layers", schema_node::map_of({
                     {"include", schema_node::list_of(schema_node::of(value_kind::string),
                                                      "globs on Hugging Face module names; a layer must match one")
                                     .with_default(std::vector<std::string>{"*"})},
                     {"exclude", schema_node::list_of(schema_node::of(value_kind::string),
                                                      "globs of layers kept in fp32, e.g. \"*classifier\"")
                                     .with_default(YAML::Node(YAML::NodeType::Sequence))},
                 })},
  });
}

std::vector<int> int_list(const YAML::Node& n) {
  std::vector<int> out;
  for (const auto& e : n) out.push_back(e.as<int>());
  return out;
}

std::string default_label(const quantizer_entry& q) {
  std::ostringstream label;
  label << q.plugin;
  for (const auto& [k, v] : q.options) label << " " << k << "=" << v;
  if (q.layers.include != std::vector<std::string>{"*"}) {
    label << " include=";
    for (const auto& p : q.layers.include) label << p << (&p == &q.layers.include.back() ? "" : ",");
  }
  if (!q.layers.exclude.empty()) {
    label << " exclude=";
    for (const auto& p : q.layers.exclude) label << p << (&p == &q.layers.exclude.back() ? "" : ",");
  }
  return label.str();
}

quantizer_entry quantizer_from(const YAML::Node& n, const config_source& source, const std::string& key) {
  quantizer_entry q;
  q.plugin = n["plugin"].as<std::string>();
  for (const auto& entry : n["options"]) q.options[entry.first.as<std::string>()] = entry.second.as<std::string>();
  q.layers.include = n["layers"]["include"].as<std::vector<std::string>>();
  q.layers.exclude = n["layers"]["exclude"].as<std::vector<std::string>>();
  q.label = n["label"].as<std::string>();
  if (q.label.empty()) q.label = default_label(q);
  q.where = location_of(source, key + ".plugin");
  q.options_where = location_of(source, key + ".options");
  return q;
}

}  // namespace

schema_node ptq_schema() {
  auto fields = common_experiment_fields("ptq");
  auto positive = [](const char* help, int def) {
    return schema_node::of(value_kind::integer, help).at_least(1).with_default(def);
  };
  fields.insert(fields.end(), {
      {"model", schema_node::map_of({
                    {"path", schema_node::of(value_kind::path,
                                             "Hugging Face model folder (config.json, model.safetensors or "
                                             "pytorch_model.bin, vocab.txt)")
                                 .is_required()
                                 .existing()},
                })},
      {"data", schema_node::map_of({
                   {"path", schema_node::of(value_kind::data_path,
                                            "SST-2 style TSV (`sentence<TAB>label`); also searched in QEXP_DATA_PATH")
                                .with_default("sst2/dev.tsv")
                                .existing()},
                   {"max_length", max_length_field()},
                   {"limit", sentence_limit_field("sentences")},
               })},
      {"baseline", quantizer_schema("fp32", false)},
      {"quantizers", schema_node::list_of(quantizer_schema("", true), "the schemes compared with the baseline, in order")
                         .non_empty()
                         .is_required()},
      {"measure",
       schema_node::map_of({
           {"size", schema_node::map_of({{"enabled", schema_node::of(value_kind::boolean).with_default(true)}})},
           {"latency",
            schema_node::map_of({
                {"enabled", schema_node::of(value_kind::boolean).with_default(true)},
                {"warmup", schema_node::of(value_kind::integer, "untimed iterations first").at_least(0).with_default(10)},
                {"iterations", positive("timed iterations per setting on the probe text", 100)},
                {"batch_sizes", schema_node::list_of(schema_node::of(value_kind::integer).at_least(1),
                                                     "probe batch sizes (the probe text repeated)")
                                    .with_default(std::vector<int>{1, 8})
                                    .non_empty()},
                {"threads", schema_node::list_of(schema_node::of(value_kind::integer).at_least(1), "intra-op threads")
                                .with_default(std::vector<int>{1})
                                .non_empty()},
                {"probe_text", schema_node::of(value_kind::string, "fixed text timed at each batch size")
                                   .with_default(default_probe_text)},
                {"dataset_sentences", schema_node::of(value_kind::integer,
                                                      "dev sentences timed one at a time (0: skip)")
                                          .at_least(0)
                                          .with_default(200)},
            })},
           {"accuracy", schema_node::map_of({
                            {"enabled", schema_node::of(value_kind::boolean).with_default(true)},
                            {"batch_size", positive("sentences per forward pass; 1 runs each sentence alone like "
                                                    "the reference pipeline (padding rows would enter per-tensor "
                                                    "dynamic activation ranges)",
                                                    1)},
                        })},
           {"layer_error", schema_node::map_of({
                               {"enabled", schema_node::of(value_kind::boolean).with_default(true)},
                               {"batches", positive("batches of dev sentences fed through both models", 4)},
                               {"batch_size", positive("sentences per batch", 8)},
                           })},
       })},
      {"output", schema_node::map_of({
                     {"dir", schema_node::of(value_kind::string,
                                             "results root, relative to the current folder (--out overrides)")
                                 .with_default("runs")},
                 })},
      {"seed", schema_node::of(value_kind::integer, "seed for anything random").at_least(0).with_default(0)},
  });
  return schema_node::map_of(std::move(fields));
}

ptq_config ptq_config_from(const YAML::Node& r, const config_source& source) {
  ptq_config c;
  c.source_file = std::filesystem::absolute(source.file);
  c.name = r["name"].as<std::string>();
  c.description = r["description"].as<std::string>();
  c.model_path = r["model"]["path"].as<std::string>();
  c.data_path = r["data"]["path"].as<std::string>();
  c.max_length = r["data"]["max_length"].as<int>();
  c.data_limit = r["data"]["limit"].as<std::int64_t>();
  c.baseline = quantizer_from(r["baseline"], source, "baseline");
  for (std::size_t i = 0; i < r["quantizers"].size(); ++i)
    c.quantizers.push_back(quantizer_from(r["quantizers"][i], source, "quantizers." + std::to_string(i)));
  const YAML::Node m = r["measure"];
  c.measure_size = m["size"]["enabled"].as<bool>();
  c.latency.enabled = m["latency"]["enabled"].as<bool>();
  c.latency.warmup = m["latency"]["warmup"].as<int>();
  c.latency.iterations = m["latency"]["iterations"].as<int>();
  c.latency.batch_sizes = int_list(m["latency"]["batch_sizes"]);
  c.latency.threads = int_list(m["latency"]["threads"]);
  c.latency.probe_text = m["latency"]["probe_text"].as<std::string>();
  c.latency.dataset_sentences = m["latency"]["dataset_sentences"].as<int>();
  c.accuracy.enabled = m["accuracy"]["enabled"].as<bool>();
  c.accuracy.batch_size = m["accuracy"]["batch_size"].as<int>();
  c.layer_error.enabled = m["layer_error"]["enabled"].as<bool>();
  c.layer_error.batches = m["layer_error"]["batches"].as<int>();
  c.layer_error.batch_size = m["layer_error"]["batch_size"].as<int>();
  c.output_dir = r["output"]["dir"].as<std::string>();
  c.seed = r["seed"].as<std::uint64_t>();
  return c;
}

}  // namespace qexp

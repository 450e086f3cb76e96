// The YAML schema engine and the ptq experiment schema: every bad input names file:line:column
// (or the --set that caused it), the key path and what was expected.
#include "qexp/config_schema.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "experiment.h"
#include "ptq_config.h"
#include "qexp/errors.h"
#include "qexp/settings_section.h"
#include "qexp/suggest.h"
#include "test_support.h"

namespace fs = std::filesystem;
using qexp::config_error;
using qexp::test::temp_dir;
using qexp::test::write_file;

namespace {

// A valid minimal ptq config pointing at the golden tiny model.
std::string minimal_config() {
  return "name: t\n"
         "model: { path: " + (qexp::test::shared_dir() / "golden/distilbert-tiny-random").string() + " }\n"
         "quantizers:\n"
         "  - { plugin: fp32 }\n";
}

std::string load_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  temp_dir dir;
  write_file(dir.path() / "x.yaml", yaml);
  try {
    qexp::load_experiment(dir.path() / "x.yaml", overrides);
  } catch (const config_error& e) {
    std::string message = e.what();
    // Messages carry the temp folder; keep the part a user reads.
    const std::string prefix = (dir.path() / "x.yaml").string();
    for (auto at = message.find(prefix); at != std::string::npos; at = message.find(prefix))
      message.replace(at, prefix.size(), "x.yaml");
    return message;
  }
  return "";
}

}  // namespace

TEST(config_schema, a_misspelt_key_names_the_line_and_suggests_the_right_one) {
  std::string yaml = minimal_config();
  yaml.replace(yaml.find("quantizers"), 10, "quantizer");
  EXPECT_EQ(load_error(yaml), "unknown key 'quantizer' at x.yaml:3:1; did you mean 'quantizers'?");
}

TEST(config_schema, a_nested_unknown_key_names_its_column) {
  EXPECT_EQ(load_error(minimal_config() + "measure:\n  latency: { warmpu: 3 }\n"),
            "unknown key 'warmpu' at x.yaml:6:14; did you mean 'warmup'?");
}

TEST(config_schema, a_wrong_type_says_what_was_expected) {
  EXPECT_EQ(load_error(minimal_config() + "measure:\n  latency: { warmup: lots }\n"),
            "expected an integer >= 0 at x.yaml:6:22 (key 'measure.latency.warmup'), got 'lots'");
  EXPECT_EQ(load_error(minimal_config() + "data: { max_length: 4096 }\n"),
            "expected an integer in [2, 512] at x.yaml:5:21 (key 'data.max_length'), got '4096'");
  EXPECT_EQ(load_error(minimal_config() + "measure: { size: { enabled: maybe } }\n"),
            "expected true or false at x.yaml:5:29 (key 'measure.size.enabled'), got 'maybe'");
  EXPECT_EQ(load_error(minimal_config() + "measure: [1, 2]\n"),
            "expected a map at x.yaml:5:10 (key 'measure'), got a list");
}

TEST(config_schema, a_missing_required_key_is_named) {
  EXPECT_EQ(load_error("name: t\nquantizers: [ { plugin: fp32 } ]\n").substr(0, 36),
            "missing required key 'model' at x.ya");
  const std::string message = load_error("name: t\nmodel: { path: /tmp }\nquantizers: [ { options: {} } ]\n");
  // A quantizer entry needs a plugin or a list of rules (the schema cannot say which).
  EXPECT_NE(message.find("x.yaml:3:15: quantizers.0 needs a `plugin` (or a `rules` list)"), std::string::npos)
      << message;
}

TEST(config_schema, a_missing_model_folder_is_an_error_naming_the_key) {
  const std::string message = load_error("name: t\nmodel: { path: no/such/model }\nquantizers: [ { plugin: fp32 } ]\n");
  EXPECT_NE(message.find("path 'no/such/model' not found"), std::string::npos) << message;
  EXPECT_NE(message.find("x.yaml:2:16 (key 'model.path')"), std::string::npos) << message;
}

TEST(config_schema, an_empty_quantizer_list_is_rejected) {
  std::string yaml = minimal_config();
  yaml = yaml.substr(0, yaml.find("quantizers:")) + "quantizers: []\n";
  EXPECT_EQ(load_error(yaml), "expected at least 1 item(s) at x.yaml:3:13 (key 'quantizers')");
}

TEST(config_schema, a_yaml_syntax_error_names_line_and_column) {
  const std::string message = load_error("name: t\nquantizers: [ { plugin: fp32 ]\n");
  EXPECT_NE(message.find("x.yaml:2:"), std::string::npos) << message;
  EXPECT_NE(message.find("YAML syntax error"), std::string::npos) << message;
}

TEST(config_schema, defaults_are_filled_in) {
  temp_dir dir;
  write_file(dir.path() / "x.yaml", minimal_config());
  auto experiment = qexp::load_experiment(dir.path() / "x.yaml", {});
  auto config = qexp::ptq_config_from(experiment.resolved, experiment.source);
  EXPECT_EQ(config.max_length, 128);
  ASSERT_EQ(config.baseline.scheme.rules.size(), 1u);
  EXPECT_EQ(config.baseline.scheme.rules[0].plugin, "fp32");
  EXPECT_EQ(config.latency.batch_sizes, (std::vector<int>{1, 8}));
  EXPECT_EQ(config.latency.threads, (std::vector<int>{1}));
  EXPECT_EQ(config.latency.probe_text, qexp::default_probe_text);
  EXPECT_EQ(config.quantizers.at(0).scheme.rules.at(0).layers.include, (std::vector<std::string>{"*"}));
  EXPECT_EQ(config.quantizers.at(0).label, "fp32");
  // The data path default is found through the data search path (QEXP_DATA_PATH in ctest).
  EXPECT_EQ(fs::weakly_canonical(config.data_path), fs::weakly_canonical(qexp::test::shared_dir() / "data/sst2/dev.tsv"));
}

TEST(config_schema, a_quantizer_entry_is_a_plain_plugin_or_a_list_of_rules) {
  temp_dir dir;
  fs::create_directories(dir.path() / "m");
  const std::string head = "name: t\nmodel: { path: m }\nquantizers:\n";
  write_file(dir.path() / "x.yaml",
             head + "  - rules:\n      - { plugin: a, layers: { include: [\"*.ffn.*\"] }, options: { k: 1 } }\n"
                    "      - { plugin: b }\n");
  auto experiment = qexp::load_experiment(dir.path() / "x.yaml", {});
  auto config = qexp::ptq_config_from(experiment.resolved, experiment.source);
  const auto& rules = config.quantizers.at(0).scheme.rules;
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].plugin, "a");
  EXPECT_EQ(rules[0].options.at("k"), "1");
  EXPECT_EQ(rules[0].layers.include, (std::vector<std::string>{"*.ffn.*"}));
  EXPECT_EQ(rules[1].plugin, "b");
  EXPECT_EQ(rules[0].where.substr(0, (dir.path() / "x.yaml").string().size() + 3), (dir.path() / "x.yaml").string() + ":5:");
  EXPECT_EQ(config.quantizers.at(0).label, "a k=1 include=*.ffn.* + b");
  // Both forms at once, or neither, is an error naming the entry.
  write_file(dir.path() / "y.yaml", head + "  - { plugin: a, rules: [ { plugin: b } ] }\n");
  EXPECT_THROW(qexp::load_experiment(dir.path() / "y.yaml", {}), qexp::config_error);
  write_file(dir.path() / "z.yaml", head + "  - { label: nothing }\n");
  try {
    qexp::load_experiment(dir.path() / "z.yaml", {});
    FAIL() << "an entry without plugin or rules was accepted";
  } catch (const qexp::config_error& e) {
    EXPECT_NE(std::string(e.what()).find("quantizers.0 needs a `plugin` (or a `rules` list)"), std::string::npos)
        << e.what();
  }
}

TEST(config_schema, relative_paths_resolve_against_the_config_folder) {
  temp_dir dir;
  fs::create_directories(dir.path() / "models/m");
  write_file(dir.path() / "cfg/x.yaml", "name: t\nmodel: { path: ../models/m }\nquantizers: [ { plugin: fp32 } ]\n");
  auto experiment = qexp::load_experiment(dir.path() / "cfg/x.yaml", {});
  EXPECT_EQ(fs::path(experiment.resolved["model"]["path"].as<std::string>()), (dir.path() / "models/m").lexically_normal());
}

TEST(config_schema, overrides_go_through_the_same_validation) {
  temp_dir dir;
  write_file(dir.path() / "x.yaml", minimal_config());
  auto experiment = qexp::load_experiment(
      dir.path() / "x.yaml",
      {"measure.latency.threads=[1, 2]", "quantizers.0.options.backend=onednn", "quantizers.1.plugin=fp32",
       "data.limit=5"});
  auto config = qexp::ptq_config_from(experiment.resolved, experiment.source);
  EXPECT_EQ(config.latency.threads, (std::vector<int>{1, 2}));
  EXPECT_EQ(config.quantizers.at(0).scheme.rules.at(0).options.at("backend"), "onednn");
  ASSERT_EQ(config.quantizers.size(), 2u);
  EXPECT_EQ(config.data_limit, 5);
  EXPECT_EQ(config.quantizers.at(0).scheme.rules.at(0).options_where, "--set quantizers.0.options.backend=onednn");

  EXPECT_EQ(load_error(minimal_config(), {"measure.latency.warmup=-1"}),
            "expected an integer >= 0 at --set measure.latency.warmup=-1 (key 'measure.latency.warmup'), got '-1'");
  EXPECT_EQ(load_error(minimal_config(), {"measure.latncy.warmup=1"}),
            "unknown key 'latncy' at --set measure.latncy.warmup=1; did you mean 'latency'?");
  EXPECT_EQ(load_error(minimal_config(), {"quantizers.5.plugin=fp32"}),
            "--set quantizers.5.plugin=fp32: index 5 is past the end of a list of 1");
  EXPECT_EQ(load_error(minimal_config(), {"no_equals_sign"}), "--set no_equals_sign: expected key.path=value");
  EXPECT_EQ(load_error(minimal_config(), {"name.x=1"}), "--set name.x=1: cannot set 'x' inside a scalar");
}

TEST(config_schema, the_resolved_config_prints_and_parses_back_to_itself) {
  temp_dir dir;
  write_file(dir.path() / "x.yaml", minimal_config() + "measure: { latency: { batch_sizes: 4 } }\n");
  auto first = qexp::load_experiment(dir.path() / "x.yaml", {"quantizers.0.layers.exclude=['*classifier']"});
  const std::string text = qexp::to_yaml_text(first.resolved);
  write_file(dir.path() / "resolved.yaml", text);
  auto second = qexp::load_experiment(dir.path() / "resolved.yaml", {});
  EXPECT_EQ(qexp::to_yaml_text(second.resolved), text);
  EXPECT_NE(text.find("batch_sizes: [4]"), std::string::npos) << text;
  EXPECT_NE(text.find("exclude: [\"*classifier\"]"), std::string::npos) << text;
}

TEST(config_schema, an_unknown_kind_is_named_with_the_known_ones) {
  const std::string message = load_error("name: t\nkind: ptk\n");
  EXPECT_EQ(message.rfind("unknown experiment kind 'ptk'; did you mean 'ptq'? (known: ", 0), 0u) << message;
  EXPECT_NE(message.find("ptq"), std::string::npos) << message;
}

TEST(config_schema, every_shipped_config_resolves) {
  for (const auto& entry : fs::directory_iterator(qexp::test::source_dir() / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    YAML::Node document = qexp::load_yaml_file(entry.path());
    if (document["sweep"]) continue;  // sweep files are expanded by `qexp sweep`, not run directly
    // A config whose model is fetched or generated first names it; resolve it against a stand-in.
    std::vector<std::string> overrides;
    const std::string text = qexp::test::read_file(entry.path());
    const std::string marker = "# smoke-requires: ";
    if (auto at = text.find(marker); at != std::string::npos) {
      const std::string required = text.substr(at + marker.size(), text.find('\n', at) - at - marker.size());
      if (!fs::exists(entry.path().parent_path() / required))
        overrides.push_back("model.path=" + (qexp::test::shared_dir() / "golden/distilbert-tiny-random").string());
    }
    EXPECT_NO_THROW(qexp::load_experiment(entry.path(), overrides));
  }
}

TEST(config_schema, the_reference_lists_every_key) {
  const std::string doc = qexp::schema_markdown(qexp::ptq_schema(), "ptq");
  for (const char* key : {"`model.path`", "`quantizers.N.layers.exclude`", "`measure.latency.threads`", "`seed`"})
    EXPECT_NE(doc.find(key), std::string::npos) << key;
}

TEST(suggest, close_words_are_suggested_and_far_ones_are_not) {
  EXPECT_EQ(qexp::closest_match("quantizer", {"quantizers", "model"}), "quantizers");
  EXPECT_EQ(qexp::closest_match("mdoel", {"quantizers", "model"}), "model");
  EXPECT_EQ(qexp::closest_match("zzz", {"quantizers", "model"}), "");
}

// Issue 17: what yaml-cpp lets through must not reach a run.
TEST(config_schema, text_that_is_not_utf8_is_refused_with_line_column_key_and_byte) {
  EXPECT_EQ(load_error(minimal_config() + "description: caf\xe9 au lait\n"),
            "x.yaml:5:14: byte 3 of the value (key 'description') is 0xE9, not UTF-8; expected UTF-8 text (save the "
            "file as UTF-8)");
  EXPECT_EQ(load_error(minimal_config() + "baseline: { label: \"b\xff\" }\n"),
            "x.yaml:5:20: byte 1 of the value (key 'baseline.label') is 0xFF, not UTF-8; expected UTF-8 text (save "
            "the file as UTF-8)");
  EXPECT_EQ(load_error(minimal_config(), {"description=caf\xe9"}),
            "--set description=caf\xe9: byte 3 of the value (key 'description') is 0xE9, not UTF-8; expected UTF-8 "
            "text (save the file as UTF-8)");
}

TEST(config_schema, a_nul_byte_in_a_value_is_refused) {
  EXPECT_EQ(load_error(minimal_config() + "description: \"a\\0b\"\n"),
            "x.yaml:5:14: NUL byte at byte 1 of the value (key 'description'); expected text without NUL");
}

TEST(config_schema, a_duplicate_key_names_both_lines) {
  EXPECT_EQ(load_error(minimal_config() + "quantizers:\n  - { plugin: dynamic-int8 }\n"),
            "x.yaml:5:1: duplicate key 'quantizers' (first at line 3); give each key once");
  EXPECT_EQ(load_error(minimal_config() + "measure: { latency: { warmup: 1, warmup: 2 } }\n"),
            "x.yaml:5:34: duplicate key 'measure.latency.warmup' (first at line 5); give each key once");
}

TEST(config_schema, a_complex_key_is_a_config_error) {
  EXPECT_EQ(load_error(minimal_config() + "? [a, b]\n: 1\n"),
            "x.yaml:5:3: a key is a list; expected a plain name");
  EXPECT_EQ(load_error(minimal_config() + "measure: { ? { a: 1 } : 2 }\n"),
            "x.yaml:5:14: a key in 'measure' is a map; expected a plain name");
}

TEST(config_schema, the_name_cannot_leave_the_results_folder) {
  for (const std::string name : {"../../x", "/tmp/x", "a/b", "..", "."}) {
    std::string yaml = minimal_config();
    yaml.replace(0, 8, "name: \"" + name + "\"\n");
    EXPECT_EQ(load_error(yaml), "expected a plain name usable as one folder name (no '/', not empty, '.' or '..') at "
                                "x.yaml:1:7 (key 'name'), got '" + name + "'")
        << name;
  }
  EXPECT_NE(load_error(minimal_config(), {"name=../x"}).find("--set name=../x (key 'name')"), std::string::npos);
}

TEST(config_schema, integers_beyond_32_bits_are_refused_except_seeds) {
  EXPECT_EQ(load_error(minimal_config() + "measure: { latency: { iterations: 3000000000 } }\n"),
            "expected an integer >= 1 (a 32-bit integer: at most 2147483647) at x.yaml:5:35 (key "
            "'measure.latency.iterations'), got '3000000000'");
  EXPECT_EQ(load_error(minimal_config() + "data: { limit: 99999999999999999999 }\n"),
            "expected an integer >= 0 at x.yaml:5:16 (key 'data.limit'), got '99999999999999999999'");
  EXPECT_EQ(load_error(minimal_config() + "seed: 3000000000\n"), "");
}

TEST(config_schema, threads_have_a_sane_cap) {
  EXPECT_EQ(load_error(minimal_config() + "measure: { latency: { threads: [1, 10000] } }\n"),
            "expected an integer in [1, 256] at x.yaml:5:36 (key 'measure.latency.threads.1'), got '10000'");
}

TEST(config_schema, absurd_set_paths_are_config_errors_naming_the_override) {
  EXPECT_EQ(load_error(minimal_config(), {"name.=x"}), "--set name.=x: empty key in 'name.'");
  EXPECT_EQ(load_error(minimal_config(), {"quantizers.99999999999999999999.plugin=x"}),
            "--set quantizers.99999999999999999999.plugin=x: index 99999999999999999999 is past the end of a list of 1");
  EXPECT_EQ(load_error(minimal_config(), {"measure={[a]: 1}"}),
            "--set measure={[a]: 1}: a key in 'measure' is a list; expected a plain name");
}

TEST(config_schema, a_config_that_is_a_folder_or_a_fifo_says_so_without_blocking) {
  temp_dir dir;
  fs::create_directories(dir.path() / "folder.yaml");
  try {
    qexp::load_experiment(dir.path() / "folder.yaml", {});
    ADD_FAILURE() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "config file " + (dir.path() / "folder.yaml").string() + ": is a directory, expected a regular file");
  }
  const fs::path fifo = dir.path() / "fifo.yaml";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  try {
    qexp::load_experiment(fifo, {});
    ADD_FAILURE() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()), "config file " + fifo.string() + ": is a FIFO, expected a regular file");
  }
}

TEST(config_schema, a_raw_nul_byte_in_the_file_is_refused_not_taken_as_its_end) {
  EXPECT_EQ(load_error(minimal_config() + std::string("description: a\0b\n", 17)),
            "x.yaml:5:15: NUL byte at byte offset " + std::to_string(minimal_config().size() + 14) +
                "; expected YAML text");
}

TEST(config_schema, an_alias_inside_its_own_anchor_is_refused_not_followed_forever) {
  // yaml-cpp builds `&d [*d]` as a list that holds itself.
  EXPECT_EQ(load_error(minimal_config() + "description: &d [*d]\n"),
            "x.yaml:5:14: values nested more than 64 levels deep (key 'description.0.0.0.0.0.0.0.0.0.0.0.0.0.0....'); "
            "expected a config nested less deeply (is an alias inside its own anchor?)");
  EXPECT_EQ(load_error(minimal_config() + "measure: &m { size: *m }\n"),
            "x.yaml:5:15: values nested more than 64 levels deep (key 'measure.size.size.size.size.size.size.si...'); "
            "expected a config nested less deeply (is an alias inside its own anchor?)");
  EXPECT_EQ(load_error(minimal_config(), {"description=&d [*d]"}),
            "--set description=&d [*d]: values nested more than 64 levels deep (key "
            "'description.0.0.0.0.0.0.0.0.0.0.0.0.0.0....'); expected a config nested less deeply (is an alias inside "
            "its own anchor?)");
}

TEST(config_schema, aliases_that_expand_past_a_bound_are_refused_not_walked) {
  // Eight lines that expand to 10^8 values.
  std::string yaml = minimal_config() + "x0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 8; ++i) {
    const std::string alias = "*a" + std::to_string(i - 1);
    yaml += "x" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + alias;
    for (int j = 1; j < 10; ++j) yaml += ", " + alias;
    yaml += "]\n";
  }
  EXPECT_EQ(load_error(yaml),
            "x.yaml:5:22: more than 100000 values (key 'x4.7.8.8.7.4'); expected a config of fewer values (do aliases "
            "repeat aliases?)");
}

TEST(config_schema, a_set_key_that_is_not_utf8_or_holds_nul_is_refused) {
  EXPECT_EQ(load_error(minimal_config(), {"quantizers.0.options.gr\xa7n=1"}),
            "--set quantizers.0.options.gr\xa7n=1: byte 23 of the key is 0xA7, not UTF-8; expected UTF-8 text");
  EXPECT_EQ(load_error(minimal_config(), {std::string("descr\0iption=x", 14)}),
            "--set descr\\0iption=x: NUL byte at byte 5 of the key; expected text without NUL");
}

namespace {
struct sample_settings {
  std::int64_t steps = 3;
  double rate = 0.5;
  bool on = true;
  std::string name = "x";
  std::filesystem::path file;
};
}  // namespace

TEST(settings_section, one_declaration_gives_the_schema_defaults_and_the_reader) {
  using s = sample_settings;
  sample_settings defaults;
  defaults.steps = 7;  // the section's defaults, not the struct's
  const auto section = qexp::settings_section<s>(defaults)
                           .field("steps", &s::steps, qexp::schema_node::of(qexp::value_kind::integer, "n").at_least(1))
                           .field("rate", &s::rate, qexp::schema_node::of(qexp::value_kind::number, "r"))
                           .field("on", &s::on, qexp::schema_node::of(qexp::value_kind::boolean, "b"))
                           .field("name", &s::name, qexp::schema_node::of(qexp::value_kind::string, "s"))
                           .field("file", &s::file, qexp::schema_node::of(qexp::value_kind::string, "f"));
  const qexp::schema_node schema = section.schema();
  ASSERT_EQ(schema.fields.size(), 5u);
  EXPECT_EQ(schema.field("steps")->default_value->as<std::int64_t>(), 7);
  EXPECT_EQ(schema.field("rate")->default_value->as<double>(), 0.5);
  EXPECT_EQ(schema.field("file")->default_value->as<std::string>(), "");

  qexp::config_source source;
  const YAML::Node resolved = qexp::resolve_config(YAML::Load("{rate: 0.25, file: a/b.txt}"), schema, source);
  const sample_settings read = section.read(resolved);
  EXPECT_EQ(read.steps, 7);
  EXPECT_EQ(read.rate, 0.25);
  EXPECT_TRUE(read.on);
  EXPECT_EQ(read.name, "x");
  EXPECT_EQ(read.file, std::filesystem::path("a/b.txt"));
  // The field's checks are the schema's: a bound stays a bound.
  EXPECT_THROW(qexp::resolve_config(YAML::Load("{steps: 0}"), schema, source), config_error);
}

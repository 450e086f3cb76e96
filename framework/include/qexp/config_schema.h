// A small typed schema for YAML experiment files: it validates a document (unknown keys with a
// "did you mean", wrong types and bad values, each naming file:line:column and the key path),
// fills in defaults, resolves paths, and yields the resolved document that `--dry-run` prints.
// Printing a resolved document and resolving it again gives the same document.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qexp {

enum class value_kind {
  map,         // fixed keys, each with its own schema
  list,        // a sequence of one element schema (a lone scalar counts as a one-element list)
  string,
  integer,
  number,
  boolean,
  choice,      // a string from a fixed set
  path,        // a file or folder, relative paths against the config file's folder
  data_path,   // like path, then also against each folder of the data search path
  scalar_map,  // free-form key -> scalar map (plugin options: the plugin validates them)
  free_map,    // free-form keys, values kept as written (a sweep's axes: the sweep checks them)
};

struct schema_node {
  value_kind kind = value_kind::string;
  std::string help;
  bool required = false;
  bool must_exist = false;  // for path kinds
  std::optional<YAML::Node> default_value;
  std::vector<std::pair<std::string, schema_node>> fields;  // map: in document order
  std::shared_ptr<schema_node> element;                     // list
  std::vector<std::string> choices;                         // choice
  std::optional<double> min, max;                           // integer / number
  std::size_t min_items = 0;                                // list
  bool wide = false;        // integer: 64-bit (seeds); otherwise it must fit a 32-bit int
  bool folder_name = false;  // string: one path component (used as a folder name)

  // Builders, so a schema reads like the document it describes.
  static schema_node map_of(std::vector<std::pair<std::string, schema_node>> fields, std::string help = "");
  static schema_node list_of(schema_node element, std::string help = "");
  static schema_node of(value_kind kind, std::string help = "");
  static schema_node choice_of(std::vector<std::string> choices, std::string help = "");
  schema_node& with_default(const YAML::Node& value);
  template <typename T>
  schema_node& with_default(const T& value) {
    return with_default(YAML::Node(value));
  }
  schema_node& is_required();
  schema_node& existing();  // path must exist
  schema_node& at_least(double v);
  schema_node& at_most(double v);
  schema_node& non_empty();
  schema_node& wide_integer();  // may take any 64-bit value (a seed), not only a 32-bit int
  schema_node& as_folder_name();  // a string used as one folder name: not empty, ".", ".." or with a '/'
  const schema_node* field(const std::string& name) const;
};

// Where a document came from, for messages and path resolution.
struct config_source {
  std::filesystem::path file;                          // the YAML file (may be empty for strings)
  std::vector<std::filesystem::path> data_search_path;  // for value_kind::data_path
  // Key paths set on the command line, with the text the user wrote, so that errors in them
  // point at "--set a.b=c" rather than at a line of the file.
  std::map<std::string, std::string> overrides;
  // Maps that only exist because an override named a key inside them, with that override.
  std::map<std::string, std::string> created_by_overrides;
  // The document as read (after overrides), to point later messages at a line.
  YAML::Node document;
};

// "file:line:col" of the value at `key_path` ("quantizers.1.options") in source.document, or
// "--set ..." when the command line set it, or just the file when the key is absent.
std::string location_of(const config_source& source, const std::string& key_path);

// The data search path: QEXP_DATA_PATH (':'-separated), else ../shared/data where it exists
// (relative to the current folder and to the config's folder).
std::vector<std::filesystem::path> default_data_search_path(const std::filesystem::path& config_file);

// Reads a YAML file; config_error with file:line:column on a syntax error.
YAML::Node load_yaml_file(const std::filesystem::path& file);

// Applies "key.path=value" (value parsed as YAML; numeric parts index lists) to `document`, and
// records each in `source.overrides`.
void apply_overrides(YAML::Node& document, const std::vector<std::string>& assignments, config_source& source);

// What a value of scalar node `s` must be, with its range or choices: "an integer in [2, 15]",
// "one of rtn, gptq", "true or false".
std::string expected_value(const schema_node& s);
// Empty when `text` reads as a value of `s` (boolean, integer, number or choice: the spelling, the
// range, the choices, 32 bits unless wide), else what was expected. The one check of a scalar's
// text, for config keys and plugin options alike; other kinds always pass here.
std::string unmet_expectation(const schema_node& s, const std::string& text);

// Validates `document` against `schema`; returns the resolved document (defaults filled in,
// paths absolute). Throws config_error on the first problem.
YAML::Node resolve_config(const YAML::Node& document, const schema_node& schema, const config_source& source);

// Block-style YAML text of a resolved document (flow style for short scalar lists).
std::string to_yaml_text(const YAML::Node& node);

// Markdown reference of a schema (docs/config.md is generated from it).
std::string schema_markdown(const schema_node& schema, const std::string& title);

}  // namespace qexp

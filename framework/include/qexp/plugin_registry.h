// Finds quantizer plugins on the search path, checks each one's ABI before using it, validates
// options against the plugin's own specs, and creates quantizers. The host has no list of plugins:
// whatever shared library on the path exports `qexp_plugin_entry` is a plugin.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qexp/config_schema.h"
#include "qexp/plugin_api.h"
#include "qexp/site.h"

namespace qexp {

struct plugin_record {
  std::filesystem::path file;
  const qexp_plugin_info* info = nullptr;  // valid for the whole process: plugins are never unloaded
  bool supported = true;
  std::string unsupported_reason;
  // Whether the plugin prepares this kind of site (it has the matching factory).
  bool handles(site_kind kind) const;
};

class plugin_registry {
 public:
  // Searches, in order: `extra_paths` (--plugin-path), QEXP_PLUGIN_PATH (':'-separated), then the
  // plugin folder beside libqexp (build tree: <build>/plugins/lib; install: <libdir>/qexp/plugins).
  // Each entry is a folder (its *.so files are loaded) or a single file. Throws plugin_error on the
  // first file that is not a valid plugin, and on two plugins with the same id.
  static plugin_registry discover(const std::vector<std::filesystem::path>& extra_paths = {});

  // The folders and files `discover` would search, in order, for messages and `qexp plugins`.
  static std::vector<std::filesystem::path> search_path(
      const std::vector<std::filesystem::path>& extra_paths = {});

  // Loads one file and checks it; throws plugin_error naming the file and the cause.
  void load(const std::filesystem::path& file);

  const std::vector<plugin_record>& plugins() const { return plugins_; }
  std::vector<std::string> ids() const;
  const plugin_record& find(const std::string& id) const;  // plugin_error with a suggestion

  // Checks `given` against the plugin's option specs (unknown option with a did-you-mean, wrong
  // type, value outside its range or choices, path that does not exist) and fills in defaults.
  // A bad option is a config_error (exit 3), like any other mistake in a config or a --set: the
  // plugin is fine, what was written for it is not.
  // `where` prefixes messages, e.g. "config.yaml:7:5"; relative path options are resolved against
  // `base_dir` (the config file's folder; the current folder when empty).
  option_values resolve_options(const std::string& id, const std::map<std::string, std::string>& given,
                                const std::string& where = "", const std::filesystem::path& base_dir = {}) const;

  // A quantizer with these options; plugin_error when the plugin cannot run on this CPU, has no
  // factory for that kind of site, or its factory fails.
  std::unique_ptr<linear_quantizer> create_linear(const std::string& id,
                                                  const std::map<std::string, std::string>& options = {},
                                                  const std::string& where = "",
                                                  const std::filesystem::path& base_dir = {}) const;
  std::unique_ptr<table_quantizer> create_table(const std::string& id,
                                                const std::map<std::string, std::string>& options = {},
                                                const std::string& where = "",
                                                const std::filesystem::path& base_dir = {}) const;

  // The conformance budget the plugin declares for these (resolved) options.
  conformance_budget budget(const std::string& id, const option_values& options) const;

 private:
  std::vector<plugin_record> plugins_;
};

const char* to_string(option_type type);
// The values of a choice option ("per_tensor|per_channel" -> {per_tensor, per_channel}).
std::vector<std::string> option_choices(const option_spec& spec);
// The option as a schema node (kind, choices, bounds, default, help): the one reading of an
// option_spec, for checking values (unmet_expectation), `qexp plugins` and the generated docs.
schema_node option_schema(const option_spec& spec);
// A plugin's options as one map schema (docs: schema_markdown).
schema_node options_schema(const qexp_plugin_info& info);
// "key=value,key=value" -> map (the text of qexp_plugin_info::variants); plugin_error on a part
// without '='.
std::map<std::string, std::string> parse_option_list(const std::string& text, const std::string& who);

}  // namespace qexp

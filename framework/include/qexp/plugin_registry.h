// Finds quantizer plugins on the search path, checks each one's ABI before using it, validates
// options against the plugin's own specs, and creates quantizers. The host has no list of plugins:
// whatever shared library on the path exports `qexp_plugin_entry` is a plugin.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qexp/plugin_api.h"

namespace qexp {

struct plugin_record {
  std::filesystem::path file;
  const qexp_plugin_info* info = nullptr;  // valid for the whole process: plugins are never unloaded
  bool supported = true;
  std::string unsupported_reason;
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

  // Checks `given` against the plugin's option specs (unknown option, wrong type, value not
  // among the choices) and fills in defaults. `where` prefixes messages, e.g. "config.yaml:7:5".
  option_values resolve_options(const std::string& id, const std::map<std::string, std::string>& given,
                                const std::string& where = "") const;

  // A quantizer with these options; plugin_error when the plugin cannot run on this CPU or its
  // factory fails.
  std::unique_ptr<linear_quantizer> create(const std::string& id,
                                           const std::map<std::string, std::string>& options = {},
                                           const std::string& where = "") const;

 private:
  std::vector<plugin_record> plugins_;
};

const char* to_string(option_type type);
// The values of a choice option ("per_tensor|per_channel" -> {per_tensor, per_channel}).
std::vector<std::string> option_choices(const option_spec& spec);

}  // namespace qexp

// `qexp plugins [--json | --markdown]`: every plugin on the search path with its options, and
// whether it can run on this CPU. The Markdown is the option reference (docs/plugin-options.md is
// this output for the in-tree plugins, and a test keeps the two equal).
#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>

#include "cli.h"
#include "qexp/plugin_registry.h"

namespace {

std::vector<std::string> site_kinds(const qexp::plugin_record& p) {
  std::vector<std::string> kinds;
  for (auto kind : {qexp::site_kind::linear, qexp::site_kind::table})
    if (p.handles(kind)) kinds.emplace_back(qexp::to_string(kind));
  return kinds;
}

nlohmann::json plugin_json(const qexp::plugin_record& p) {
  nlohmann::json options = nlohmann::json::array();
  for (std::size_t i = 0; i < p.info->n_options; ++i) {
    const auto& o = p.info->options[i];
    nlohmann::json j = {{"name", o.name}, {"type", qexp::to_string(o.type)}, {"default", o.default_value},
                        {"help", o.help}};
    if (o.type == qexp::option_type::choice) j["choices"] = o.choices;
    if (o.min) j["min"] = o.min;
    if (o.max) j["max"] = o.max;
    options.push_back(j);
  }
  nlohmann::json j = {{"id", p.info->id},           {"version", p.info->version},
                      {"summary", p.info->summary}, {"file", p.file.string()},
                      {"supported", p.supported},   {"sites", site_kinds(p)},
                      {"options", options}};
  if (!p.supported) j["unsupported_reason"] = p.unsupported_reason;
  return j;
}

void print_text(const qexp::plugin_record& p) {
  std::cout << p.info->id << " " << p.info->version << "  " << p.info->summary << "\n"
            << "  file: " << p.file.string() << "\n"
            << "  runs on this CPU: " << (p.supported ? "yes" : "no (" + p.unsupported_reason + ")") << "\n";
  std::cout << "  quantizes:";
  for (const auto& k : site_kinds(p)) std::cout << " " << (k == "linear" ? "Linear layers" : "embedding tables");
  std::cout << "\n";
  for (std::size_t i = 0; i < p.info->n_options; ++i) {
    const auto& o = p.info->options[i];
    std::cout << "  option " << o.name << " (" << qexp::expected_value(qexp::option_schema(o)) << ", default "
              << o.default_value << ")  " << o.help << "\n";
  }
}

void print_markdown(const qexp::plugin_record& p) {
  const std::string title = "plugin: " + std::string(p.info->id);
  if (p.info->n_options == 0) std::cout << "## " << title << "\n\nNo options.\n";
  else std::cout << qexp::schema_markdown(qexp::options_schema(*p.info), title);
  std::cout << "\n" << p.info->summary << "\n\n";
}

}  // namespace

QEXP_COMMAND("plugins", "List the quantizer plugins found, their options and whether they run here",
             [](CLI::App& cmd, std::function<int()>& run) {
               auto json = std::make_shared<bool>(false);
               auto markdown = std::make_shared<bool>(false);
               cmd.add_flag("--json", *json, "Print one JSON document");
               cmd.add_flag("--markdown", *markdown, "Print the options of each plugin as a Markdown reference")
                   ->excludes("--json");
               run = [json, markdown] {
                 auto registry = qexp::cli::discover_plugins();
                 if (*markdown) {
                   for (const auto& p : registry.plugins()) print_markdown(p);
                 } else if (*json) {
                   nlohmann::json all = nlohmann::json::array();
                   for (const auto& p : registry.plugins()) all.push_back(plugin_json(p));
                   std::cout << all.dump(2) << "\n";
                 } else {
                   if (registry.plugins().empty()) std::cout << "no plugins found\n";
                   for (const auto& p : registry.plugins()) print_text(p);
                 }
                 return 0;
               };
             });

// A config section declared once against the struct that holds it, as MLIR's Option<T> declares
// an option once: each key names its member and its schema node (type, help, bounds), the default
// is that member's value in the section's defaults, and `read` fills the struct from a resolved
// document. The schema (validation, `--dry-run`, docs/config.md) and the reader come from the one
// list, so a new option is one line and a default is written in one place.
//
//   const auto optimizer = settings_section<optimizer_settings>().field(
//       "epochs", &optimizer_settings::epochs, schema_node::of(value_kind::integer, "passes").at_least(1));
//   fields.push_back({"training", optimizer.schema()});
//   c.training = optimizer.read(resolved["training"]);
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "qexp/config_schema.h"

namespace qexp {

template <class S>
class settings_section {
 public:
  // `defaults`: the values a key left out of the document takes (a default-constructed S unless
  // the section's defaults differ from the struct's, as the tiny training model's do).
  explicit settings_section(S defaults = S{}) : defaults_(std::move(defaults)) {}

  // The key `key` is `member`, validated by `node`, which must not carry a default of its own.
  template <class M>
  settings_section& field(std::string key, M S::*member, schema_node node) {
    add(std::move(key), member, std::move(node));
    return *this;
  }

  // The choice key `key` is the enum `member`: its spellings are `to_string` of `values` (found by
  // argument-dependent lookup beside the enum), so an enum's names are written once, with it.
  template <class E>
  settings_section& choice(std::string key, E S::*member, std::vector<E> values, std::string help) {
    std::vector<std::string> spellings;
    for (E e : values) spellings.emplace_back(to_string(e));
    schema_node node = schema_node::choice_of(spellings, std::move(help));
    node.with_default(YAML::Node(std::string(to_string(defaults_.*member))));
    readers_.push_back([key, member, values](S& s, const YAML::Node& map) {
      const auto text = map[key].template as<std::string>();
      for (E e : values)
        if (text == to_string(e)) s.*member = e;
    });
    fields_.emplace_back(std::move(key), std::move(node));
    return *this;
  }

  // The section's keys, for a map node or to splice into a larger one.
  const std::vector<std::pair<std::string, schema_node>>& fields() const { return fields_; }
  schema_node schema(std::string help = "") const { return schema_node::map_of(fields_, std::move(help)); }

  // The struct from a resolved map (resolve_config filled every default in, so every key is there).
  S read(const YAML::Node& resolved) const {
    S s = defaults_;
    for (const auto& read_one : readers_) read_one(s, resolved);
    return s;
  }
  const S& defaults() const { return defaults_; }

 private:
  template <class M>
  void add(std::string key, M S::*member, schema_node node) {
    if constexpr (std::is_same_v<M, std::filesystem::path>) {
      node.with_default(YAML::Node((defaults_.*member).string()));
      readers_.push_back([key, member](S& s, const YAML::Node& map) { s.*member = map[key].template as<std::string>(); });
    } else {
      node.with_default(YAML::Node(defaults_.*member));
      readers_.push_back([key, member](S& s, const YAML::Node& map) { s.*member = map[key].template as<M>(); });
    }
    fields_.emplace_back(std::move(key), std::move(node));
  }

  S defaults_;
  std::vector<std::pair<std::string, schema_node>> fields_;
  std::vector<std::function<void(S&, const YAML::Node&)>> readers_;
};

}  // namespace qexp

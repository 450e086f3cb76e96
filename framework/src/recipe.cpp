#include "qexp/recipe.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "qexp/dataset.h"
#include "qexp/errors.h"
#include "qexp/text.h"

namespace qexp {
namespace {

std::string rule_text(const recipe_rule& rule) {
  std::string text = "plugin '" + rule.plugin + "'";
  if (rule.layers.include != std::vector<std::string>{"*"}) text += " include [" + join(rule.layers.include, ", ") + "]";
  if (!rule.layers.exclude.empty()) text += " exclude [" + join(rule.layers.exclude, ", ") + "]";
  return text;
}

std::string rule_label(const recipe& r, std::size_t i) {
  return (r.rules[i].where.empty() ? "" : r.rules[i].where + ": ") + "rule " + std::to_string(i + 1) + " of '" +
         r.label + "' (" + rule_text(r.rules[i]) + ")";
}

// Runs `f`, turning anything a plugin throws into one plugin_error line naming the plugin and step.
template <typename F>
auto call_plugin(const std::string& who, const char* step, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const qexp::error&) {
    throw;
  } catch (const std::exception& e) {
    throw plugin_error(who + ": " + step + " failed: " + error_message(e));
  } catch (...) {
    throw plugin_error(who + ": " + step + " threw something that is not a std::exception");
  }
}

// Thrown by the calibration observer once the last site of a stage has run: the rest of the
// forward pass is not needed.
struct stop_forward {};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One rule's quantizers and the sites they were given.
struct rule_state {
  const plugin_record* record = nullptr;
  option_values options;
  std::string who;
  std::unique_ptr<linear_quantizer> linear;
  std::unique_ptr<table_quantizer> table;
  std::vector<std::string> linear_sites;
  bool calibrates = false;
};

}  // namespace

std::vector<site_assignment> assign_sites(const recipe& r, const std::vector<site>& sites,
                                          const plugin_registry& plugins) {
  std::vector<const plugin_record*> records;
  for (const auto& rule : r.rules) {
    try {
      records.push_back(&plugins.find(rule.plugin));
    } catch (const plugin_error& e) {
      throw plugin_error((rule.where.empty() ? "" : rule.where + ": ") + e.what());
    }
  }
  std::vector<site_assignment> out;
  std::vector<std::size_t> taken(r.rules.size(), 0);
  for (const auto& s : sites) {
    site_assignment a{s, -1};
    for (std::size_t i = 0; i < r.rules.size(); ++i)
      if (records[i]->handles(s.kind) && r.rules[i].layers.selects(s.name)) {
        a.rule = static_cast<int>(i);
        ++taken[i];
        break;
      }
    out.push_back(std::move(a));
  }
  for (std::size_t i = 0; i < r.rules.size(); ++i) {
    if (taken[i]) continue;
    const bool linear = records[i]->handles(site_kind::linear), table = records[i]->handles(site_kind::table);
    const std::string kinds = linear && table ? "Linear layers and embedding tables"
                              : linear        ? "Linear layers only"
                                              : "embedding tables only";
    throw config_error(rule_label(r, i) + " matches no site: its patterns select none that an earlier rule did "
                       "not take, and the plugin quantizes " + kinds);
  }
  return out;
}

std::string assignment_text(const recipe& r, const std::vector<site_assignment>& assignment) {
  // "distilbert.transformer.layer.3.ffn.lin1" -> key "distilbert.transformer.layer.{}.ffn.lin1", 3
  static const std::regex numbered(R"(^(.*\.layer\.)(\d+)(\..*)$)");
  auto fold = [](const std::vector<std::string>& names) {
    std::vector<std::string> keys;
    std::map<std::string, std::vector<int>> numbers;
    for (const auto& n : names) {
      std::smatch m;
      const std::string key = std::regex_match(n, m, numbered) ? m[1].str() + "{}" + m[3].str() : n;
      if (!numbers.count(key)) keys.push_back(key);
      if (key != n) numbers[key].push_back(std::stoi(m[2].str()));
      else numbers[key];
    }
    std::vector<std::string> out;
    for (const auto& key : keys) {
      const auto& v = numbers[key];
      if (v.empty()) {
        out.push_back(key);
        continue;
      }
      bool contiguous = true;
      for (std::size_t i = 1; i < v.size(); ++i) contiguous &= v[i] == v[i - 1] + 1;
      std::string list;
      if (v.size() == 1) list = std::to_string(v[0]);
      else if (contiguous) list = "{" + std::to_string(v.front()) + ".." + std::to_string(v.back()) + "}";
      else {
        for (int x : v) list += (list.empty() ? "" : ",") + std::to_string(x);
        list = "{" + list + "}";
      }
      out.push_back(key.substr(0, key.find("{}")) + list + key.substr(key.find("{}") + 2));
    }
    return out;
  };
  std::ostringstream text;
  text << "recipe '" << r.label << "':\n";
  std::vector<std::string> unassigned;
  for (const auto& a : assignment)
    if (a.rule < 0) unassigned.push_back(a.target.name);
  for (std::size_t i = 0; i < r.rules.size(); ++i) {
    std::vector<std::string> names;
    for (const auto& a : assignment)
      if (a.rule == static_cast<int>(i)) names.push_back(a.target.name);
    text << "  rule " << i + 1 << ": " << rule_text(r.rules[i]);
    for (const auto& [k, v] : r.rules[i].options) text << " " << k << "=" << v;
    text << " -> " << names.size() << " site" << (names.size() == 1 ? "" : "s") << "\n";
    for (const auto& n : fold(names)) text << "      " << n << "\n";
  }
  text << "  fp32 (no rule) -> " << unassigned.size() << " site" << (unassigned.size() == 1 ? "" : "s") << "\n";
  for (const auto& n : fold(unassigned)) text << "      " << n << "\n";
  return text.str();
}

calibration_mode parse_calibration_mode(const std::string& text) {
  if (text == "float") return calibration_mode::float_inputs;
  if (text == "sequential") return calibration_mode::sequential;
  throw config_error("calibration mode '" + text + "': expected float or sequential");
}

const char* to_string(calibration_mode mode) {
  return mode == calibration_mode::float_inputs ? "float" : "sequential";
}

recipe single_rule_recipe(const std::string& plugin, const std::map<std::string, std::string>& options,
                          const layer_selection& layers, const std::string& where) {
  recipe r;
  r.label = plugin;
  for (const auto& [k, v] : options) r.label += " " + k + "=" + v;
  r.rules.push_back({layers, plugin, options, where, where});
  return r;
}

bool recipe_wants_calibration(const recipe& r, const std::vector<site_assignment>& assignment,
                              const plugin_registry& plugins) {
  std::set<int> linear_rules;
  for (const auto& a : assignment)
    if (a.rule >= 0 && a.target.kind == site_kind::linear) linear_rules.insert(a.rule);
  for (int i : linear_rules) {
    const auto& rule = r.rules[static_cast<std::size_t>(i)];
    auto q = plugins.create_linear(rule.plugin, rule.options, rule.options_where, r.base_dir);
    if (call_plugin(rule_label(r, static_cast<std::size_t>(i)), "wants_calibration", [&] { return q->wants_calibration(); }))
      return true;
  }
  return false;
}

quantized_model apply_recipe(const distilbert_classifier& fp32, const recipe& r, const plugin_registry& plugins,
                             const calibration_set* calibration, std::uint64_t seed) {
  c10::InferenceMode inference;
  const auto started = std::chrono::steady_clock::now();
  quantized_model out{fp32, {}, assign_sites(r, fp32.sites(), plugins), 0.0, 0.0};
  const auto& assignment = out.assignment;

  std::vector<rule_state> states(r.rules.size());
  for (const auto& a : assignment) {
    if (a.rule < 0) continue;
    const auto i = static_cast<std::size_t>(a.rule);
    const recipe_rule& rule = r.rules[i];
    rule_state& state = states[i];
    if (!state.record) {
      state.record = &plugins.find(rule.plugin);
      state.options = plugins.resolve_options(rule.plugin, rule.options, rule.options_where, r.base_dir);
      state.who = rule_label(r, i);
    }
    if (a.target.kind == site_kind::linear) {
      if (!state.linear) state.linear = plugins.create_linear(rule.plugin, rule.options, rule.options_where, r.base_dir);
      state.linear_sites.push_back(a.target.name);
    } else if (!state.table) {
      state.table = plugins.create_table(rule.plugin, rule.options, rule.options_where, r.base_dir);
    }
    out.sites.push_back({a.target.name, a.target.kind, rule.plugin, state.record->info->version, state.options.values});
  }

  // begin(): each quantizer learns its sites, grouped by shared input, and the seed.
  std::map<std::string, rule_state*> observer_of;  // Linear site -> the rule that calibrates it
  for (auto& state : states) {
    if (!state.linear) continue;
    quantizer_context context;
    context.seed = seed;
    for (const auto& a : assignment) {
      if (a.rule < 0 || &states[static_cast<std::size_t>(a.rule)] != &state || a.target.kind != site_kind::linear)
        continue;
      if (context.groups.empty() || context.groups.back().name != a.target.group)
        context.groups.push_back({a.target.group, {}});
      context.groups.back().members.push_back(fp32.float_layer(a.target.name));
    }
    call_plugin(state.who, "begin", [&] { state.linear->begin(context); });
    state.calibrates = call_plugin(state.who, "wants_calibration", [&] { return state.linear->wants_calibration(); });
    if (!state.calibrates) continue;
    if (!calibration || calibration->ids.empty())
      throw config_error(state.who + " needs calibration data, but the experiment gives it none "
                         "(set calibration.sentences above 0)");
    for (const auto& name : state.linear_sites) observer_of[name] = &state;
  }

  // Feeds the calibration set through `model`, calling observe() for the sites in `observed`,
  // and stops each forward pass after `last_site` (empty: runs it whole).
  auto calibrate = [&](const distilbert_classifier& model, const std::set<std::string>& observed,
                       const std::string& last_site) {
    const auto start = std::chrono::steady_clock::now();
    auto probe = model;
    probe.set_linear_observer([&](const std::string& name, const at::Tensor& in, const at::Tensor&) {
      if (observed.count(name)) {
        rule_state* state = observer_of.at(name);
        call_plugin(state->who, "observe", [&] { state->linear->observe(name, in); });
      }
      if (name == last_site) throw stop_forward{};
    });
    const auto& ids = calibration->ids;
    for (std::size_t begin = 0; begin < ids.size(); begin += calibration->batch_size) {
      at::Tensor mask;
      const auto input = padded_batch(ids, begin, std::min(ids.size(), begin + calibration->batch_size),
                                      calibration->pad_id, &mask);
      try {
        probe.forward(input, mask);
      } catch (const stop_forward&) {
      }
    }
    out.calibration_seconds += seconds_since(start);
    for (auto& state : states) {
      std::vector<std::string> finished;
      for (const auto& name : state.linear_sites)
        if (observed.count(name)) finished.push_back(name);
      if (!finished.empty())
        call_plugin(state.who, "finish_calibration", [&] { state.linear->finish_calibration(finished); });
    }
  };
  auto prepare_linear = [&](const site_assignment& a) {
    rule_state& state = states[static_cast<std::size_t>(a.rule)];
    auto packed = call_plugin(state.who + " on " + a.target.name, "prepare",
                              [&] { return state.linear->prepare(fp32.float_layer(a.target.name)); });
    if (!packed) throw plugin_error(state.who + ": prepare returned null for " + a.target.name);
    out.model.replace_linear(a.target.name, std::shared_ptr<packed_linear>(std::move(packed)));
  };

  for (const auto& a : assignment) {
    if (a.rule < 0 || a.target.kind != site_kind::table) continue;
    rule_state& state = states[static_cast<std::size_t>(a.rule)];
    auto packed = call_plugin(state.who + " on " + a.target.name, "prepare",
                              [&] { return state.table->prepare(fp32.float_table(a.target.name)); });
    if (!packed) throw plugin_error(state.who + ": prepare returned null for " + a.target.name);
    out.model.replace_table(a.target.name, std::shared_ptr<packed_table>(std::move(packed)));
  }

  const bool sequential = calibration && calibration->mode == calibration_mode::sequential;
  if (!sequential) {
    // One pass over the fp32 model, stopped after the last calibrating site in model order.
    std::set<std::string> observed;
    std::string last;
    for (const auto& a : assignment)
      if (observer_of.count(a.target.name)) observed.insert(a.target.name), last = a.target.name;
    if (!observed.empty()) calibrate(fp32, observed, last);
    for (const auto& a : assignment)
      if (a.rule >= 0 && a.target.kind == site_kind::linear) prepare_linear(a);
  } else {
    // Stage by stage (a transformer block, then the head): calibrate the stage on the model whose
    // earlier stages are already quantized, then quantize the stage.
    std::map<std::int64_t, std::vector<const site_assignment*>> stages;
    for (const auto& a : assignment)
      if (a.rule >= 0 && a.target.kind == site_kind::linear) stages[out.model.stage_of(a.target.name)].push_back(&a);
    for (const auto& [stage, members] : stages) {
      std::set<std::string> observed;
      std::string last;
      for (const auto* a : members)
        if (observer_of.count(a->target.name)) observed.insert(a->target.name), last = a->target.name;
      if (!observed.empty()) calibrate(out.model, observed, last);
      for (const auto* a : members) prepare_linear(*a);
    }
  }
  out.prepare_seconds = seconds_since(started) - out.calibration_seconds;
  return out;
}

}  // namespace qexp

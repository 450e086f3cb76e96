// Recipes: which scheme each site of a model gets, and the one function that applies a recipe to
// a float model (calibrating the plugins that ask for it). `qexp run`, `qexp predict`, the tests
// and the benchmarks all quantize through apply_recipe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "qexp/distilbert.h"
#include "qexp/layer_selection.h"
#include "qexp/plugin_registry.h"
#include "qexp/site.h"

namespace qexp {

// One rule: the sites whose names match `layers` and whose kind the plugin handles get `plugin`
// with `options`.
struct recipe_rule {
  layer_selection layers;
  std::string plugin;
  std::map<std::string, std::string> options;
  std::string where;          // "configs/x.yaml:7:5": the rule's plugin key, for messages
  std::string options_where;  // the same for its options
};

// An ordered list of rules; each site takes the first rule that matches it, unmatched sites stay
// fp32. A one-rule recipe is what a config's plain `{plugin, options, layers}` entry means.
struct recipe {
  std::string label;
  std::vector<recipe_rule> rules;
  std::filesystem::path base_dir;  // relative path options resolve against it (the config's folder)
};

struct site_assignment {
  site target;
  int rule = -1;  // index into recipe::rules; -1: the site stays fp32
};

// Every site of `sites` with the rule it takes. Throws config_error naming the rule when a rule
// matches no site (plugin_error when a rule's plugin is unknown).
std::vector<site_assignment> assign_sites(const recipe& r, const std::vector<site>& sites,
                                          const plugin_registry& plugins);

// The assignment as text, one line per rule with the sites it got (runs of block-numbered names
// folded: "layer.{0..5}.ffn.lin1"), then the sites left fp32.
std::string assignment_text(const recipe& r, const std::vector<site_assignment>& assignment);

enum class calibration_mode {
  float_inputs,  // every site sees the inputs the fp32 model gives it
  sequential,    // block by block: each block sees the outputs of the blocks already quantized
};
calibration_mode parse_calibration_mode(const std::string& text);  // "float" | "sequential"
const char* to_string(calibration_mode mode);

// Calibration sentences, tokenized, and how to feed them.
struct calibration_set {
  std::vector<std::vector<std::int64_t>> ids;  // one row of token ids per sentence
  std::size_t batch_size = 8;
  std::int64_t pad_id = 0;
  calibration_mode mode = calibration_mode::float_inputs;
  std::string source;  // for messages: "sst2/train.tsv: 64 sentences (seed 0)"
};

// What rebuilds one quantized site from a checkpoint.
struct site_record {
  std::string site;
  site_kind kind = site_kind::linear;
  std::string plugin, plugin_version;
  std::map<std::string, std::string> options;  // every option, canonical text
};

struct quantized_model {
  distilbert_classifier model;
  std::vector<site_record> sites;  // the quantized sites, in model order
  std::vector<site_assignment> assignment;  // every site with the rule it took
  double calibration_seconds = 0;  // forward passes over the calibration set
  double prepare_seconds = 0;      // everything else: observe, finish_calibration, prepare
};

// The quantizers of a recipe ask for calibration (a plugin that does fails before anything is
// measured when the config gives it none).
bool recipe_wants_calibration(const recipe& r, const std::vector<site_assignment>& assignment,
                              const plugin_registry& plugins);

// Applies `r` to a copy of `fp32` (which is left untouched). Plugins that want calibration are
// fed `calibration` (float or sequential mode); config_error when one wants it and `calibration`
// is null or empty. `seed` reaches every quantizer through quantizer_context.
quantized_model apply_recipe(const distilbert_classifier& fp32, const recipe& r, const plugin_registry& plugins,
                             const calibration_set* calibration = nullptr, std::uint64_t seed = 0);

// A one-rule recipe: `plugin` with `options` on the sites `layers` selects.
recipe single_rule_recipe(const std::string& plugin, const std::map<std::string, std::string>& options = {},
                          const layer_selection& layers = {}, const std::string& where = "");

}  // namespace qexp

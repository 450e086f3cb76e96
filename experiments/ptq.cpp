// The `ptq` experiment kind: the fp32 baseline, then each quantizer recipe, measured the same way.
#include <filesystem>
#include <sstream>

#include "experiment.h"
#include "ptq_config.h"
#include "ptq_runner.h"
#include "qexp/distilbert.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"

namespace qexp {
namespace {

// Checks every recipe against the plugins and the model's sites (a rule that matches no site is
// an error), and the calibration data when a plugin will ask for it. Returns the per-site
// assignment of each recipe.
std::string validate_ptq(const YAML::Node& resolved, const config_source& source, const plugin_registry& plugins) {
  const ptq_config config = ptq_config_from(resolved, source);
  std::error_code ec;
  if (const auto problem = regular_file_problem(config.model_path / "config.json"); !problem.empty())
    throw config_error("model folder " + config.model_path.string() + ": config.json " + problem + " at " +
                       location_of(source, "model.path"));
  if (const auto problem = regular_file_problem(config.data_path); !problem.empty())
    throw config_error(location_of(source, "data.path") + ": dataset " + config.data_path.string() + ": " + problem);
  const auto sites = distilbert_classifier::sites_of(distilbert_config::from_json_file(config.model_path / "config.json"));
  std::vector<quantizer_entry> all{config.baseline};
  all.insert(all.end(), config.quantizers.begin(), config.quantizers.end());
  std::ostringstream notes;
  for (const auto& q : all) {
    const auto assignment = assign_sites(q.scheme, sites, plugins);
    for (const auto& rule : q.scheme.rules) plugins.resolve_options(rule.plugin, rule.options, rule.options_where, q.scheme.base_dir);
    notes << assignment_text(q.scheme, assignment);
    if (!recipe_wants_calibration(q.scheme, assignment, plugins)) continue;
    const auto& cal = config.calibration;
    if (cal.sentences == 0)
      throw config_error(q.where + ": '" + q.label + "' calibrates, but calibration.sentences is 0 at " + cal.where);
    if (const auto problem = regular_file_problem(cal.data_path); !problem.empty())
      throw config_error(location_of(source, "calibration.data") + ": calibration data " + cal.data_path.string() +
                         ": " + problem + " ('" + q.label + "' calibrates; set calibration.data or QEXP_DATA_PATH)");
    if (std::filesystem::equivalent(cal.data_path, config.data_path, ec))
      throw config_error(location_of(source, "calibration.data") + ": calibration data " + cal.data_path.string() +
                         " is the evaluation file (data.path); calibrate on other sentences, e.g. sst2/train.tsv");
  }
  return notes.str();
}

const experiment_kind_registration ptq_kind({
    "ptq",
    "post-training quantization: fp32 baseline against each quantizer recipe (size, latency, accuracy, per-layer "
    "error)",
    ptq_schema,
    [](const YAML::Node& resolved, const config_source& source) { ptq_config_from(resolved, source); },
    validate_ptq,
    [](const YAML::Node& resolved, const config_source& source, const run_request& request) {
      return run_ptq(ptq_config_from(resolved, source), resolved, request);
    },
});

}  // namespace
}  // namespace qexp

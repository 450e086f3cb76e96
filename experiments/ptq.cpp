// The `ptq` experiment kind: the fp32 baseline, then each quantizer recipe, measured the same way.

#include "experiment.h"
#include "ptq_config.h"
#include "ptq_runner.h"

namespace qexp {
namespace {

std::string validate_ptq(const YAML::Node& resolved, const config_source& source, const plugin_registry& plugins) {
  const ptq_config config = ptq_config_from(resolved, source);
  std::vector<quantizer_entry> all{config.baseline};
  all.insert(all.end(), config.quantizers.begin(), config.quantizers.end());
  return validate_recipes(all, config.model_path, config.data_path, config.calibration, source, plugins);
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

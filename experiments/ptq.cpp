// The `ptq` experiment kind: the fp32 baseline, then each quantizer, measured the same way.
#include <filesystem>

#include "experiment.h"
#include "ptq_config.h"
#include "ptq_runner.h"
#include "qexp/errors.h"

namespace qexp {
namespace {

void validate_ptq(const YAML::Node& resolved, const config_source& source, const plugin_registry& plugins) {
  const ptq_config config = ptq_config_from(resolved, source);
  std::error_code ec;
  if (!std::filesystem::exists(config.model_path / "config.json", ec))
    throw config_error("model folder " + config.model_path.string() + " has no config.json at " +
                       location_of(source, "model.path"));
  std::vector<quantizer_entry> all{config.baseline};
  all.insert(all.end(), config.quantizers.begin(), config.quantizers.end());
  for (const auto& q : all) {
    try {
      plugins.find(q.plugin);
      plugins.resolve_options(q.plugin, q.options, q.options_where);
    } catch (const plugin_error& e) {
      // An unknown plugin id is a config mistake, but it may also be a missing build: say where.
      const std::string message = e.what();
      if (message.rfind("unknown plugin", 0) == 0) throw plugin_error(q.where + ": " + message);
      throw;
    }
  }
}

const experiment_kind_registration ptq_kind({
    "ptq",
    "post-training quantization: fp32 baseline against each quantizer (size, latency, accuracy, per-layer error)",
    ptq_schema,
    validate_ptq,
    [](const YAML::Node& resolved, const config_source& source, const run_request& request) {
      return run_ptq(ptq_config_from(resolved, source), resolved, request);
    },
});

}  // namespace
}  // namespace qexp

#include "ptq_runner.h"

#include "qexp/errors.h"

namespace qexp {

int run_ptq(const ptq_config& config, const YAML::Node&, const run_request&) {
  throw error("experiment '" + config.name + "': the ptq runner needs the DistilBERT model, which is not built yet");
}

}  // namespace qexp

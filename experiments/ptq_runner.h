// Runs a `ptq` experiment and writes its results folder.
#pragma once

#include <yaml-cpp/yaml.h>

#include "experiment.h"
#include "ptq_config.h"

namespace qexp {

// Returns the exit code: 0 when every quantizer was measured, runtime_failure when any failed
// (its error is recorded in the results and the others still run).
int run_ptq(const ptq_config& config, const YAML::Node& resolved, const run_request& request);

}  // namespace qexp

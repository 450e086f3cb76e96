// The plugin conformance suite as a library: the checks every quantizer plugin must pass (odd
// shapes against a float64 reference, empty, zero, constant, outlier and non-finite inputs, the
// dequantized weight, packed size, save/load, bad input), usable from `qexp check-plugin`, from
// GoogleTest (tests/plugin_conformance_test.cpp) or from any program, after ggml's
// test-backend-ops.
//
// Error budgets come only from the plugin itself (qexp_plugin_info::budget, read through
// plugin_registry::budget): the host knows no plugin by name. Errors are normalised MSE (sum of
// squared errors over sum of squared reference values) on Gaussian data against float64.
//
// The data a calibrating quantizer sees (wants_calibration() true): begin() with seed 0 and one
// input group holding the layer under test, then observe() with four batches of 32 Gaussian rows
// (N(0, 1)), the third with one outlier channel (channel in/3 times 20), then finish_calibration()
// and prepare(). A quantizer that does not calibrate still gets begin() before prepare(). Each
// prepared layer gets a fresh quantizer; load() is called on a fresh quantizer that never saw
// begin(), as in a later process.
//
// A check that throws (std::exception or anything else) is a failed check, not a crashed suite; a
// plugin that crashes the process (a segfault) takes this process down, which is why
// `qexp check-plugin` runs each case in a child process (qexp/isolation.h).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "qexp/plugin_api.h"
#include "qexp/plugin_registry.h"

namespace qexp {

// The result of one check of one case.
struct conformance_check {
  std::string name;     // e.g. "dequantized_weight_is_what_forward_multiplies_by"
  bool passed = false;
  bool skipped = false;  // not run (the plugin cannot run on this CPU); `passed` is then false
  std::string detail;   // one line: why it failed, why it was skipped, or what was measured
  // Measured figures ("worst_nmse", "weight_nmse", ...), for reports and test properties.
  std::map<std::string, double> measured;
};

// One option set of one plugin to check.
struct conformance_case {
  std::string plugin;                          // plugin id
  std::map<std::string, std::string> options;  // only those that differ from the defaults
  std::string name;                            // "defaults" or "key=value,key=value"
};

// The name of a case with these options: "defaults" when empty, else "key=value,..." in key order.
std::string conformance_case_name(const std::map<std::string, std::string>& options);

// The option sets worth checking for a plugin, in this order, without duplicates: its defaults;
// each choice and boolean option changed alone to every other value; each integer or number
// option set alone to the minimum and the maximum of its declared range (a side left unbounded is
// not tested; string and path options are never varied); then the plugin's own `variants`.
// Throws plugin_error on a malformed variant.
std::vector<conformance_case> conformance_cases(const qexp_plugin_info& info);

// Runs every check that applies to the plugin (the Linear checks when it has create_linear, the
// embedding-table checks when it has create_table) with the case's options, and returns one entry
// per check, in a fixed order. Never throws for what the plugin does; throws plugin_error when
// `c.plugin` is not in the registry. A plugin that cannot run on this CPU gives one skipped entry.
// When the options do not resolve, the budget callback fails, or the factory fails, the result
// is that one failed setup check.
std::vector<conformance_check> run_conformance(const plugin_registry& registry, const conformance_case& c);

}  // namespace qexp

// `qexp schema [KIND]`: the config reference of one experiment kind (or all, and the `sweep:`
// section) as Markdown; docs/config.md is this output, and a test keeps the two equal.
#include <iostream>

#include "cli.h"
#include "experiment.h"
#include "sweep.h"

QEXP_COMMAND("schema", "Print the config reference of an experiment kind as Markdown", [](CLI::App& cmd, std::function<int()>& run) {
  auto kind = std::make_shared<std::string>();
  cmd.add_option("kind", *kind, "Experiment kind, or sweep (default: all kinds and the sweep section)");
  run = [kind] {
    for (const auto& name : qexp::experiment_kind_names()) {
      if (!kind->empty() && *kind != name) continue;
      const auto& k = qexp::find_experiment_kind(name);
      std::cout << qexp::schema_markdown(k.schema(), "kind: " + name) << "\n" << k.summary << "\n\n";
    }
    if (kind->empty() || *kind == "sweep") {
      std::cout << qexp::schema_markdown(qexp::sweep_schema(), "sweep")
                << "\nIn a config file of any kind, `qexp sweep` expands it into points (docs/sweeps.md).\n\n";
      return 0;
    }
    if (!kind->empty()) qexp::find_experiment_kind(*kind);  // an unknown kind is an error
    return 0;
  };
});

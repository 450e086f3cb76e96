// `qexp validate CONFIG [--set k=v]...`: checks a config (schema, plugins, options, paths) without
// running anything.
#include <iostream>

#include "cli.h"
#include "experiment.h"

QEXP_COMMAND("validate", "Check an experiment config without running it", [](CLI::App& cmd, std::function<int()>& run) {
  auto config = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd.add_option("config", *config, "Experiment YAML")->required();
  cmd.add_option("--set", *overrides, "Override a key: key.path=value (repeatable)");
  run = [config, overrides] {
    auto experiment = qexp::load_experiment(*config, *overrides);
    auto plugins = qexp::cli::discover_plugins();
    std::cout << experiment.kind->validate(experiment.resolved, experiment.source, plugins);
    std::cout << *config << ": ok (" << experiment.kind->name << " experiment '"
              << experiment.resolved["name"].as<std::string>() << "')\n";
    return 0;
  };
});

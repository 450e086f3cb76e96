// `qexp run CONFIG [--set k=v]... [--out DIR] [--dry-run]`: runs one experiment.
#include <iostream>
#include <sstream>

#include "cli.h"
#include "experiment.h"
#include "qexp/text.h"

QEXP_COMMAND("run", "Run an experiment (fp32 baseline against each quantizer)", [](CLI::App& cmd, std::function<int()>& run) {
  struct args_t {
    std::string config, out, results_dir;
    std::vector<std::string> overrides;
    bool dry_run = false;
  };
  auto args = std::make_shared<args_t>();
  cmd.add_option("config", args->config, "Experiment YAML")->required();
  cmd.add_option("--set", args->overrides, "Override a key: key.path=value (repeatable)");
  cmd.add_option("--out", args->out, "Results root (default: the config's output.dir)");
  cmd.add_option("--results-dir", args->results_dir, "Write the results exactly into this folder (used by sweeps)");
  cmd.add_flag("--dry-run", args->dry_run,
               "Print the resolved config as YAML, then the per-site assignment of each recipe as comments, "
               "and stop");
  run = [args] {
    auto experiment = qexp::load_experiment(args->config, args->overrides);
    if (args->dry_run) {
      std::cout << qexp::to_yaml_text(experiment.resolved);
      // The assignment needs the plugins and the model's config.json; without them the resolved
      // config is still worth printing (a sweep point, a model generated later). Cross-key
      // mistakes were already reported by load_experiment.
      std::string notes;
      try {
        auto plugins = qexp::cli::discover_plugins();
        notes = experiment.kind->validate(experiment.resolved, experiment.source, plugins);
      } catch (const std::exception& e) {
        notes = "not checked: " + qexp::error_message(e) + "\n";
      }
      std::istringstream lines(notes);
      for (std::string line; std::getline(lines, line);) std::cout << "# " << line << "\n";
      return 0;
    }
    auto plugins = qexp::cli::discover_plugins();
    experiment.kind->validate(experiment.resolved, experiment.source, plugins);
    qexp::run_request request;
    request.out_root = args->out;
    request.results_dir = args->results_dir;
    request.plugins = &plugins;
    for (const auto& path : qexp::cli::globals().plugin_paths) {
      request.global_args.push_back("--plugin-path");
      request.global_args.push_back(std::filesystem::absolute(path).string());
    }
    return experiment.kind->run(experiment.resolved, experiment.source, request);
  };
});

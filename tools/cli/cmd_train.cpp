// `qexp train CONFIG [--set k=v]... [--out DIR] [--dry-run]`: runs a `kind: train` config and
// writes the trained model folder (DIR, else the config's output.dir).
#include <iostream>

#include "cli.h"
#include "experiment.h"

QEXP_COMMAND("train", "Train a DistilBERT classifier from scratch (a `kind: train` config)",
             [](CLI::App& cmd, std::function<int()>& run) {
               struct args_t {
                 std::string config, out;
                 std::vector<std::string> overrides;
                 bool dry_run = false;
               };
               auto args = std::make_shared<args_t>();
               cmd.add_option("config", args->config, "Training YAML (kind: train)")->required();
               cmd.add_option("--set", args->overrides, "Override a key: key.path=value (repeatable)");
               cmd.add_option("--out", args->out, "Model folder to write (default: the config's output.dir)");
               cmd.add_flag("--dry-run", args->dry_run, "Print the resolved config as YAML and stop");
               run = [args] {
                 auto experiment = qexp::load_experiment(args->config, args->overrides);
                 if (experiment.kind->name != "train")
                   throw qexp::config_error(args->config + ": `qexp train` runs `kind: train` configs, this one is "
                                            "kind '" + experiment.kind->name + "' (use `qexp run`)");
                 if (args->dry_run) {
                   std::cout << qexp::to_yaml_text(experiment.resolved);
                   return 0;
                 }
                 const qexp::plugin_registry plugins = qexp::cli::discover_plugins();
                 experiment.kind->validate(experiment.resolved, experiment.source, plugins);
                 qexp::run_request request;
                 request.out_root = args->out;
                 request.plugins = &plugins;
                 return experiment.kind->run(experiment.resolved, experiment.source, request);
               };
             });

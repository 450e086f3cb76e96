// `qexp sweep CONFIG`: expands a sweep file into points and runs each as its own `qexp run`,
// locally (--executor local --jobs N) or as a Slurm job array (--executor slurm [--wait]).
// --list shows the points, --status where they stand; re-running skips points already done.
#include <iostream>

#include "cli.h"
#include "sweep.h"
#include "qexp/text.h"

namespace {

qexp::point_command this_qexp() {
  qexp::point_command command;
  // The running binary, so that points run the same build as the sweep that started them.
  command.qexp = std::filesystem::read_symlink("/proc/self/exe");
  for (const auto& p : qexp::cli::globals().plugin_paths) {
    command.global_args.push_back("--plugin-path");
    command.global_args.push_back(std::filesystem::absolute(p).string());
  }
  return command;
}

int final_report(const qexp::sweep_plan& plan, const std::vector<qexp::point_status>& statuses) {
  std::cout << "sweep " << plan.name << ": " << qexp::status_counts(statuses) << "\n"
            << qexp::status_table(plan, statuses) << "collect the results with: qexp collect " << plan.dir.string()
            << "\n";
  for (const auto& s : statuses)
    if (s.state != qexp::point_state::done) return static_cast<int>(qexp::exit_code::runtime_failure);
  return 0;
}

}  // namespace

QEXP_COMMAND("sweep", "Run a sweep: many experiments from one YAML, locally or as a Slurm job array", [](CLI::App& cmd, std::function<int()>& run) {
  struct args_t {
    std::string config, out, executor = "local";
    std::vector<std::string> overrides;
    unsigned jobs = 1;
    bool list = false, status = false, wait = false, retry_failed = false;
  };
  auto args = std::make_shared<args_t>();
  cmd.add_option("config", args->config, "Sweep YAML (an experiment with a `sweep:` section)")->required();
  cmd.add_option("--set", args->overrides, "Override a key of every point: key.path=value (repeatable)");
  cmd.add_option("--out", args->out, "Results root (default: the config's output.dir); points go to ROOT/<sweep>/<id>/");
  cmd.add_flag("--list", args->list, "Print every point (id and overrides) and stop");
  cmd.add_flag("--status", args->status, "Print how many points are done, running, pending and failed, and stop");
  cmd.add_option("--executor", args->executor, "local: a process pool here; slurm: one sbatch job array")
      ->check(CLI::IsMember({"local", "slurm"}));
  cmd.add_option("--jobs,-j", args->jobs, "Points run at once by the local executor")->check(CLI::Range(1u, 1024u));
  cmd.add_flag("--wait", args->wait, "Slurm: follow the job with squeue until every point finished");
  cmd.add_flag("--retry-failed", args->retry_failed, "Run only the points that failed");
  run = [args] {
    const auto plan = qexp::expand_sweep(args->config, args->overrides, args->out);
    if (args->list) {
      std::cout << "sweep " << plan.name << ": " << plan.points.size() << " points over " << qexp::join(plan.axis_keys, "  ")
                << "\nresults: " << plan.dir.string() << "/<id>/\n";
      for (const auto& p : plan.points) std::cout << "  " << p.id << "  " << qexp::join(p.overrides, "  ") << "\n";
      return 0;
    }
    const auto queued = qexp::queued_slurm_tasks(plan);
    auto statuses = qexp::sweep_status(plan, queued);
    if (args->status) {
      std::cout << "sweep " << plan.name << ": " << qexp::status_counts(statuses) << "\n"
                << qexp::status_table(plan, statuses);
      for (const auto& s : statuses)
        if (s.state == qexp::point_state::failed) return static_cast<int>(qexp::exit_code::runtime_failure);
      return 0;
    }

    const auto selected = qexp::points_to_run(statuses, args->retry_failed);
    const std::size_t skipped = plan.points.size() - selected.size();
    if (selected.empty()) {
      std::cout << "sweep " << plan.name << ": nothing to run (" << qexp::status_counts(statuses) << ")\n";
      return final_report(plan, statuses);
    }
    std::cout << "sweep " << plan.name << ": running " << selected.size() << " of " << plan.points.size() << " points";
    if (skipped) std::cout << " (" << skipped << " skipped: done, queued" << (args->retry_failed ? " or not failed" : "") << ")";
    std::cout << " into " << plan.dir.string() << "\n" << std::flush;
    qexp::prepare_points(plan, selected);
    const auto command = this_qexp();

    if (args->executor == "local") {
      qexp::run_local(plan, selected, command, args->jobs, std::cout);
      return final_report(plan, qexp::sweep_status(plan, qexp::queued_slurm_tasks(plan)));
    }
    const std::string job = qexp::submit_slurm(plan, selected, command);
    std::cout << "submitted Slurm job " << job << " (" << selected.size() << " array tasks; script "
              << (plan.dir / "sweep.sbatch").string() << ")\n" << std::flush;
    if (!args->wait) {
      std::cout << "follow it with: qexp sweep " << args->config << " --status\n";
      return 0;
    }
    qexp::wait_for_slurm_job(plan, job, std::cout);
    return final_report(plan, qexp::sweep_status(plan, qexp::queued_slurm_tasks(plan)));
  };
});

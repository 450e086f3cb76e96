// `qexp collect runs/<sweep>|SWEEP.yaml [--out DIR]`: merges the results of every point of a sweep into one
// results.csv, summary.md and report.html (results_report.h), prints the summary table, and writes
// points.csv mapping each point id to its state and the values of the swept keys.
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli.h"
#include "results_report.h"
#include "sweep.h"

namespace {

// One row per point: id, state, exit code, then one column per swept key (RFC 4180).
std::string points_csv(const qexp::sweep_plan& plan, const std::vector<qexp::point_status>& statuses) {
  std::ostringstream out;
  out << "point_id,state,exit_code";
  for (const auto& key : plan.axis_keys) out << "," << qexp::csv_field(key);
  out << "\n";
  for (std::size_t i = 0; i < plan.points.size(); ++i) {
    const auto& point = plan.points[i];
    out << point.id << "," << qexp::point_state_name(statuses[i].state) << ","
        << (statuses[i].exit_code ? std::to_string(*statuses[i].exit_code) : "");
    for (const auto& key : plan.axis_keys) {
      std::string value;
      for (const auto& o : point.overrides)
        if (o.compare(0, key.size() + 1, key + "=") == 0) value = o.substr(key.size() + 1);
      out << "," << qexp::csv_field(value);
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace

QEXP_COMMAND("collect", "Merge the results of a sweep's points into one CSV, summary and report.html", [](CLI::App& cmd, std::function<int()>& run) {
  struct args_t {
    std::string dir, out;
  };
  auto args = std::make_shared<args_t>();
  cmd.add_option("dir", args->dir,
                 "The sweep folder (runs/<sweep>), the sweep YAML (with its default output folder), or any folder "
                 "holding results folders")
      ->required();
  cmd.add_option("--out", args->out, "Where to write the merged files (default: the sweep folder)");
  run = [args] {
    std::filesystem::path dir = args->dir;
    if (std::filesystem::is_regular_file(dir) && qexp::is_sweep_file(dir)) dir = qexp::expand_sweep(dir, {}).dir;
    const std::filesystem::path out_dir = args->out.empty() ? dir : std::filesystem::path(args->out);
    std::vector<nlohmann::json> runs;
    for (const auto& file : qexp::find_results_files(dir)) runs.push_back(qexp::load_results(file));
    qexp::write_report_files(runs, out_dir);
    std::cout << qexp::summary_table(runs) << "\n";

    std::size_t not_done = 0;
    if (std::filesystem::exists(dir / "sweep.json")) {
      const auto plan = qexp::load_sweep_manifest(dir);
      const auto statuses = qexp::sweep_status(plan, qexp::queued_slurm_tasks(plan));
      qexp::write_text_atomically(out_dir / "points.csv", points_csv(plan, statuses));
      std::cout << "sweep " << plan.name << ": " << qexp::status_counts(statuses) << "\n"
                << qexp::status_table(plan, statuses);
      for (const auto& s : statuses) not_done += s.state != qexp::point_state::done;
    }
    for (const char* name : {"results.csv", "summary.md", "report.html", "points.csv"}) {
      if (std::filesystem::exists(out_dir / name)) std::cout << "wrote " << (out_dir / name).string() << "\n";
    }
    std::cout << runs.size() << " results files merged\n";
    // The merged files are written either way; the exit code tells scripts whether all points are in.
    return not_done ? static_cast<int>(qexp::exit_code::runtime_failure) : 0;
  };
});

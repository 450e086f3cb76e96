// Sweeps: one YAML with a `sweep:` section expands into many experiments (points), each run as its
// own `qexp run` process with its own results folder `<output root>/<sweep name>/<point id>/`,
// either by a local process pool or as one Slurm job array. See docs/sweeps.md.
//
// The state of a sweep lives only in its folder (point.yaml, run.log, exit_code, results.json per
// point; the Slurm job ids in slurm_jobs), so a sweep can be re-run, resumed, watched and
// collected by separate invocations, on a login node or from a job.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "qexp/config_schema.h"
#include "qexp/shell.h"  // run_shell and shell_quote, which the Slurm executor uses

namespace qexp {

struct sweep_point {
  std::size_t index = 0;               // position in the expansion (also the Slurm array index)
  std::string id;                      // point_id(resolved)
  std::vector<std::string> overrides;  // "key.path=value" as `qexp run --set` takes them
  YAML::Node resolved;                 // the point's config, resolved against its kind's schema
};

// `sweep.slurm` in the YAML: what goes into the job array's #SBATCH header.
struct slurm_settings {
  std::string partition;                 // empty: the cluster's default
  std::string time = "01:00:00";         // per point (array task)
  int cpus_per_task = 1;
  std::string mem;                       // e.g. "4G"; empty: the cluster's default
  std::vector<std::string> extra;        // more sbatch options, "--qos=short" or "#SBATCH --qos=short"
  std::vector<std::string> setup;        // shell lines run before qexp in each task (module load ...)
  std::string qexp;                      // the qexp binary on the compute nodes; empty: this one
  int max_parallel = 0;                  // "%N" suffix of --array: at most N points at once; 0: no limit
};

struct sweep_plan {
  std::string name;                          // sweep.name, else the base config's name
  std::filesystem::path config_file;
  std::vector<std::string> base_overrides;   // --set given to `qexp sweep`, applied to every point
  std::filesystem::path dir;                 // absolute: <--out or output.dir>/<name>
  std::vector<std::string> axis_keys;        // grid keys then zip keys, in document order
  std::vector<sweep_point> points;
  slurm_settings slurm;
};

// The schema of a config file's `sweep:` key (name, grid, zip, slurm): its checks, defaults and
// docs; the file's other keys are its kind's.
schema_node sweep_schema();

// Stable short id of a resolved config: 10 hex digits of the 64-bit FNV-1a hash of
// to_yaml_text(resolved). Equal configs get equal ids, whatever overrides produced them.
std::string point_id(const YAML::Node& resolved);

// Reads the YAML, checks its `sweep:` section (grid: cartesian product; zip: lock-step lists of
// one length) and resolves every point through the experiment's schema. Throws config_error naming
// the file and sweep key (or the point and its overrides when a point does not resolve).
// `out_root` empty: the base config's output.dir (else "runs"), relative to the current folder.
sweep_plan expand_sweep(const std::filesystem::path& config_file, const std::vector<std::string>& overrides,
                        const std::filesystem::path& out_root = {});

// The plan recorded in <dir>/sweep.json by prepare_points (name, points, ids, overrides; no
// resolved configs), for `qexp collect` and status without the YAML. Throws input_error.
sweep_plan load_sweep_manifest(const std::filesystem::path& dir);

// True when the YAML file has a top-level `sweep:` key.
bool is_sweep_file(const std::filesystem::path& config_file);

enum class point_state { not_run, pending, running, done, failed };
const char* point_state_name(point_state state);

struct point_status {
  point_state state = point_state::not_run;
  std::optional<int> exit_code;
  std::string detail;  // why it failed, where its log is
};

// Slurm array tasks still queued, by array index, as squeue reports them for the jobs recorded
// in the sweep folder. Empty when no job is recorded or squeue is unavailable.
std::map<std::size_t, point_state> queued_slurm_tasks(const sweep_plan& plan);

// The state of each point from its folder; points in `queued` are pending/running unless they
// already wrote their exit code.
std::vector<point_status> sweep_status(const sweep_plan& plan, const std::map<std::size_t, point_state>& queued = {});

// "4 points: 3 done, 0 running, 0 pending, 1 failed, 0 not run"
std::string status_counts(const std::vector<point_status>& statuses);
// One line per point: id, state, overrides, and the detail of failed points.
std::string status_table(const sweep_plan& plan, const std::vector<point_status>& statuses);

// Points a (re-)run should start: not done and not queued; with retry_failed, only failed ones.
std::vector<std::size_t> points_to_run(const std::vector<point_status>& statuses, bool retry_failed);

// How a point's `qexp run` is started: the binary, and arguments placed before `run` (global
// options such as --plugin-path).
struct point_command {
  std::filesystem::path qexp;
  std::vector<std::string> global_args;
};

// Clears the point's folder and writes point.yaml (its resolved config) and the sweep manifest.
void prepare_points(const sweep_plan& plan, const std::vector<std::size_t>& selected);

// Runs the selected points with at most `jobs` at once; each writes run.log and exit_code in its
// folder. A failed point is reported and the others go on. Returns the number of failed points.
std::size_t run_local(const sweep_plan& plan, const std::vector<std::size_t>& selected, const point_command& command,
                      unsigned jobs, std::ostream& progress);

// The sbatch script of a job array over the selected points (array index = point index).
std::string slurm_script(const sweep_plan& plan, const std::vector<std::size_t>& selected,
                         const point_command& command);
// Writes the script into the sweep folder, submits it with `sbatch --parsable` and records the job
// id in <dir>/slurm_jobs. Returns the job id; throws qexp::error with sbatch's message on failure.
std::string submit_slurm(const sweep_plan& plan, const std::vector<std::size_t>& selected,
                         const point_command& command);
// Follows a job with squeue until none of its tasks is queued, printing a line whenever the
// counts change. Throws qexp::error when squeue keeps failing or `timeout` passes.
void wait_for_slurm_job(const sweep_plan& plan, const std::string& job_id, std::ostream& progress,
                        std::chrono::seconds poll = std::chrono::seconds(2),
                        std::chrono::seconds timeout = std::chrono::hours(24 * 7));

}  // namespace qexp

// Sweep executors: a local process pool, and a Slurm job array followed with squeue.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "qexp/errors.h"
#include "results_report.h"
#include "sweep.h"

extern char** environ;

namespace qexp {
namespace fs = std::filesystem;

namespace {

void write_exit_code(const fs::path& dir, int code) { write_text_atomically(dir / "exit_code", std::to_string(code) + "\n"); }

std::vector<std::string> point_argv(const sweep_plan& plan, const sweep_point& point, const point_command& command) {
  std::vector<std::string> argv = {command.qexp.string()};
  argv.insert(argv.end(), command.global_args.begin(), command.global_args.end());
  const fs::path dir = plan.dir / point.id;
  argv.insert(argv.end(), {"run", (dir / "point.yaml").string(), "--results-dir", dir.string()});
  return argv;
}

// Starts `qexp run` for one point with stdout and stderr going to its run.log.
pid_t spawn_point(const sweep_plan& plan, const sweep_point& point, const point_command& command) {
  const auto args = point_argv(plan, point, command);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string log = (plan.dir / point.id / "run.log").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -rc;
  return pid;
}

std::string seconds_text(std::chrono::steady_clock::duration d) {
  return detail::fixed(std::chrono::duration<double>(d).count(), 1) + " s";
}

// "0-3", "0,2-3": the --array list of these point indices.
std::string index_ranges(std::vector<std::size_t> indices) {
  std::sort(indices.begin(), indices.end());
  std::string out;
  for (std::size_t i = 0; i < indices.size();) {
    std::size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(indices[i]);
    if (j > i) out += "-" + std::to_string(indices[j]);
    i = j + 1;
  }
  return out;
}

// Array task indices in a squeue job id: "123_4" -> {4}; "123_[0-3,7%2]" -> {0,1,2,3,7}.
std::vector<std::size_t> task_indices(const std::string& job_field) {
  std::vector<std::size_t> out;
  const auto underscore = job_field.find('_');
  if (underscore == std::string::npos) return out;
  std::string tasks = job_field.substr(underscore + 1);
  if (!tasks.empty() && tasks.front() == '[') tasks = tasks.substr(1, tasks.find(']') - 1);
  if (auto pct = tasks.find('%'); pct != std::string::npos) tasks.resize(pct);
  std::stringstream parts(tasks);
  std::string part;
  while (std::getline(parts, part, ',')) {
    try {
      const auto dash = part.find('-');
      const std::size_t first = std::stoul(part.substr(0, dash));
      const std::size_t last = dash == std::string::npos ? first : std::stoul(part.substr(dash + 1));
      for (std::size_t k = first; k <= last && k < first + 100000; ++k) out.push_back(k);
    } catch (const std::exception&) {
      // Not an index (a job that is not an array): nothing to map.
    }
  }
  return out;
}

point_state state_from_squeue(const std::string& state) {
  if (state == "RUNNING" || state == "COMPLETING" || state == "CONFIGURING" || state == "STAGE_OUT" ||
      state == "SIGNALING" || state == "RESIZING")
    return point_state::running;
  return point_state::pending;  // PENDING, REQUEUED, SUSPENDED, ...: not started (again) yet
}

struct squeue_answer {
  bool ok = false;         // squeue answered for this job (or said it is gone)
  std::string error;
  std::map<std::size_t, point_state> tasks;
};

squeue_answer query_squeue(const std::string& job_id) {
  squeue_answer answer;
  const auto r = run_shell("squeue -h -r -j " + shell_quote(job_id) + " -o '%i %T' 2>&1");
  if (r.exit_code != 0) {
    // A job that left the controller's memory is "invalid": it is no longer queued.
    if (r.output.find("Invalid job id") != std::string::npos) answer.ok = true;
    else answer.error = r.output.empty() ? "squeue exited " + std::to_string(r.exit_code) : r.output;
    return answer;
  }
  answer.ok = true;
  std::istringstream lines(r.output);
  std::string job, state;
  while (lines >> job >> state)
    for (std::size_t index : task_indices(job)) answer.tasks[index] = state_from_squeue(state);
  return answer;
}

std::vector<std::string> recorded_jobs(const sweep_plan& plan) {
  std::vector<std::string> jobs;
  std::ifstream in(plan.dir / "slurm_jobs");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) jobs.push_back(line.substr(0, line.find_first_of(" \t")));
  return jobs;
}

}  // namespace

std::size_t run_local(const sweep_plan& plan, const std::vector<std::size_t>& selected, const point_command& command,
                      unsigned jobs, std::ostream& progress) {
  if (jobs == 0) jobs = 1;
  struct running_point {
    std::size_t index;
    std::chrono::steady_clock::time_point started;
  };
  std::map<pid_t, running_point> running;
  std::size_t next = 0, finished = 0, failures = 0;
  const std::size_t total = selected.size();
  auto report = [&](const sweep_point& point, int code, std::chrono::steady_clock::duration took) {
    ++finished;
    progress << "[" << finished << "/" << total << "] " << point.id << " ";
    if (code == 0) {
      progress << "done in " << seconds_text(took) << "\n";
    } else {
      ++failures;
      sweep_plan just_this = plan;
      just_this.points = {point};
      const auto status = sweep_status(just_this).front();
      progress << "FAILED after " << seconds_text(took) << ": " << status.detail << "\n";
    }
    progress.flush();
  };
  while (next < total || !running.empty()) {
    while (running.size() < jobs && next < total) {
      const sweep_point& point = plan.points.at(selected[next++]);
      const pid_t pid = spawn_point(plan, point, command);
      if (pid <= 0) {
        // Recorded like any failed point, so that --retry-failed picks it up.
        const fs::path dir = plan.dir / point.id;
        write_text_atomically(dir / "run.log", "cannot start " + command.qexp.string() + ": " + std::strerror(-pid) + "\n");
        write_exit_code(dir, 127);
        report(point, 127, {});
        continue;
      }
      running[pid] = {point.index, std::chrono::steady_clock::now()};
    }
    if (running.empty()) continue;
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw error(std::string("sweep: waiting for point processes failed: ") + std::strerror(errno));
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;  // not one of ours
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    const sweep_point& point = plan.points.at(it->second.index);
    write_exit_code(plan.dir / point.id, code);
    report(point, code, std::chrono::steady_clock::now() - it->second.started);
    running.erase(it);
  }
  return failures;
}

std::map<std::size_t, point_state> queued_slurm_tasks(const sweep_plan& plan) {
  std::map<std::size_t, point_state> queued;
  for (const auto& job : recorded_jobs(plan)) {
    const auto answer = query_squeue(job);
    for (const auto& [index, state] : answer.tasks) queued[index] = state;
  }
  return queued;
}

std::string slurm_script(const sweep_plan& plan, const std::vector<std::size_t>& selected,
                         const point_command& command) {
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# Written by `qexp sweep " << plan.config_file.string() << " --executor slurm`: one array task per sweep\n"
    << "# point (array index = point index), each a `qexp run` of the point's resolved config.\n"
    << "#SBATCH --job-name=" << shell_quote("qexp-" + plan.name) << "\n"
    << "#SBATCH --array=" << index_ranges(selected) << (plan.slurm.max_parallel > 0 ? "%" + std::to_string(plan.slurm.max_parallel) : "")
    << "\n"
    << "#SBATCH --output=" << (plan.dir / "slurm-%A_%a.out").string() << "\n"
    << "#SBATCH --time=" << plan.slurm.time << "\n"
    << "#SBATCH --cpus-per-task=" << plan.slurm.cpus_per_task << "\n";
  if (!plan.slurm.partition.empty()) s << "#SBATCH --partition=" << plan.slurm.partition << "\n";
  if (!plan.slurm.mem.empty()) s << "#SBATCH --mem=" << plan.slurm.mem << "\n";
  for (const auto& line : plan.slurm.extra) s << (line.rfind("#SBATCH", 0) == 0 ? line : "#SBATCH " + line) << "\n";
  s << "set -u\n";
  for (const auto& line : plan.slurm.setup) s << line << "\n";
  s << "ids=(";
  for (std::size_t i = 0; i < plan.points.size(); ++i) s << (i ? " " : "") << plan.points[i].id;
  s << ")\n"
    << "point_dir=" << shell_quote(plan.dir.string()) << "/${ids[$SLURM_ARRAY_TASK_ID]}\n"
    << "echo \"qexp sweep " << plan.name << ": point ${ids[$SLURM_ARRAY_TASK_ID]} on $(hostname)\"\n";
  const fs::path qexp = plan.slurm.qexp.empty() ? command.qexp : fs::path(plan.slurm.qexp);
  s << shell_quote(qexp.string());
  for (const auto& a : command.global_args) s << " " << shell_quote(a);
  s << " run \"$point_dir/point.yaml\" --results-dir \"$point_dir\" > \"$point_dir/run.log\" 2>&1\n"
    << "rc=$?\n"
    << "# Written last and renamed into place: its presence means the point finished.\n"
    << "echo $rc > \"$point_dir/exit_code.tmp\" && mv \"$point_dir/exit_code.tmp\" \"$point_dir/exit_code\"\n"
    << "exit $rc\n";
  return s.str();
}

std::string submit_slurm(const sweep_plan& plan, const std::vector<std::size_t>& selected,
                         const point_command& command) {
  const fs::path script = plan.dir / "sweep.sbatch";
  write_text_atomically(script, slurm_script(plan, selected, command));
  const auto r = run_shell("sbatch --parsable " + shell_quote(script.string()) + " 2>&1");
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) out.pop_back();
  // --parsable prints "jobid" or "jobid;cluster" on its last line (warnings may come first).
  const std::string last = out.substr(out.find_last_of('\n') == std::string::npos ? 0 : out.find_last_of('\n') + 1);
  const std::string job_id = last.substr(0, last.find(';'));
  if (r.exit_code != 0 || job_id.empty() || job_id.find_first_not_of("0123456789") != std::string::npos)
    throw error("sweep: sbatch " + script.string() + " failed (exit " + std::to_string(r.exit_code) + "): " + out);
  std::ofstream(plan.dir / "slurm_jobs", std::ios::app) << job_id << " " << index_ranges(selected) << "\n";
  return job_id;
}

void wait_for_slurm_job(const sweep_plan& plan, const std::string& job_id, std::ostream& progress,
                        std::chrono::seconds poll, std::chrono::seconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  int failures_in_a_row = 0;
  std::string last_line;
  for (;;) {
    const auto answer = query_squeue(job_id);
    if (!answer.ok) {
      // The controller may be briefly busy; a long run of failures means it is gone.
      if (++failures_in_a_row >= 15)
        throw error("sweep: squeue keeps failing for job " + job_id + ": " + answer.error);
    } else {
      failures_in_a_row = 0;
      const auto statuses = sweep_status(plan, answer.tasks);
      const std::string line = "job " + job_id + ": " + status_counts(statuses);
      if (line != last_line) {
        progress << line << "\n";
        progress.flush();
        last_line = line;
      }
      if (answer.tasks.empty()) return;
    }
    if (std::chrono::steady_clock::now() - start > timeout)
      throw error("sweep: job " + job_id + " still queued after " + std::to_string(timeout.count()) + " s");
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace qexp

// Sweeps: expansion (grid, zip), point ids, config errors naming the sweep key, the Slurm script,
// point states from folders, and the local executor end to end with a point made to fail,
// skip-done re-runs, --retry-failed and `qexp collect`.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "experiment.h"
#include "qexp/errors.h"
#include "sweep.h"
#include "test_support.h"

namespace fs = std::filesystem;
using qexp::test::run_qexp;
using qexp::test::temp_dir;
using qexp::test::write_file;
using qexp::test::read_file;

namespace {

// A ptq experiment on the tiny golden model that runs in a few seconds.
std::string base_config(const std::string& name) {
  const std::string model = (qexp::test::shared_dir() / "golden/distilbert-tiny-random").string();
  return "name: " + name + "\n" +
         "model: { path: " + model + " }\n"
         "data: { path: sst2/dev.tsv, max_length: 64, limit: 8 }\n"
         "quantizers:\n"
         "  - { plugin: dynamic-int8, options: { granularity: per_tensor } }\n"
         "measure:\n"
         "  latency: { warmup: 1, iterations: 2, batch_sizes: [1], threads: 1, dataset_sentences: 2 }\n"
         "  accuracy: {}\n"
         "  size: {}\n"
         "  layer_error: { batches: 1, batch_size: 4 }\n";
}

fs::path write_sweep(const temp_dir& dir, const std::string& name, const std::string& sweep_section) {
  const fs::path file = dir.path() / (name + ".yaml");
  write_file(file, base_config(name) + sweep_section);
  return file;
}

std::string expect_config_error(const fs::path& file) {
  try {
    qexp::expand_sweep(file, {});
  } catch (const qexp::config_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a config_error for " << file;
  return "";
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

}  // namespace

TEST(sweep, grid_is_a_cartesian_product_with_the_last_key_moving_fastest) {
  temp_dir dir;
  const auto file = write_sweep(dir, "g",
                                "sweep:\n  grid:\n"
                                "    quantizers.0.options.granularity: [per_tensor, per_channel]\n"
                                "    measure.latency.threads: [1, 2, 3]\n");
  const auto plan = qexp::expand_sweep(file, {}, dir.path() / "runs");
  ASSERT_EQ(plan.points.size(), 6u);
  EXPECT_EQ(plan.name, "g");
  EXPECT_EQ(plan.dir, fs::absolute(dir.path() / "runs/g").lexically_normal());
  EXPECT_EQ(plan.points[0].overrides,
            (std::vector<std::string>{"quantizers.0.options.granularity=per_tensor", "measure.latency.threads=1"}));
  EXPECT_EQ(plan.points[1].overrides[1], "measure.latency.threads=2");
  EXPECT_EQ(plan.points[3].overrides[0], "quantizers.0.options.granularity=per_channel");
  EXPECT_EQ(plan.points[5].overrides[1], "measure.latency.threads=3");
  // The overrides reached the resolved config.
  EXPECT_EQ(plan.points[5].resolved["measure"]["latency"]["threads"][0].as<int>(), 3);
  EXPECT_EQ(plan.points[5].resolved["quantizers"][0]["options"]["granularity"].as<std::string>(), "per_channel");
  EXPECT_FALSE(plan.points[0].resolved["sweep"]);

  std::set<std::string> ids;
  for (const auto& p : plan.points) {
    EXPECT_EQ(p.id.size(), 10u);
    EXPECT_EQ(p.id.find_first_not_of("0123456789abcdef"), std::string::npos) << p.id;
    ids.insert(p.id);
  }
  EXPECT_EQ(ids.size(), 6u);
}

TEST(sweep, ids_are_stable_and_hash_the_resolved_config_not_the_way_it_was_written) {
  temp_dir dir;
  const auto a = write_sweep(dir, "s", "sweep:\n  grid:\n    measure.latency.threads: [1, 2]\n");
  const auto first = qexp::expand_sweep(a, {}, dir.path());
  const auto again = qexp::expand_sweep(a, {}, dir.path());
  EXPECT_EQ(first.points[0].id, again.points[0].id);
  EXPECT_EQ(first.points[1].id, again.points[1].id);
  // The same point written through zip instead of grid gets the same id.
  const fs::path b = dir.path() / "s_zip.yaml";
  write_file(b, base_config("s") + "sweep:\n  zip:\n    measure.latency.threads: [2, 1]\n");
  const auto zipped = qexp::expand_sweep(b, {});
  EXPECT_EQ(zipped.points[0].id, first.points[1].id);
  // Running point.yaml resolves to the same config, hence the same id: what `qexp run` sees.
  qexp::prepare_points(first, {0, 1});
  for (const auto& p : first.points) {
    const auto loaded = qexp::load_experiment(first.dir / p.id / "point.yaml", {});
    EXPECT_EQ(qexp::point_id(loaded.resolved), p.id);
  }
  // A different base (through --set) changes every id.
  const auto other = qexp::expand_sweep(a, {"data.limit=12"});
  EXPECT_NE(other.points[0].id, first.points[0].id);
}

TEST(sweep, zip_moves_in_lock_step_and_combines_with_grid) {
  temp_dir dir;
  const auto file = write_sweep(dir, "z",
                                "sweep:\n  name: zz\n  grid:\n    measure.latency.threads: [1, 2]\n"
                                "  zip:\n    quantizers.0.options.granularity: [per_tensor, per_channel, per_channel]\n"
                                "    data.limit: [8, 8, 12]\n");
  const auto plan = qexp::expand_sweep(file, {}, dir.path());
  EXPECT_EQ(plan.name, "zz");
  ASSERT_EQ(plan.points.size(), 6u);
  EXPECT_EQ(plan.axis_keys, (std::vector<std::string>{"measure.latency.threads", "quantizers.0.options.granularity",
                                                      "data.limit"}));
  EXPECT_EQ(plan.points[2].overrides, (std::vector<std::string>{"measure.latency.threads=1",
                                                                "quantizers.0.options.granularity=per_channel",
                                                                "data.limit=12"}));
  EXPECT_EQ(plan.points[3].overrides[0], "measure.latency.threads=2");
  EXPECT_EQ(plan.points[3].overrides[2], "data.limit=8");
}

TEST(sweep, zip_lists_of_different_lengths_are_a_config_error_naming_the_key) {
  temp_dir dir;
  const auto file = write_sweep(dir, "z",
                                "sweep:\n  zip:\n    measure.latency.threads: [1, 2]\n"
                                "    data.limit: [8, 8, 12]\n");
  const auto message = expect_config_error(file);
  EXPECT_NE(message.find("sweep.zip.data.limit has 3 values"), std::string::npos) << message;
  EXPECT_NE(message.find("measure.latency.threads has 2"), std::string::npos) << message;
  EXPECT_NE(message.find("z.yaml:"), std::string::npos) << message;
}

TEST(sweep, a_point_the_schema_rejects_is_a_config_error_naming_the_sweep_key) {
  temp_dir dir;
  const auto file = write_sweep(dir, "bad", "sweep:\n  grid:\n    measure.latency.threads: [1, 0]\n");
  const auto message = expect_config_error(file);
  EXPECT_NE(message.find("sweep point 2 of 2"), std::string::npos) << message;
  EXPECT_NE(message.find("measure.latency.threads=0"), std::string::npos) << message;

  const auto unknown = write_sweep(dir, "unk", "sweep:\n  grid:\n    measure.latency.thread: [1, 2]\n");
  const auto m2 = expect_config_error(unknown);
  EXPECT_NE(m2.find("sweep point 1 of 2 (measure.latency.thread=1)"), std::string::npos) << m2;
}

TEST(sweep, malformed_sweep_sections_are_config_errors) {
  temp_dir dir;
  EXPECT_NE(expect_config_error(write_sweep(dir, "a", "sweep:\n  gird:\n    data.limit: [1]\n")).find("did you mean"),
            std::string::npos);
  EXPECT_NE(expect_config_error(write_sweep(dir, "b", "sweep:\n  grid:\n    data.limit: 8\n")).find("sweep.grid.data.limit"),
            std::string::npos);
  EXPECT_NE(expect_config_error(write_sweep(dir, "c", "sweep:\n  grid: {}\n")).find("varies nothing"), std::string::npos);
  EXPECT_NE(expect_config_error(write_sweep(dir, "d", "sweep:\n  grid:\n    data.limit: [8, 8]\n")).find("same config"),
            std::string::npos);
  // The section's keys go through the schema, with its messages: file:line:column and a suggestion.
  const std::string unknown =
      expect_config_error(write_sweep(dir, "e", "sweep:\n  grid:\n    data.limit: [8]\n  slurm: { cpus: 2 }\n"));
  EXPECT_NE(unknown.find("unknown key 'cpus' at "), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("e.yaml:"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("(known: partition, time, cpus_per_task, mem, extra, setup, qexp, max_parallel)"),
            std::string::npos)
      << unknown;
  const std::string negative = expect_config_error(
      write_sweep(dir, "f", "sweep:\n  grid:\n    data.limit: [8]\n  slurm: { max_parallel: -1 }\n"));
  EXPECT_NE(negative.find("expected an integer >= 0"), std::string::npos) << negative;
  EXPECT_NE(negative.find("(key 'sweep.slurm.max_parallel')"), std::string::npos) << negative;
  EXPECT_NE(expect_config_error(write_sweep(dir, "g", "sweep:\n  name: ../x\n  grid:\n    data.limit: [8]\n"))
                .find("(key 'sweep.name')"),
            std::string::npos);
  const fs::path plain = dir.path() / "plain.yaml";
  write_file(plain, base_config("plain"));
  EXPECT_NE(expect_config_error(plain).find("no top-level 'sweep:'"), std::string::npos);
}

TEST(sweep, the_slurm_script_is_one_job_array_with_the_configured_header) {
  temp_dir dir;
  const auto file = write_sweep(dir, "sl",
                                "sweep:\n  grid:\n    data.limit: [4, 8, 12, 16]\n"
                                "  slurm:\n    partition: gpu\n    time: \"00:05:00\"\n    cpus_per_task: 4\n"
                                "    mem: 3G\n    extra: [\"--qos=short\", \"#SBATCH --exclusive\"]\n"
                                "    setup: [\"module load qexp\"]\n    max_parallel: 2\n");
  const auto plan = qexp::expand_sweep(file, {}, dir.path());
  qexp::point_command command{"/opt/qexp/bin/qexp", {"--plugin-path", "/opt/plugins"}};
  const auto script = qexp::slurm_script(plan, {0, 2, 3}, command);
  const std::vector<std::string> expected = {
      "#SBATCH --array=0,2-3%2\n", "#SBATCH --partition=gpu\n", "#SBATCH --time=00:05:00\n",
      "#SBATCH --cpus-per-task=4\n", "#SBATCH --mem=3G\n", "#SBATCH --qos=short\n", "#SBATCH --exclusive\n",
      "module load qexp\n", "#SBATCH --output=" + (plan.dir / "slurm-%A_%a.out").string() + "\n"};
  for (const auto& line : expected)
    EXPECT_NE(script.find(line), std::string::npos) << line << " missing from\n" << script;
  EXPECT_NE(script.find("/opt/qexp/bin/qexp --plugin-path /opt/plugins run \"$point_dir/point.yaml\""),
            std::string::npos)
      << script;
  EXPECT_NE(script.find("ids=(" + plan.points[0].id + " " + plan.points[1].id), std::string::npos) << script;
  // Every #SBATCH line comes before the first command, or sbatch ignores it.
  EXPECT_LT(script.rfind("#SBATCH"), script.find("set -u"));
}

TEST(sweep, point_states_come_from_the_point_folders) {
  temp_dir dir;
  const auto file = write_sweep(dir, "st", "sweep:\n  grid:\n    data.limit: [4, 8, 12, 16, 20]\n");
  const auto plan = qexp::expand_sweep(file, {}, dir.path());
  qexp::prepare_points(plan, {0, 1, 2, 3});
  write_file(plan.dir / plan.points[0].id / "exit_code", "0\n");
  write_file(plan.dir / plan.points[1].id / "exit_code", "5\n");
  write_file(plan.dir / plan.points[1].id / "run.log", "error: plugin 'x' not found\n");
  write_file(plan.dir / plan.points[2].id / "run.log", "started\n");  // no exit code: interrupted
  const auto s = qexp::sweep_status(plan, {{3, qexp::point_state::running}});
  EXPECT_EQ(s[0].state, qexp::point_state::done);
  EXPECT_EQ(s[1].state, qexp::point_state::failed);
  EXPECT_NE(s[1].detail.find("exit 5 (plugin error): error: plugin 'x' not found"), std::string::npos) << s[1].detail;
  EXPECT_EQ(s[2].state, qexp::point_state::failed);
  EXPECT_EQ(s[3].state, qexp::point_state::running);
  EXPECT_EQ(s[4].state, qexp::point_state::not_run);
  EXPECT_EQ(qexp::status_counts(s), "5 points: 1 done, 1 running, 0 pending, 2 failed, 1 not run");
  EXPECT_EQ(qexp::points_to_run(s, false), (std::vector<std::size_t>{1, 2, 4}));
  EXPECT_EQ(qexp::points_to_run(s, true), (std::vector<std::size_t>{1, 2}));
}

// The whole local path through the CLI: four points, one of them made to fail (a plugin that does
// not exist passes the schema and fails in its own `qexp run` with exit 5).
TEST(sweep, local_executor_records_a_failed_point_and_the_others_go_on) {
  temp_dir dir;
  const auto file = write_sweep(dir, "loc",
                                "sweep:\n  zip:\n"
                                "    quantizers.0.plugin: [dynamic-int8, dynamic-int8, no-such-plugin, dynamic-int8]\n"
                                "    quantizers.0.options.granularity: [per_tensor, per_channel, per_tensor, per_channel]\n"
                                "    measure.latency.threads: [1, 1, 1, 2]\n");
  const fs::path runs = dir.path() / "runs";
  const std::string sweep = "sweep " + q(file) + " --out " + q(runs);
  const auto plan = qexp::expand_sweep(file, {}, runs);
  ASSERT_EQ(plan.points.size(), 4u);

  const auto listed = run_qexp(sweep + " --list");
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  for (const auto& p : plan.points) EXPECT_NE(listed.output.find(p.id), std::string::npos) << listed.output;
  EXPECT_FALSE(fs::exists(plan.dir)) << "--list must not run anything";

  const auto first = run_qexp(sweep + " --executor local --jobs 2");
  EXPECT_EQ(first.exit_code, 1) << first.output;
  EXPECT_NE(first.output.find("running 4 of 4 points"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find(plan.points[2].id + " FAILED"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("4 points: 3 done, 0 running, 0 pending, 1 failed"), std::string::npos) << first.output;
  for (int i : {0, 1, 3}) {
    const fs::path point_dir = plan.dir / plan.points[i].id;
    EXPECT_EQ(read_file(point_dir / "exit_code"), "0\n");
    EXPECT_NE(read_file(point_dir / "results.json").find("\"complete\": true"), std::string::npos);
  }
  const fs::path failed_dir = plan.dir / plan.points[2].id;
  EXPECT_EQ(read_file(failed_dir / "exit_code"), "5\n");
  EXPECT_NE(read_file(failed_dir / "run.log").find("no-such-plugin"), std::string::npos);

  // Re-running skips the done points: their results stay untouched.
  const auto done_results = plan.dir / plan.points[0].id / "results.json";
  const auto stamp = fs::last_write_time(done_results);
  const auto again = run_qexp(sweep + " --retry-failed");
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("running 1 of 4 points (3 skipped"), std::string::npos) << again.output;
  EXPECT_EQ(fs::last_write_time(done_results), stamp);

  const auto status = run_qexp(sweep + " --status");
  EXPECT_EQ(status.exit_code, 1) << status.output;
  EXPECT_NE(status.output.find("4 points: 3 done, 0 running, 0 pending, 1 failed, 0 not run"), std::string::npos)
      << status.output;
  EXPECT_NE(status.output.find("exit 5 (plugin error)"), std::string::npos) << status.output;

  const auto collected = run_qexp("collect " + q(plan.dir));
  EXPECT_EQ(collected.exit_code, 1) << collected.output;  // one point has no results
  EXPECT_NE(collected.output.find("3 results files merged"), std::string::npos) << collected.output;
  for (const char* name : {"results.csv", "summary.md", "report.html", "points.csv"})
    EXPECT_GT(fs::file_size(plan.dir / name), 0u) << name;
  const std::string csv = read_file(plan.dir / "results.csv");
  for (int i : {0, 1, 3}) EXPECT_NE(csv.find(plan.points[i].id), std::string::npos) << csv;
  const std::string points = read_file(plan.dir / "points.csv");
  EXPECT_NE(points.find("point_id,state,exit_code,quantizers.0.plugin,quantizers.0.options.granularity,"
                        "measure.latency.threads\n"),
            std::string::npos)
      << points;
  EXPECT_NE(points.find(plan.points[2].id + ",failed,5,no-such-plugin,per_tensor,1\n"), std::string::npos) << points;
  EXPECT_NE(points.find(plan.points[3].id + ",done,0,dynamic-int8,per_channel,2\n"), std::string::npos) << points;
}

TEST(sweep, a_fully_done_sweep_has_nothing_to_run) {
  temp_dir dir;
  const auto file = write_sweep(dir, "one", "sweep:\n  grid:\n    quantizers.0.options.granularity: [per_channel]\n");
  const fs::path runs = dir.path() / "runs";
  const std::string sweep = "sweep " + q(file) + " --out " + q(runs);
  const auto first = run_qexp(sweep);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto again = run_qexp(sweep);
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("nothing to run (1 point: 1 done"), std::string::npos) << again.output;
  const auto collected = run_qexp("collect " + q(runs / "one"));
  EXPECT_EQ(collected.exit_code, 0) << collected.output;
}

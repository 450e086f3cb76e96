// Sweep expansion, point ids, the sweep manifest and point states. Executors: sweep_executors.cpp.
#include "sweep.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

#include "experiment.h"
#include "qexp/config_schema.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/settings_section.h"
#include "qexp/text.h"
#include "results.h"
#include "results_report.h"

namespace qexp {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string where(const fs::path& file, const YAML::Node& node) {
  const auto mark = node.Mark();
  if (mark.line < 0) return file.string();
  return file.string() + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

// A value as `--set` takes it: flow-style YAML on one line.
std::string flow_yaml(const YAML::Node& value) {
  YAML::Emitter out;
  out.SetMapFormat(YAML::Flow);
  out.SetSeqFormat(YAML::Flow);
  out << value;
  return out.c_str();
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// One axis of the expansion: a grid key alone, or the whole zip group moving in lock-step.
struct axis {
  std::vector<std::string> keys;
  std::vector<std::vector<std::string>> rows;  // rows[value index][key index]: flow YAML
};

std::vector<std::pair<std::string, YAML::Node>> axis_lists(const fs::path& file, const YAML::Node& section,
                                                           const std::string& section_name) {
  std::vector<std::pair<std::string, YAML::Node>> out;
  if (!section || section.IsNull()) return out;
  if (!section.IsMap())
    throw config_error(where(file, section) + ": sweep." + section_name +
                       " must map config keys to lists of values, e.g. measure.latency.threads: [1, 2]");
  for (const auto& entry : section) {
    const std::string key = entry.first.as<std::string>();
    const YAML::Node values = entry.second;
    if (!values.IsSequence() || values.size() == 0)
      throw config_error(where(file, values) + ": sweep." + section_name + "." + key +
                         " must be a non-empty list of values, found " +
                         (values.IsSequence() ? "an empty list" : values.IsMap() ? "a map" : "'" + flow_yaml(values) + "'"));
    if (key == "sweep" || key.rfind("sweep.", 0) == 0)
      throw config_error(where(file, entry.first) + ": sweep." + section_name + "." + key +
                         ": a sweep cannot vary its own sweep section");
    out.emplace_back(key, values);
  }
  return out;
}

// sweep.slurm, declared once: its keys, checks, help and defaults (slurm_settings' own).
const settings_section<slurm_settings>& slurm_section() {
  using s = slurm_settings;
  static const auto section =
      settings_section<s>()
          .field("partition", &s::partition, schema_node::of(value_kind::string, "the partition; empty: the cluster's default"))
          .field("time", &s::time, schema_node::of(value_kind::string, "time limit per point (array task)"))
          .field("cpus_per_task", &s::cpus_per_task, schema_node::of(value_kind::integer, "cores per point").at_least(1))
          .field("mem", &s::mem, schema_node::of(value_kind::string, "memory per point, e.g. 4G; empty: the cluster's default"))
          .field("extra", &s::extra,
                 schema_node::list_of(schema_node::of(value_kind::string),
                                      "more sbatch options: \"--qos=short\" or \"#SBATCH --qos=short\""))
          .field("setup", &s::setup,
                 schema_node::list_of(schema_node::of(value_kind::string),
                                      "shell lines run before qexp in each task (module load ...)"))
          .field("qexp", &s::qexp,
                 schema_node::of(value_kind::string, "the qexp binary on the compute nodes; empty: the one that submits"))
          .field("max_parallel", &s::max_parallel,
                 schema_node::of(value_kind::integer, "at most N points at once (--array=...%N); 0: no limit").at_least(0));
  return section;
}

}  // namespace

// The axes are maps of config keys to lists of values (checked by axis_lists, and each point
// against its kind's own schema), the rest plain keys.
schema_node sweep_schema() {
  const schema_node sweep = schema_node::map_of(
      {
          {"name", schema_node::of(value_kind::string,
                                   "the sweep's folder under the output root; default: the config's name")
                       .as_folder_name()},
          {"grid", schema_node::of(value_kind::free_map, "config key: list of values; every combination is a point")},
          {"zip", schema_node::of(value_kind::free_map, "config key: list of values, all moving in lock-step")},
          {"slurm", slurm_section().schema("the job array's #SBATCH header")},
      },
      "what one config varies and how its points run (`qexp sweep`)");
  return schema_node::map_of({{"sweep", sweep}});
}

namespace {

// Resolves one point exactly as `qexp run FILE --set ...` would, with the sweep section removed.
YAML::Node resolve_point(const fs::path& file, const std::vector<std::string>& overrides) {
  config_source source;
  source.file = file;
  source.data_search_path = default_data_search_path(file);
  // Read afresh for each point: apply_overrides edits the document in place, and the marks of a
  // freshly read document let errors point at lines of the file.
  YAML::Node document = load_yaml_file(file);
  document.remove("sweep");
  apply_overrides(document, overrides, source);
  source.document = document;
  std::string kind = "ptq";
  if (document.IsMap() && document["kind"] && document["kind"].IsScalar()) kind = document["kind"].as<std::string>();
  return resolve_config(document, find_experiment_kind(kind).schema(), source);
}

}  // namespace

std::string point_id(const YAML::Node& resolved) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64: tiny, stable across platforms and runs
  for (unsigned char c : to_yaml_text(resolved)) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  std::ostringstream hex;
  hex << std::hex << std::setw(16) << std::setfill('0') << hash;
  return hex.str().substr(0, 10);
}

bool is_sweep_file(const fs::path& config_file) {
  const YAML::Node document = load_yaml_file(config_file);
  return document.IsMap() && document["sweep"];
}

sweep_plan expand_sweep(const fs::path& config_file, const std::vector<std::string>& overrides,
                        const fs::path& out_root) {
  sweep_plan plan;
  plan.config_file = config_file;
  plan.base_overrides = overrides;

  YAML::Node document = load_yaml_file(config_file);
  config_source whole_source;
  whole_source.file = config_file;
  apply_overrides(document, overrides, whole_source);  // --set sweep.name=... is allowed
  if (!document.IsMap() || !document["sweep"])
    throw config_error(config_file.string() +
                       ": no top-level 'sweep:' section (a sweep file lists the keys it varies under sweep.grid "
                       "and/or sweep.zip; for a single experiment use `qexp run`)");
  const YAML::Node sweep = document["sweep"];
  // The section's own keys go through its schema, as every config key does (the experiment's keys
  // are each point's, below).
  YAML::Node sweep_only(YAML::NodeType::Map);
  sweep_only["sweep"] = sweep;
  whole_source.document = sweep_only;
  const YAML::Node settings =
      resolve_config(sweep_only, sweep_schema(), whole_source)["sweep"];

  // Point overrides exclude --set sweep.*: those shaped the expansion, not the experiment.
  std::vector<std::string> experiment_overrides;
  for (const auto& o : overrides)
    if (o.rfind("sweep.", 0) != 0 && o.rfind("sweep=", 0) != 0) experiment_overrides.push_back(o);

  const YAML::Node base = resolve_point(config_file, experiment_overrides);
  plan.name = (settings["name"] ? settings["name"] : base["name"]).as<std::string>();
  fs::path root = out_root;
  if (root.empty()) {
    const YAML::Node dir = base["output"] && base["output"]["dir"] ? base["output"]["dir"] : YAML::Node();
    root = dir && dir.IsScalar() ? fs::path(dir.as<std::string>()) : fs::path("runs");
  }
  plan.dir = fs::absolute(root / plan.name).lexically_normal();
  plan.slurm = slurm_section().read(settings["slurm"]);

  std::vector<axis> axes;
  std::set<std::string> seen;
  for (const auto& [key, values] : axis_lists(config_file, sweep["grid"], "grid")) {
    axis a;
    a.keys = {key};
    for (const auto& v : values) a.rows.push_back({flow_yaml(v)});
    seen.insert(key);
    axes.push_back(std::move(a));
  }
  const auto zip = axis_lists(config_file, sweep["zip"], "zip");
  if (!zip.empty()) {
    axis a;
    a.rows.resize(zip.front().second.size());
    for (const auto& [key, values] : zip) {
      if (seen.count(key))
        throw config_error(where(config_file, values) + ": sweep.zip." + key + " is also a sweep.grid axis; vary it in one of them");
      if (values.size() != zip.front().second.size())
        throw config_error(where(config_file, values) + ": sweep.zip." + key + " has " + std::to_string(values.size()) +
                           " values but sweep.zip." + zip.front().first + " has " +
                           std::to_string(zip.front().second.size()) + "; zip axes move in lock-step and need equal lengths");
      a.keys.push_back(key);
      for (std::size_t i = 0; i < values.size(); ++i) a.rows[i].push_back(flow_yaml(values[i]));
    }
    axes.push_back(std::move(a));
  }
  if (axes.empty())
    throw config_error(where(config_file, sweep) + ": the sweep varies nothing; list keys under sweep.grid or sweep.zip");
  for (const auto& a : axes) plan.axis_keys.insert(plan.axis_keys.end(), a.keys.begin(), a.keys.end());

  std::size_t count = 1;
  for (const auto& a : axes) count *= a.rows.size();
  const std::size_t max_points = 100000;
  if (count > max_points)
    throw config_error(where(config_file, sweep) + ": the sweep expands to " + std::to_string(count) +
                       " points (more than " + std::to_string(max_points) + ")");

  std::map<std::string, std::size_t> index_of_id;
  for (std::size_t n = 0; n < count; ++n) {
    sweep_point point;
    point.index = n;
    // Mixed-radix digits of n, the last axis moving fastest (like nested loops in document order).
    std::vector<std::size_t> digit(axes.size());
    std::size_t rest = n;
    for (std::size_t a = axes.size(); a-- > 0;) {
      digit[a] = rest % axes[a].rows.size();
      rest /= axes[a].rows.size();
    }
    for (std::size_t a = 0; a < axes.size(); ++a)
      for (std::size_t k = 0; k < axes[a].keys.size(); ++k)
        point.overrides.push_back(axes[a].keys[k] + "=" + axes[a].rows[digit[a]][k]);

    std::vector<std::string> all = experiment_overrides;
    all.insert(all.end(), point.overrides.begin(), point.overrides.end());
    try {
      point.resolved = resolve_point(config_file, all);
    } catch (const config_error& e) {
      throw config_error(config_file.string() + ": sweep point " + std::to_string(n + 1) + " of " +
                         std::to_string(count) + " (" + join(point.overrides, ", ") + "): " + e.what());
    }
    point.id = point_id(point.resolved);
    auto [it, inserted] = index_of_id.emplace(point.id, n);
    if (!inserted)
      throw config_error(config_file.string() + ": sweep points " + std::to_string(it->second + 1) + " (" +
                         join(plan.points[it->second].overrides, ", ") + ") and " + std::to_string(n + 1) + " (" +
                         join(point.overrides, ", ") + ") resolve to the same config; remove the repeated value");
    plan.points.push_back(std::move(point));
  }
  return plan;
}

sweep_plan load_sweep_manifest(const fs::path& dir) {
  const fs::path file = dir / "sweep.json";
  json manifest;
  try {
    if (const auto problem = regular_file_problem(file); !problem.empty())
      throw input_error(file.string() + ": " + problem + " (is this a sweep folder?)");
    manifest = json::parse(read_regular_file(file, "sweep manifest"));
    sweep_plan plan;
    plan.name = manifest.at("sweep").get<std::string>();
    plan.config_file = manifest.value("config_file", "");
    plan.dir = fs::absolute(dir).lexically_normal();
    plan.axis_keys = manifest.value("axes", std::vector<std::string>{});
    plan.base_overrides = manifest.value("base_overrides", std::vector<std::string>{});
    for (const auto& p : manifest.at("points")) {
      sweep_point point;
      point.index = p.at("index").get<std::size_t>();
      point.id = p.at("id").get<std::string>();
      point.overrides = p.at("overrides").get<std::vector<std::string>>();
      plan.points.push_back(std::move(point));
    }
    return plan;
  } catch (const json::exception& e) {
    throw input_error(file.string() + ": not a sweep manifest: " + e.what());
  }
}

const char* point_state_name(point_state state) {
  switch (state) {
    case point_state::not_run: return "not run";
    case point_state::pending: return "pending";
    case point_state::running: return "running";
    case point_state::done: return "done";
    case point_state::failed: return "failed";
  }
  return "?";
}

namespace {

const char* exit_code_meaning(int code) {
  switch (code) {
    case 1: return "a quantizer or measurement failed";
    case 2: return "bad command line";
    case 3: return "config error";
    case 4: return "input error";
    case 5: return "plugin error";
    case 126:
    case 127: return "qexp could not be started";
    default: return code > 128 ? "killed by a signal" : "error";
  }
}

std::string last_line(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  if (last.size() > 240) last = last.substr(0, 237) + "...";
  return last;
}

// results.json of a run that finished with every result measured.
bool complete_and_ok(const fs::path& results_file) {
  if (!regular_file_problem(results_file).empty()) return false;
  std::ifstream in(results_file);
  if (!in) return false;
  const json parsed = json::parse(in, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return false;
  const auto doc = parsed.get<results::document>();
  return doc.experiment.complete &&
         std::all_of(doc.results.begin(), doc.results.end(), [](const auto& r) { return r.ok(); });
}

}  // namespace

std::vector<point_status> sweep_status(const sweep_plan& plan, const std::map<std::size_t, point_state>& queued) {
  std::vector<point_status> out;
  for (const auto& point : plan.points) {
    const fs::path dir = plan.dir / point.id;
    point_status s;
    const fs::path exit_file = dir / "exit_code";
    std::error_code ec;
    if (fs::exists(exit_file, ec)) {
      int code = -1;
      std::istringstream(read_text(exit_file)) >> code;
      s.exit_code = code;
      if (code == 0) {
        s.state = point_state::done;
      } else {
        s.state = point_state::failed;
        s.detail = "exit " + std::to_string(code) + " (" + exit_code_meaning(code) + ")";
        const std::string line = last_line(dir / "run.log");
        if (!line.empty()) s.detail += ": " + line;
        s.detail += "; log: " + (dir / "run.log").string();
      }
    } else if (auto q = queued.find(point.index); q != queued.end()) {
      s.state = q->second;
    } else if (complete_and_ok(dir / "results.json")) {
      s.state = point_state::done;  // run by hand with --results-dir: no exit code recorded
    } else if (fs::exists(dir / "run.log", ec)) {
      s.state = point_state::failed;
      s.detail = "stopped without recording an exit code (interrupted, or killed by the scheduler: see " +
                 (dir / "run.log").string() + " and " + (plan.dir / "slurm-*.out").string() + ")";
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string status_counts(const std::vector<point_status>& statuses) {
  std::map<point_state, std::size_t> n;
  for (const auto& s : statuses) ++n[s.state];
  std::ostringstream out;
  out << statuses.size() << (statuses.size() == 1 ? " point: " : " points: ") << n[point_state::done] << " done, "
      << n[point_state::running] << " running, " << n[point_state::pending] << " pending, " << n[point_state::failed]
      << " failed, " << n[point_state::not_run] << " not run";
  return out.str();
}

std::string status_table(const sweep_plan& plan, const std::vector<point_status>& statuses) {
  std::ostringstream out;
  for (std::size_t i = 0; i < plan.points.size() && i < statuses.size(); ++i) {
    out << "  " << plan.points[i].id << "  " << std::left << std::setw(8) << point_state_name(statuses[i].state)
        << "  " << join(plan.points[i].overrides, "  ") << "\n";
    if (!statuses[i].detail.empty()) out << "      " << statuses[i].detail << "\n";
  }
  return out.str();
}

std::vector<std::size_t> points_to_run(const std::vector<point_status>& statuses, bool retry_failed) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < statuses.size(); ++i) {
    const auto state = statuses[i].state;
    if (retry_failed ? state == point_state::failed : (state == point_state::failed || state == point_state::not_run))
      out.push_back(i);
  }
  return out;
}

void prepare_points(const sweep_plan& plan, const std::vector<std::size_t>& selected) {
  fs::create_directories(plan.dir);
  json points = json::array();
  for (const auto& p : plan.points)
    points.push_back({{"index", p.index}, {"id", p.id}, {"overrides", p.overrides}});
  const json manifest = {{"sweep", plan.name},
                         {"config_file", fs::absolute(plan.config_file).lexically_normal().string()},
                         {"base_overrides", plan.base_overrides},
                         {"axes", plan.axis_keys},
                         {"points", points}};
  write_text_atomically(plan.dir / "sweep.json", manifest.dump(2) + "\n");
  for (std::size_t i : selected) {
    const auto& point = plan.points.at(i);
    const fs::path dir = plan.dir / point.id;
    // A re-run starts clean: a stale exit_code or results.json would be read as this run's.
    fs::remove_all(dir);
    fs::create_directories(dir);
    // The resolved config has absolute paths and no sweep section: `qexp run point.yaml` runs the
    // point anywhere the same files are visible, which is what a Slurm task needs.
    write_text_atomically(dir / "point.yaml", "# sweep " + plan.name + ", point " + point.id + ": " +
                                                 join(point.overrides, ", ") + "\n" + to_yaml_text(point.resolved));
  }
}

}  // namespace qexp

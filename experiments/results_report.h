// Turns results documents (results.json, schema "qexp.results/1", see docs/results.md) into the
// files a researcher reads: results.csv for pandas, summary.md, a plain-text table for the
// terminal, and one self-contained report.html with inline SVG plots.
//
// Every renderer takes several runs so that `qexp report` can compare runs side by side; with one
// run the run column disappears. Renderers never throw on missing or oddly typed fields: a value
// that is absent (a section disabled in the config, a failed result) shows as empty or "-".
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "qexp/atomic_file.h"  // write_text_atomically, which every results file goes through
#include "results.h"

namespace qexp {

inline constexpr const char* results_schema_id = results::schema_id;

// Reads one results.json and checks its outline (an object with the expected schema id and a
// "results" array); throws input_error naming the file and the JSON problem.
nlohmann::json load_results(const std::filesystem::path& file);

// The results.json files `path` stands for: the file itself, `path/results.json`, or else every
// results.json below `path` (sorted). Throws input_error when `path` is missing or holds none.
std::vector<std::filesystem::path> find_results_files(const std::filesystem::path& path);

// One row per result per run, with a header row; pandas-friendly (missing values are empty cells,
// RFC 4180 quoting). Column list and units: docs/results.md.
std::string results_csv(const std::vector<nlohmann::json>& runs);
// One CSV cell, quoted (RFC 4180) when it holds a comma, a quote or a line break, or starts or ends
// with a space, which some readers would trim. Every CSV qexp writes quotes its cells with it.
std::string csv_field(const std::string& text);
// Aligned plain-text table for the terminal; failed rows show their error.
std::string summary_table(const std::vector<nlohmann::json>& runs);
// summary.md: the table in Markdown, plus environment, data, latency settings and the worst
// layers per scheme.
std::string summary_markdown(const std::vector<nlohmann::json>& runs);
// One self-contained HTML file (no scripts, no network): the table and inline SVG plots.
std::string report_html(const std::vector<nlohmann::json>& runs);

// Rebuilds summary.md, results.csv and report.html inside one results folder from its results.json.
void rebuild_report(const std::filesystem::path& run_dir);
// Writes summary.md, results.csv and report.html for these runs into `out_dir` (created if needed).
void write_report_files(const std::vector<nlohmann::json>& runs, const std::filesystem::path& out_dir);

namespace detail {

// What every renderer needs from one result, read once (results::from_json, tolerant of missing
// fields) with the figures the summaries quote picked out.
struct result_row {
  std::size_t run_index = 0;
  std::string run_name;  // empty when the report holds one run
  std::string experiment;
  std::string label, plugin, plugin_version, status, error;
  bool is_baseline = false;
  bool ok = false;  // status == "ok"
  results::scheme_result result;
  std::optional<double> size_bytes, size_ratio;
  // The latency entries the summary quotes: the smallest batch, then the fewest threads.
  std::optional<results::latency_entry> headline_probe, headline_dataset;
  std::optional<double> p50_ms, speedup;
  std::optional<double> accuracy, accuracy_delta, agreement, mean_kl, max_abs_dp, probe_total_abs_dp;
  std::optional<bool> accuracy_delta_significant;  // its 95% interval excludes 0 (absent: not computed)
  std::string worst_layer;
  std::optional<double> worst_sqnr_db;

  std::string display_name() const { return run_name.empty() ? label : run_name + " \xC2\xB7 " + label; }
};

std::vector<result_row> collect_rows(const std::vector<nlohmann::json>& runs);
// The keys of size.breakdown across these rows: the documented buckets first, then any other.
std::vector<std::string> breakdown_buckets(const std::vector<result_row>& rows);

// Follows object keys; nullptr when any step is missing or not an object.
const nlohmann::json* find(const nlohmann::json& j, std::initializer_list<const char*> path);
std::optional<double> number_at(const nlohmann::json& j, std::initializer_list<const char*> path);
std::string string_at(const nlohmann::json& j, std::initializer_list<const char*> path);

std::string fixed(double value, int decimals);
std::string fixed(const std::optional<double>& value, int decimals, const std::string& missing = "-");
// 1503106 -> "1,503,106" (rounded to a whole number first).
std::string with_thousands(double value);
// The cell formats every renderer shares; "-" for a missing value.
std::string format_ms(const std::optional<double>& ms);             // 3 significant-ish digits
std::string format_percent(const std::optional<double>& fraction);  // 0.8107 -> "81.07%"
std::string format_points(const std::optional<double>& fraction);   // signed percentage points
// A row's accuracy delta in points, with " (n.s.)" when its 95% interval contains 0.
std::string format_delta(const result_row& row);
// An accuracy delta in points with its 95% interval, and " (n.s.)" when the interval contains 0:
// "+0.11 [-0.23, +0.46] (n.s.)"; "-" without a delta.
std::string format_delta_with_interval(const results::accuracy_section& accuracy);
std::string format_times(const std::optional<double>& ratio, int decimals, const std::string& sign = "x");
// "batch 1, 1 thread, 22 tokens" for a probe entry; "batch 1, 1 thread, 200 sentences, 25.1 mean
// tokens" for a dataset entry.
std::string latency_setting(const results::latency_entry& entry, bool dataset);
// A result's latency list of that kind ("probe" or "dataset"; empty when it has none).
const std::vector<results::latency_entry>& latency_list(const results::scheme_result& result, const std::string& kind);
// A size bucket's bytes (size.breakdown), when the result has it.
std::optional<double> breakdown_bytes(const results::scheme_result& result, const std::string& bucket);
// An optional member as the renderers' number.
template <class T>
std::optional<double> as_number(const std::optional<T>& v) {
  return v ? std::optional<double>(static_cast<double>(*v)) : std::nullopt;
}
template <class T>
std::optional<double> as_number(const results::nullable<T>& v) {
  return as_number(v.value);
}
std::string html_escape(const std::string& text);
// Markdown: cell text with markup characters escaped, a code span, a GFM table.
std::string md_text(const std::string& text);
std::string md_code(const std::string& text);
std::string md_row(const std::vector<std::string>& cells);
std::string md_table(const std::vector<std::string>& header, const std::vector<bool>& numeric,
                     const std::vector<std::vector<std::string>>& rows);
// A table of plain-text cells, no markup yet: a report section before it is Markdown or HTML.
struct text_table {
  std::vector<std::string> header;
  std::vector<bool> numeric;       // per column: right-aligned
  int code_column = -1;            // a column of names (layers) that Markdown shows as code
  std::vector<std::vector<std::string>> rows;
};
// One line of a run's facts, e.g. {"CPU", "AMD EPYC 9R14 (2 logical CPUs)"}; `code` for a path,
// which Markdown shows as a code span.
struct fact {
  std::string key, value;
  bool code = false;
};
// One run as every report format shows it: built once by run_view_of from the run's results.json
// and its rows, printed by the thin Markdown (summary.md) and HTML (report.html) printers. Empty
// facts and tables are left out by the printers.
struct run_view {
  std::string title;   // the experiment's name, or "run N"
  std::string folder;  // the results folder's name
  std::string description;
  bool incomplete = false;         // experiment.complete is false
  std::vector<fact> experiment;    // config, results folder, started, finished, wall time
  std::vector<fact> environment;   // CPU, ISA, threads, library versions, host
  std::vector<fact> inputs;        // model, data
  text_table latency, accuracy, size;
  struct worst_layers {
    std::string scheme;
    std::size_t layers = 0;  // of which `table` shows the worst few
    text_table table;
  };
  std::vector<worst_layers> layers;
  std::vector<fact> failures;   // "label (plugin)": error
  std::string resolved_config;  // the resolved configuration as indented JSON; empty when absent
};
run_view run_view_of(const nlohmann::json& run, const std::vector<result_row>& rows, std::size_t run_index);
// A sensitivity run's ranking (its "sensitivity" section; "" for other runs): a Markdown section,
// and an HTML section with its plots (sensitivity_report.cpp).
std::string sensitivity_markdown(const nlohmann::json& run);
std::string sensitivity_html(const nlohmann::json& run, std::size_t run_index);
// An autotune run's goal, chosen recipe, final evaluation and trials (its "autotune" section; ""
// for other runs), with Pareto plots in HTML (autotune_report.cpp).
std::string autotune_markdown(const nlohmann::json& run);
std::string autotune_html(const nlohmann::json& run, std::size_t run_index);
// Orders "layer.10" after "layer.9".
bool natural_less(const std::string& a, const std::string& b);

}  // namespace detail
}  // namespace qexp

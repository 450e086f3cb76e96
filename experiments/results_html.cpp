// report.html: one self-contained page (inline CSS and SVG, no scripts, no network) with the
// summary table and the plots a researcher reads first: accuracy against size and latency (the
// Pareto view), latency distributions per scheme, and per-layer SQNR.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "qexp/version.h"
#include "results_report.h"
#include "svg_plots.h"

namespace qexp {

using nlohmann::json;
using detail::fixed;
using detail::format_ms;
using detail::format_percent;
using detail::format_points;
using detail::html_escape;
using detail::result_row;
using plots::baseline_colour;
using plots::distribution_row;
using plots::layer_name_prefix;
using plots::layer_series;
using plots::palette;
using plots::scatter_point;
using plots::distribution_svg;
using plots::scatter_svg;
using plots::sqnr_svg;

namespace {
// ---------------------------------------------------------------------------------------------
// The page

const char* const page_style = R"css(
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1f2328;
       background: #f6f8fa; margin: 0; }
main { max-width: 1140px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 8px; }
.meta { color: #57606a; margin: 2px 0; }
section.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 4px 18px 16px; margin-top: 18px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e5e8eb; text-align: left; vertical-align: top; }
th { background: #f0f3f6; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr.baseline td { background: #f7f7f9; font-weight: 600; }
tr.failed td { background: #fff1f0; }
td.error { color: #a40e26; }
td.layer { white-space: nowrap; }
table.summary { font-size: 13px; }
table.summary th, table.summary td { padding: 5px 8px; }
td.scheme { min-width: 150px; }
.plugin { color: #57606a; font-size: 12px; font-weight: 400; padding-left: 16px; }
.table-wrap { overflow-x: auto; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.warning { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; }
.note { color: #57606a; font-size: 13px; margin: 6px 0; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
svg.plot { background: #fff; max-width: 100%; height: auto; font-family: inherit; }
svg .plot-title { font-size: 14px; font-weight: 600; fill: #1f2328; }
svg .tick, svg .row-note { font-size: 11px; fill: #57606a; }
svg .axis-title, svg .legend, svg .row-label { font-size: 12px; fill: #1f2328; }
svg .point-label { font-size: 12px; fill: #1f2328; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg .grid { stroke: #e8ebef; stroke-width: 1; }
svg .frame { fill: none; stroke: #afb8c1; }
svg .band { fill: #f6f8fa; }
svg .frontier { fill: none; stroke: #8c959f; stroke-width: 1.5; stroke-dasharray: 5 4; }
svg .marker { stroke: #fff; stroke-width: 1.5; }
svg .samples { opacity: 0.35; }
svg .whisker { stroke-width: 1.5; }
svg .box { fill-opacity: 0.22; stroke-width: 1.5; }
svg .median { stroke: #1f2328; stroke-width: 2.5; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #0969da; }
pre { background: #f6f8fa; border: 1px solid #e5e8eb; border-radius: 6px; padding: 10px; overflow-x: auto; font-size: 12px; }
code { font-size: 12.5px; }
footer { color: #57606a; font-size: 12px; margin-top: 32px; }
)css";

std::string cell(const std::string& text, bool numeric = false) {
  return std::string(numeric ? "<td class=\"num\">" : "<td>") + html_escape(text) + "</td>";
}

// The HTML shows ratios with a real multiplication sign.
std::string format_times(const std::optional<double>& v, int decimals) { return detail::format_times(v, decimals, "\xC3\x97"); }

std::string summary_html(const std::vector<result_row>& rows, const std::vector<std::string>& colours,
                         const std::string& layer_prefix) {
  bool several_runs = std::any_of(rows.begin(), rows.end(), [](const result_row& r) { return !r.run_name.empty(); });
  std::set<std::string> settings;
  for (const auto& r : rows) {
    if (r.headline_probe) settings.insert(detail::latency_setting(*r.headline_probe, false));
  }
  // The latency setting goes in the note when every row shares it, which keeps the table narrow.
  bool setting_column = settings.size() > 1;
  std::string out = "<div class=\"table-wrap\"><table class=\"summary\"><thead><tr>";
  if (several_runs) out += "<th>run</th>";
  out += "<th>scheme</th><th class=\"num\">size MB</th><th class=\"num\">ratio</th><th class=\"num\">p50 ms</th>";
  if (setting_column) out += "<th>latency at</th>";
  out += "<th class=\"num\">speedup</th><th class=\"num\">accuracy</th><th class=\"num\">&Delta; pp</th>"
         "<th class=\"num\">agreement</th><th>worst layer</th><th class=\"num\">SQNR dB</th>"
         "</tr></thead><tbody>";
  const int measured_columns = setting_column ? 10 : 9;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    out += std::string("<tr class=\"") + (r.ok ? (r.is_baseline ? "baseline" : "ok") : "failed") + "\">";
    if (several_runs) out += cell(r.run_name);
    // The plugin and its version sit under the label: the label is what the researcher chose.
    out += "<td class=\"scheme\"><span class=\"swatch\" style=\"background:" + colours[i] + "\"></span>" +
           html_escape(r.label) + "<div class=\"plugin\">" + html_escape(r.plugin) +
           (r.plugin_version.empty() ? "" : " " + html_escape(r.plugin_version)) + "</div></td>";
    if (!r.ok) {
      out += "<td class=\"error\" colspan=\"" + std::to_string(measured_columns) + "\">failed: " +
             html_escape(r.error.empty() ? "no error message recorded" : r.error) + "</td></tr>";
      continue;
    }
    out += cell(r.size_bytes ? fixed(*r.size_bytes / 1e6, 2) : "-", true);
    out += cell(format_times(r.size_ratio, 3), true);
    out += cell(format_ms(r.p50_ms), true);
    if (setting_column) out += cell(r.headline_probe ? detail::latency_setting(*r.headline_probe, false) : "-");
    out += cell(format_times(r.speedup, 2), true);
    out += cell(format_percent(r.accuracy), true);
    out += cell(format_delta(r), true);
    out += cell(format_percent(r.agreement), true);
    std::string layer = r.worst_layer.rfind(layer_prefix, 0) == 0 ? r.worst_layer.substr(layer_prefix.size()) : r.worst_layer;
    out += "<td class=\"layer\" title=\"" + html_escape(r.worst_layer) + "\">" + html_escape(layer.empty() ? "-" : layer) + "</td>";
    out += cell(r.worst_sqnr_db ? fixed(*r.worst_sqnr_db, 1) : "-", true);
    out += "</tr>";
  }
  out += "</tbody></table></div>";
  out += "<p class=\"note\">p50 ms: the probe sentence at " +
         (settings.size() == 1 ? html_escape(*settings.begin()) : std::string("the smallest batch and fewest threads measured")) +
         "; speedup is against fp32 in the same run. Size MB: checkpoint file, 10<sup>6</sup> bytes. &Delta; pp: accuracy "
         "change against fp32 in percentage points; agreement: share of predictions equal to fp32's.</p>";
  return out;
}

std::string key_value_table(const std::vector<detail::fact>& facts) {
  std::string out = "<table class=\"kv\"><tbody>";
  for (const auto& f : facts) {
    if (!f.value.empty()) out += "<tr><th>" + html_escape(f.key) + "</th><td>" + html_escape(f.value) + "</td></tr>";
  }
  return out + "</tbody></table>";
}

std::string cells_table(const detail::text_table& t) {
  std::string out = "<table><thead><tr>";
  for (std::size_t i = 0; i < t.header.size(); ++i) {
    out += std::string(t.numeric[i] ? "<th class=\"num\">" : "<th>") + html_escape(t.header[i]) + "</th>";
  }
  out += "</tr></thead><tbody>";
  for (const auto& r : t.rows) {
    out += "<tr>";
    for (std::size_t i = 0; i < r.size(); ++i) out += cell(r[i], i < t.numeric.size() && t.numeric[i]);
    out += "</tr>";
  }
  return out + "</tbody></table>";
}

// report.html's printer of a run_view: its facts, then the tables folded away under the plots (the
// summary table above already shows failures).
std::string run_details_html(const detail::run_view& v) {
  std::string out = "<h3>" + html_escape(v.title) + "</h3>";
  if (v.incomplete) out += "<p><strong>Incomplete run</strong>: results may be missing.</p>";
  if (!v.description.empty()) out += "<p>" + html_escape(v.description) + "</p>";
  std::vector<detail::fact> facts = v.experiment;
  facts.insert(facts.end(), v.environment.begin(), v.environment.end());
  facts.insert(facts.end(), v.inputs.begin(), v.inputs.end());
  out += key_value_table(facts);
  auto folded = [&out](const char* title, const detail::text_table& t) {
    if (!t.rows.empty()) out += "<details><summary>" + std::string(title) + "</summary>" + cells_table(t) + "</details>";
  };
  folded("All latency measurements", v.latency);
  folded("Accuracy against fp32", v.accuracy);
  folded("Checkpoint size breakdown", v.size);
  if (!v.resolved_config.empty()) {
    out += "<details><summary>Resolved configuration</summary><pre>" + html_escape(v.resolved_config) + "</pre></details>";
  }
  return out;
}

struct latency_plot_key {
  int kind;  // 0 probe, 1 dataset
  double batch, threads;
  bool operator<(const latency_plot_key& o) const {
    return std::tie(kind, threads, batch) < std::tie(o.kind, o.threads, o.batch);
  }
};

}  // namespace

std::string report_html(const std::vector<json>& runs) {
  auto rows = detail::collect_rows(runs);
  std::vector<std::string> colours;
  std::size_t next_colour = 0;
  for (const auto& r : rows) colours.push_back(r.is_baseline ? baseline_colour : palette[next_colour++ % std::size(palette)]);

  std::set<std::string> names;
  for (const auto& run : runs) names.insert(detail::string_at(run, {"experiment", "name"}));
  std::string title;
  for (const auto& n : names) title += (title.empty() ? "" : ", ") + (n.empty() ? std::string("unnamed") : n);

  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    // No scripts, no fetches: the page stays inert even if some text escaped escaping.
                    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                    "<title>qexp results: " + html_escape(title) + "</title><style>" + page_style + "</style></head><body><main>";
  out += "<h1>qexp results: " + html_escape(title) + "</h1>";
  for (const auto& run : runs) {
    std::string line;
    for (const auto& part : {detail::string_at(run, {"experiment", "description"}), detail::string_at(run, {"experiment", "started_at"}),
                             detail::string_at(run, {"environment", "cpu_model"})}) {
      if (!part.empty()) line += (line.empty() ? "" : " \xC2\xB7 ") + part;
    }
    if (!line.empty()) out += "<p class=\"meta\">" + html_escape(line) + "</p>";
    if (const json* complete = detail::find(run, {"experiment", "complete"}); complete && *complete == false) {
      out += "<p class=\"warning\">Incomplete run" +
             (detail::string_at(run, {"experiment", "name"}).empty() ? "" : " (" + html_escape(detail::string_at(run, {"experiment", "name"})) + ")") +
             ": results.json was written before the run finished (still running, or interrupted); results may be missing.</p>";
    }
  }

  out += "<section class=\"card\" id=\"summary\"><h2>Summary</h2>";
  std::vector<std::string> all_layers;
  for (const auto& r : rows) {
    for (const auto& l : r.result.layer_error.value_or(std::vector<results::layer_error_entry>()))
      all_layers.push_back(l.layer);
  }
  out += rows.empty() ? "<p>No results.</p>" : summary_html(rows, colours, layer_name_prefix(all_layers));
  out += "</section>";

  // Accuracy against size and latency.
  std::vector<scatter_point> by_size, by_latency;
  std::vector<std::string> missing;
  std::set<std::string> settings;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (!r.ok) continue;
    if (!r.accuracy) {
      missing.push_back(r.display_name() + " (no accuracy)");
      continue;
    }
    scatter_point p;
    p.label = r.display_name();
    p.colour = colours[i];
    p.baseline = r.is_baseline;
    p.y = *r.accuracy * 100;
    if (r.size_bytes) {
      p.x = *r.size_bytes / 1e6;
      p.tooltip = r.display_name() + ": " + fixed(p.x, 2) + " MB, accuracy " + fixed(p.y, 2) + "%";
      by_size.push_back(p);
    } else {
      missing.push_back(r.display_name() + " (no size)");
    }
    if (r.p50_ms) {
      p.x = *r.p50_ms;
      p.tooltip = r.display_name() + ": p50 " + fixed(p.x, 3) + " ms, accuracy " + fixed(p.y, 2) + "%";
      by_latency.push_back(p);
      settings.insert(detail::latency_setting(*r.headline_probe, false));
    } else {
      missing.push_back(r.display_name() + " (no latency)");
    }
  }
  out += "<section class=\"card\" id=\"tradeoff\"><h2>Accuracy against size and latency</h2>";
  if (by_size.empty() && by_latency.empty()) {
    out += "<p class=\"note\">No result has both an accuracy and a size or latency to plot.</p>";
  } else {
    out += "<div class=\"plots\">";
    if (!by_size.empty()) {
      out += scatter_svg("accuracy-vs-size", "Accuracy against checkpoint size", "checkpoint size, MB", "SST-2 dev accuracy, %",
                         by_size, 1.0);
    }
    if (!by_latency.empty()) {
      std::string latency_title = "p50 latency, ms" + (settings.size() == 1 ? " (" + *settings.begin() + ")" : "");
      out += scatter_svg("accuracy-vs-latency", "Accuracy against latency", latency_title, "SST-2 dev accuracy, %",
                         by_latency, 0.1);
    }
    out += "</div>";
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : "; ") + m;
    out += "<p class=\"note\">Not plotted: " + html_escape(list) + ".</p>";
  }
  out += "<p class=\"note\">The diamond is the fp32 baseline; the dashed line joins the schemes no other scheme beats on "
         "both axes. Failed schemes are not plotted.</p></section>";

  // Latency distributions, one plot per input and setting.
  std::map<latency_plot_key, std::vector<distribution_row>> distributions;
  std::map<latency_plot_key, std::string> setting_text;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (!r.ok) continue;
    for (int kind = 0; kind < 2; ++kind) {
      for (const auto& e : detail::latency_list(r.result, kind == 0 ? "probe" : "dataset")) {
        if (!e.samples_ms) continue;
        distribution_row d;
        d.label = r.display_name();
        d.colour = colours[i];
        d.samples = *e.samples_ms;  // finite: the reader keeps no other number
        if (d.samples.empty()) continue;
        std::sort(d.samples.begin(), d.samples.end());
        d.p50 = e.p50_ms;
        d.p99 = e.p99_ms;
        latency_plot_key key{kind, detail::as_number(e.batch_size).value_or(0), detail::as_number(e.threads).value_or(0)};
        distributions[key].push_back(std::move(d));
        setting_text.emplace(key, detail::latency_setting(e, kind == 1));
      }
    }
  }
  out += "<section class=\"card\" id=\"latency\"><h2>Latency distributions</h2>";
  if (distributions.empty()) out += "<p class=\"note\">No latency samples were recorded.</p>";
  for (const auto& [key, list] : distributions) {
    std::string id = std::string(key.kind == 0 ? "latency-probe" : "latency-dataset") + "-b" + fixed(key.batch, 0) + "-t" +
                     fixed(key.threads, 0);
    std::string plot_title = std::string(key.kind == 0 ? "Probe sentence" : "Dataset sentences") + ": " + setting_text[key];
    out += distribution_svg(id, plot_title, list);
  }
  out += "<p class=\"note\">Box: quartiles and median; whiskers: the farthest samples within 1.5 IQR of the box; dots: "
         "every timed call (dataset: one call per sentence, so lengths vary).</p></section>";

  // Per-layer error.
  std::vector<layer_series> series;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (!r.ok || !r.result.layer_error) continue;
    layer_series s;
    s.label = r.display_name();
    s.colour = colours[i];
    for (const auto& l : *r.result.layer_error) {
      if (l.sqnr_db && !l.layer.empty()) s.by_layer[l.layer] = {*l.sqnr_db.value, l.nmse.value};
    }
    if (!s.by_layer.empty()) series.push_back(std::move(s));
  }
  out += "<section class=\"card\" id=\"layers\"><h2>Per-layer error</h2>";
  if (series.empty()) {
    out += "<p class=\"note\">No per-layer error was recorded.</p>";
  } else {
    std::string caption;
    out += sqnr_svg("layer-sqnr", series, &caption);
    out += "<p class=\"note\">" + html_escape(caption) +
           "SQNR = 10 log<sub>10</sub>(signal power / error power) of each quantized Linear's output against "
           "the fp32 layer's, on dev batches fed through both models; about 6 dB per bit of precision.</p>";
  }
  out += "</section>";

  for (std::size_t r = 0; r < runs.size(); ++r) out += detail::sensitivity_html(runs[r], r) + detail::autotune_html(runs[r], r);

  out += "<section class=\"card\" id=\"runs\"><h2>Runs</h2>";
  for (std::size_t r = 0; r < runs.size(); ++r) out += run_details_html(detail::run_view_of(runs[r], rows, r));
  out += "</section>";
  out += std::string("<footer>Written by qexp ") + version_string() +
         " from results.json (schema " + results_schema_id + "). Plots are inline SVG; the page needs no scripts and "
         "no network.</footer></main></body></html>\n";
  return out;
}

}  // namespace qexp

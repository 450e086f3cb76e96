// The tuning part of summary.md and report.html: an `autotune` run's trials (its "autotune"
// section, docs/results.md) as a table, Pareto plots of every tried recipe, and the chosen recipe
// with its final evaluation.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "results_report.h"
#include "svg_plots.h"

namespace qexp::detail {
namespace {
using nlohmann::json;

struct trial_row {
  std::string index, phase, change;
  std::optional<double> size_ratio, bytes, latency_ms, metric, accuracy, delta, kl;
  bool meets = false, kept = false, chosen = false;
};

// The run's autotune section, read once; none for other kinds.
std::optional<results::autotune_section> section_of(const json& run) {
  const json* section = find(run, {"autotune"});
  if (!section || !section->is_object()) return std::nullopt;
  return section->get<results::autotune_section>();
}

std::string count_text(const std::optional<std::int64_t>& n) { return n ? std::to_string(*n) : "?"; }

std::vector<trial_row> read_trials(const results::autotune_section& section) {
  std::vector<trial_row> rows;
  std::optional<std::int64_t> chosen;
  if (section.chosen) chosen = section.chosen->index;
  for (const auto& t : section.trials) {
    trial_row r;
    r.index = count_text(t.index);
    r.phase = t.phase;
    r.change = t.change;
    r.size_ratio = t.size_ratio_to_fp32;
    r.bytes = t.weight_bytes;
    r.latency_ms = t.latency_estimate_ms;
    r.metric = t.metric;
    if (t.accuracy) r.accuracy = t.accuracy->accuracy, r.delta = t.accuracy->accuracy_delta_vs_fp32, r.kl = t.accuracy->mean_kl_vs_fp32;
    r.meets = t.meets_constraint.value_or(false);
    r.kept = t.kept.value_or(false);
    r.chosen = t.index.has_value() && chosen == t.index;
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string general(const std::optional<double>& v) {
  if (!v) return "-";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g", *v);
  return buffer;
}

// "size, accuracy drop (points) <= 1 on 400 tuning sentences of .../train.tsv"
std::string goal_text(const results::autotune_section& section) {
  const results::autotune_constraint constraint = section.constraint.value_or(results::autotune_constraint{});
  const results::autotune_tuning tuning = section.tuning.value_or(results::autotune_tuning{});
  return "objective: " + section.objective + "; constraint: " +
         (constraint.metric == "kl" ? "mean KL(fp32 || recipe)" : "accuracy drop against fp32, points") + " <= " +
         general(constraint.max) + " on " + count_text(tuning.sentences) + " tuning sentences of " + tuning.data +
         " (" + tuning.drawn + ")";
}

std::string chosen_text(const results::autotune_section& section) {
  if (!section.chosen) return "";
  const results::autotune_trial& chosen = *section.chosen;
  return "Chosen: trial " + count_text(chosen.index) + ", " + format_percent(chosen.size_ratio_to_fp32) +
         " of fp32's bytes, metric " + general(chosen.metric) +
         (section.met.value_or(false) ? " (meets the constraint)" : " (NO recipe met the constraint)") + "; " +
         chosen.recipe_file.value_or("") + ".";
}

// The final evaluation's rows: label, accuracy delta with its interval, size, latency.
std::vector<std::vector<std::string>> final_cells(const results::autotune_section& section) {
  std::vector<std::vector<std::string>> cells;
  if (!section.final || !section.final->rows) return cells;
  for (const auto& r : *section.final->rows) {
    const results::accuracy_section a = r.accuracy.value_or(results::accuracy_section{});
    std::string megabytes = "-";
    if (r.size && r.size->file_bytes) megabytes = fixed(static_cast<double>(*r.size->file_bytes) / 1e6, 2);
    cells.push_back({r.label, format_percent(a.accuracy), format_delta_with_interval(a), general(a.mean_kl_vs_fp32), megabytes,
                     format_ms(r.latency_p50_ms)});
  }
  return cells;
}

}  // namespace

std::string autotune_markdown(const json& run) {
  const auto section = section_of(run);
  if (!section) return "";
  std::string out = "## Tuning\n\n" + md_text(goal_text(*section)) + ".\n\n";
  if (const auto chosen = chosen_text(*section); !chosen.empty()) out += md_text(chosen) + "\n\n";
  const auto finals = final_cells(*section);
  if (!finals.empty()) {
    std::vector<std::vector<std::string>> cells;
    for (const auto& c : finals) cells.push_back({md_text(c[0]), c[1], md_text(c[2]), c[3], c[4], c[5]});
    out += "Final evaluation on " + md_text(section->final->config) +
           " (the held-out data, not the tuning sentences):\n\n" +
           md_table({"recipe", "accuracy", "delta vs fp32 [95% CI]", "KL", "checkpoint MB", "p50 batch 1"},
                    {false, true, false, true, true, true}, cells) +
           "\n";
  }
  if (section->final && section->final->error)
    out += "Final evaluation failed: " + md_text(*section->final->error) + "\n\n";
  const auto trials = read_trials(*section);
  std::vector<std::vector<std::string>> cells;
  for (const auto& t : trials)
    cells.push_back({t.index + (t.chosen ? " (chosen)" : ""), t.phase, md_text(t.change), format_percent(t.size_ratio),
                     format_ms(t.latency_ms), general(t.metric), format_points(t.delta), general(t.kl),
                     t.meets ? "yes" : "no", t.phase == "trim" ? (t.kept ? "kept" : "undone") : ""});
  out += "Trials, on the tuning sentences (size: of fp32's bytes; latency: estimated ms at batch 1):\n\n" +
         md_table({"trial", "phase", "change", "size", "latency", "metric", "accuracy delta", "KL", "meets", "trim"},
                  {true, false, false, true, true, true, true, true, false, false}, cells) +
         "\n";
  return out;
}

std::string autotune_html(const json& run, std::size_t run_index) {
  const auto section = section_of(run);
  if (!section) return "";
  const std::string id = "autotune-" + std::to_string(run_index + 1);
  std::string out = "<section class=\"card\" id=\"" + id + "\"><h2>Tuning</h2><p class=\"note\">" +
                    html_escape(goal_text(*section)) + ". " + html_escape(chosen_text(*section)) + "</p>";
  const auto trials = read_trials(*section);
  std::vector<plots::scatter_point> by_size, by_latency;
  const bool kl = section->constraint && section->constraint->metric == "kl";
  // KL in a unit that makes its values read as small numbers (1e-5 nats -> "x 1e-05").
  double largest_kl = 0;
  for (const auto& t : trials) largest_kl = std::max(largest_kl, t.kl.value_or(0));
  const double kl_unit = largest_kl > 0 ? std::pow(10.0, std::floor(std::log10(largest_kl))) : 1.0;
  for (const auto& t : trials) {
    if (!t.size_ratio || !t.latency_ms || !t.delta) continue;
    const std::string colour = t.chosen ? plots::palette[3] : t.meets ? plots::palette[2] : "#bbbbbb";
    const std::string tip = "trial " + t.index + " (" + t.phase + "): " + t.change + "; size " +
                            format_percent(t.size_ratio) + ", accuracy delta " + format_points(t.delta) + ", KL " +
                            general(t.kl) + (t.meets ? ", meets the constraint" : "");
    const std::string label = t.chosen ? "chosen (" + t.index + ")" : t.index;
    // With KL as the constraint the y axis is -KL, so that up is still better.
    const double y = kl && t.kl ? -*t.kl / kl_unit : *t.delta * 100;
    plots::scatter_point p{label, tip, colour, *t.size_ratio * 100, y, false, !t.chosen};
    by_size.push_back(p);
    p.x = *t.latency_ms;
    by_latency.push_back(p);
  }
  char unit_text[32];
  std::snprintf(unit_text, sizeof unit_text, "%g", kl_unit);
  const std::string y_title = kl ? "minus mean KL to fp32, x " + std::string(unit_text) + " nats (tuning sentences)"
                                 : "accuracy delta, points (tuning sentences)";
  const double y_span = kl ? 0.5 : 1.0;
  if (!by_size.empty()) {
    out += "<div class=\"plots\">";
    out += plots::scatter_svg(id + "-size", "Tried recipes: size against accuracy", "size, % of fp32's bytes", y_title,
                              by_size, 5.0, y_span);
    out += plots::scatter_svg(id + "-latency", "Tried recipes: latency against accuracy",
                              "estimated batch-1 latency, ms", y_title, by_latency, 0.1, y_span);
    out += "</div><p class=\"note\">Red: the chosen recipe; green: meets the constraint; grey: does not. Hover a "
           "point for its trial.</p>";
  }
  const auto finals = final_cells(*section);
  if (!finals.empty()) {
    out += "<h3>Final evaluation (held-out data)</h3><table><thead><tr><th>recipe</th><th>accuracy</th><th>delta vs "
           "fp32 [95% CI]</th><th>KL</th><th>checkpoint MB</th><th>p50 batch 1</th></tr></thead><tbody>";
    for (const auto& c : finals) {
      out += "<tr>";
      for (std::size_t i = 0; i < c.size(); ++i)
        out += std::string(i == 0 || i == 2 ? "<td>" : "<td class=\"num\">") + html_escape(c[i]) + "</td>";
      out += "</tr>";
    }
    out += "</tbody></table>";
  }
  return out + "</section>";
}

}  // namespace qexp::detail

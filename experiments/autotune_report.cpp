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

const json* section_of(const json& run) {
  const json* section = find(run, {"autotune"});
  return section && section->is_object() ? section : nullptr;
}

bool flag(const json& j, const char* key) {
  const json* v = find(j, {key});
  return v && v->is_boolean() && v->get<bool>();
}

std::vector<trial_row> read_trials(const json& section) {
  std::vector<trial_row> rows;
  const auto chosen = number_at(section, {"chosen", "index"});
  const json* trials = find(section, {"trials"});
  if (!trials || !trials->is_array()) return rows;
  for (const auto& t : *trials) {
    if (!t.is_object()) continue;
    trial_row r;
    const auto index = number_at(t, {"index"});
    r.index = index ? fixed(*index, 0) : "?";
    r.phase = string_at(t, {"phase"});
    r.change = string_at(t, {"change"});
    r.size_ratio = number_at(t, {"size_ratio_to_fp32"});
    r.bytes = number_at(t, {"weight_bytes"});
    r.latency_ms = number_at(t, {"latency_estimate_ms"});
    r.metric = number_at(t, {"metric"});
    r.accuracy = number_at(t, {"accuracy", "accuracy"});
    r.delta = number_at(t, {"accuracy", "accuracy_delta_vs_fp32"});
    r.kl = number_at(t, {"accuracy", "mean_kl_vs_fp32"});
    r.meets = flag(t, "meets_constraint");
    r.kept = flag(t, "kept");
    r.chosen = chosen && index && *chosen == *index;
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
std::string goal_text(const json& section) {
  const std::string metric = string_at(section, {"constraint", "metric"});
  const auto max = number_at(section, {"constraint", "max"});
  const auto sentences = number_at(section, {"tuning", "sentences"});
  return "objective: " + string_at(section, {"objective"}) + "; constraint: " +
         (metric == "kl" ? "mean KL(fp32 || recipe)" : "accuracy drop against fp32, points") + " <= " + general(max) +
         " on " + (sentences ? fixed(*sentences, 0) : "?") + " tuning sentences of " +
         string_at(section, {"tuning", "data"}) + " (" + string_at(section, {"tuning", "drawn"}) + ")";
}

std::string chosen_text(const json& section) {
  const json* chosen = find(section, {"chosen"});
  if (!chosen) return "";
  std::string out = "Chosen: trial " + general(number_at(*chosen, {"index"})) + ", " +
                    format_percent(number_at(*chosen, {"size_ratio_to_fp32"})) + " of fp32's bytes, metric " +
                    general(number_at(*chosen, {"metric"})) +
                    (flag(section, "met") ? " (meets the constraint)" : " (NO recipe met the constraint)") + "; " +
                    string_at(*chosen, {"recipe_file"}) + ".";
  return out;
}

// The final evaluation's rows: label, accuracy delta with its interval, size, latency.
std::vector<std::vector<std::string>> final_cells(const json& section) {
  std::vector<std::vector<std::string>> cells;
  const json* rows = find(section, {"final"});
  if (!rows || !rows->contains("rows") || !(*rows)["rows"].is_array()) return cells;
  for (const auto& r : (*rows)["rows"]) {
    std::string delta = format_points(number_at(r, {"accuracy", "accuracy_delta_vs_fp32"}));
    if (const json* ci = find(r, {"accuracy", "accuracy_delta_ci95"}); ci && ci->is_array() && ci->size() == 2 &&
                                                                       (*ci)[0].is_number() && (*ci)[1].is_number())
      delta += " [" + format_points((*ci)[0].get<double>()) + ", " + format_points((*ci)[1].get<double>()) + "]" +
               (flag(r["accuracy"], "accuracy_delta_significant") ? "" : " (n.s.)");
    const auto file_bytes = number_at(r, {"size", "file_bytes"});
    cells.push_back({string_at(r, {"label"}), format_percent(number_at(r, {"accuracy", "accuracy"})), delta,
                     general(number_at(r, {"accuracy", "mean_kl_vs_fp32"})),
                     file_bytes ? fixed(*file_bytes / 1e6, 2) : "-", format_ms(number_at(r, {"latency_p50_ms"}))});
  }
  return cells;
}

}  // namespace

std::string autotune_markdown(const json& run) {
  const json* section = section_of(run);
  if (!section) return "";
  std::string out = "## Tuning\n\n" + md_text(goal_text(*section)) + ".\n\n";
  if (const auto chosen = chosen_text(*section); !chosen.empty()) out += md_text(chosen) + "\n\n";
  const auto finals = final_cells(*section);
  if (!finals.empty()) {
    std::vector<std::vector<std::string>> cells;
    for (const auto& c : finals) cells.push_back({md_text(c[0]), c[1], md_text(c[2]), c[3], c[4], c[5]});
    out += "Final evaluation on " + md_text(string_at(*section, {"final", "config"})) +
           " (the held-out data, not the tuning sentences):\n\n" +
           md_table({"recipe", "accuracy", "delta vs fp32 [95% CI]", "KL", "checkpoint MB", "p50 batch 1"},
                    {false, true, false, true, true, true}, cells) +
           "\n";
  }
  if (const std::string error = string_at(*section, {"final", "error"}); !error.empty())
    out += "Final evaluation failed: " + md_text(error) + "\n\n";
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
  const json* section = section_of(run);
  if (!section) return "";
  const std::string id = "autotune-" + std::to_string(run_index + 1);
  std::string out = "<section class=\"card\" id=\"" + id + "\"><h2>Tuning</h2><p class=\"note\">" +
                    html_escape(goal_text(*section)) + ". " + html_escape(chosen_text(*section)) + "</p>";
  const auto trials = read_trials(*section);
  std::vector<plots::scatter_point> by_size, by_latency;
  const bool kl = string_at(*section, {"constraint", "metric"}) == "kl";
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

// The layer-sensitivity part of summary.md and report.html: the ranked sites of a `sensitivity`
// run (its "sensitivity" section, docs/results.md), read once into rows both printers share.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "results_report.h"
#include "svg_plots.h"

namespace qexp::detail {
namespace {
using nlohmann::json;

// One mode's measurement of a site (one_at_a_time or all_but_one).
struct variant_cells {
  bool present = false;
  std::optional<double> accuracy_delta, ci_low, ci_high, agreement, kl, logits_sqnr;
  bool significant = false;
};

struct sensitivity_row {
  std::string rank, site, kind, plugin, error;
  std::optional<double> bytes_saved, site_sqnr;
  variant_cells alone, all_but_one;
};

variant_cells read_variant(const std::optional<results::variant_measurement>& m) {
  variant_cells v;
  if (!m) return v;
  v.present = true;
  v.accuracy_delta = m->accuracy_delta_vs_fp32;
  if (m->accuracy_delta_ci95) v.ci_low = (*m->accuracy_delta_ci95)[0], v.ci_high = (*m->accuracy_delta_ci95)[1];
  v.significant = m->accuracy_delta_significant.value_or(false);
  v.agreement = m->agreement_with_fp32;
  v.kl = m->mean_kl_vs_fp32;
  v.logits_sqnr = m->logits_sqnr_db;
  return v;
}

std::vector<sensitivity_row> read_rows(const results::sensitivity_section& section) {
  std::vector<sensitivity_row> rows;
  for (const auto& s : section.sites) {
    sensitivity_row r;
    if (s.rank) r.rank = std::to_string(*s.rank);
    r.site = s.site, r.kind = s.kind, r.plugin = s.plugin, r.error = s.error.value_or("");
    r.bytes_saved = s.bytes_saved;
    if (s.site_sqnr_db) r.site_sqnr = s.site_sqnr_db->value;
    r.alone = read_variant(s.one_at_a_time);
    r.all_but_one = read_variant(s.all_but_one);
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string delta_text(const variant_cells& v) {
  if (!v.accuracy_delta) return "-";
  std::string out = format_points(v.accuracy_delta);
  if (v.ci_low && v.ci_high) out += " [" + format_points(v.ci_low) + ", " + format_points(v.ci_high) + "]";
  return v.ci_low && !v.significant ? out + " (n.s.)" : out;
}

std::string kl_text(const std::optional<double>& kl) {
  if (!kl) return "-";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g", *kl);
  return buffer;
}

std::string kb(const std::optional<double>& bytes) { return bytes ? fixed(*bytes / 1024, 1) : "-"; }

// What the saved stage inputs saved, as one sentence.
std::string cost_text(const results::sensitivity_section& section) {
  if (!section.cost) return "";
  const results::sensitivity_cost& c = *section.cost;
  if (!c.variants || !c.variant_seconds || !c.whole_passes_estimate_seconds || !c.stages_run || !c.stages_in_whole_passes)
    return "";
  const std::string variants = std::to_string(*c.variants);
  return variants + " variants measured in " + fixed(*c.variant_seconds, 1) + " s, running " +
         std::to_string(*c.stages_run) + " of the " + std::to_string(*c.stages_in_whole_passes) +
         " stages whole forward passes would run (from the saved inputs of each site's stage); whole passes would "
         "take about " + fixed(*c.whole_passes_estimate_seconds, 1) + " s (the fp32 pass, timed, times " + variants + ").";
}

// The run's sensitivity section, read once; none for other kinds.
std::optional<results::sensitivity_section> section_of(const json& run) {
  const json* section = find(run, {"sensitivity"});
  if (!section || !section->is_object()) return std::nullopt;
  return section->get<results::sensitivity_section>();
}

}  // namespace

std::string sensitivity_markdown(const json& run) {
  const auto section = section_of(run);
  if (!section) return "";
  const auto rows = read_rows(*section);
  std::string out = "## Layer sensitivity: " + md_text(section->scheme) + "\n\n";
  out += "Each site of the scheme quantized alone, the rest fp32 (one at a time), and/or every site but it "
         "(all but one), measured against fp32; ranked by " + md_text(section->ranked_by) +
         ". Accuracy deltas are in points with their 95% paired-bootstrap interval; (n.s.): the interval contains 0.\n\n";
  const bool alone = std::any_of(rows.begin(), rows.end(), [](const auto& r) { return r.alone.present; });
  const bool all_but = std::any_of(rows.begin(), rows.end(), [](const auto& r) { return r.all_but_one.present; });
  std::vector<std::string> header{"rank", "site", "plugin", "KiB saved", "site SQNR dB"};
  if (alone) header.insert(header.end(), {"alone: KL", "alone: accuracy delta", "alone: agreement", "alone: logits SQNR dB"});
  if (all_but) header.insert(header.end(), {"all but it: KL", "all but it: accuracy delta"});
  header.push_back("error");
  std::vector<bool> numeric(header.size(), true);
  numeric[1] = numeric[2] = numeric.back() = false;
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    std::vector<std::string> c{r.rank, md_code(r.site), md_text(r.plugin), kb(r.bytes_saved), fixed(r.site_sqnr, 1)};
    if (alone)
      c.insert(c.end(), {kl_text(r.alone.kl), md_text(delta_text(r.alone)), format_percent(r.alone.agreement),
                         fixed(r.alone.logits_sqnr, 1)});
    if (all_but) c.insert(c.end(), {kl_text(r.all_but_one.kl), md_text(delta_text(r.all_but_one))});
    c.push_back(md_text(r.error));
    cells.push_back(std::move(c));
  }
  out += md_table(header, numeric, cells) + "\n";
  if (const auto cost = cost_text(*section); !cost.empty()) out += md_text(cost) + "\n\n";
  return out;
}

std::string sensitivity_html(const json& run, std::size_t run_index) {
  const auto section = section_of(run);
  if (!section) return "";
  const auto rows = read_rows(*section);
  const std::string id = "sensitivity-" + std::to_string(run_index + 1);
  std::string out = "<section class=\"card\" id=\"" + id + "\"><h2>Layer sensitivity: " +
                    html_escape(section->scheme) + "</h2>";
  std::vector<std::string> names;
  for (const auto& r : rows) names.push_back(r.site);
  const std::string prefix = plots::layer_name_prefix(names);
  out += "<p class=\"note\">Ranked by " + html_escape(section->ranked_by) +
         ". Whiskers: 95% paired-bootstrap interval of the accuracy delta." +
         (prefix.empty() ? "" : " Site names starting with \"" + html_escape(prefix) + "\" are shown without it.") +
         "</p><div class=\"plots\">";
  for (const char* mode : {"one_at_a_time", "all_but_one"}) {
    const bool alone = std::string(mode) == "one_at_a_time";
    std::vector<plots::bar_row> kl_bars, delta_bars;
    for (const auto& r : rows) {
      const variant_cells& v = alone ? r.alone : r.all_but_one;
      if (!v.present || !v.kl || !v.accuracy_delta) continue;
      const std::string label = r.rank + ". " + r.site.substr(r.site.rfind(prefix, 0) == 0 ? prefix.size() : 0);
      kl_bars.push_back({label, r.site + ": KL " + kl_text(v.kl) + ", " + kb(r.bytes_saved) + " KiB saved",
                         kl_text(v.kl), plots::palette[alone ? 0 : 1], *v.kl, std::nullopt});
      plots::bar_row d{label, r.site + ": " + delta_text(v), format_points(v.accuracy_delta),
                       plots::palette[alone ? 3 : 2], *v.accuracy_delta * 100, std::nullopt};
      if (v.ci_low && v.ci_high) d.interval = std::make_pair(*v.ci_low * 100, *v.ci_high * 100);
      delta_bars.push_back(std::move(d));
    }
    if (kl_bars.empty()) continue;
    const std::string what = alone ? "quantized alone" : "every other site quantized, this one fp32";
    out += plots::bar_chart_svg(id + "-" + mode + "-kl", "KL to fp32, " + what, "mean KL(fp32 || model)", kl_bars);
    out += plots::bar_chart_svg(id + "-" + mode + "-accuracy", "Accuracy delta, " + what,
                                "accuracy delta against fp32, points", delta_bars);
  }
  out += "</div>";
  if (const auto cost = cost_text(*section); !cost.empty()) out += "<p class=\"note\">" + html_escape(cost) + "</p>";
  return out + "</section>";
}

}  // namespace qexp::detail

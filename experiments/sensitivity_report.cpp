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

// A site's cells: its measurements as written, empty (every cell "-") for a mode not measured.
struct sensitivity_row {
  std::string rank, site, kind, plugin, error;
  std::optional<double> bytes_saved, site_sqnr;
  results::variant_measurement alone, all_but_one;
  bool has_alone = false, has_all_but_one = false;
};

std::vector<sensitivity_row> read_rows(const results::sensitivity_section& section) {
  std::vector<sensitivity_row> rows;
  for (const auto& s : section.sites) {
    sensitivity_row r;
    if (s.rank) r.rank = std::to_string(*s.rank);
    r.site = s.site, r.kind = s.kind, r.plugin = s.plugin, r.error = s.error.value_or("");
    r.bytes_saved = s.bytes_saved;
    if (s.site_sqnr_db) r.site_sqnr = s.site_sqnr_db->value;
    r.alone = s.one_at_a_time.value_or(results::variant_measurement{});
    r.all_but_one = s.all_but_one.value_or(results::variant_measurement{});
    r.has_alone = s.one_at_a_time.has_value(), r.has_all_but_one = s.all_but_one.has_value();
    rows.push_back(std::move(r));
  }
  return rows;
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
  const bool alone = std::any_of(rows.begin(), rows.end(), [](const auto& r) { return r.has_alone; });
  const bool all_but = std::any_of(rows.begin(), rows.end(), [](const auto& r) { return r.has_all_but_one; });
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
      c.insert(c.end(), {kl_text(r.alone.mean_kl_vs_fp32), md_text(format_delta_with_interval(r.alone)),
                         format_percent(r.alone.agreement_with_fp32), fixed(r.alone.logits_sqnr_db, 1)});
    if (all_but)
      c.insert(c.end(), {kl_text(r.all_but_one.mean_kl_vs_fp32), md_text(format_delta_with_interval(r.all_but_one))});
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
      const results::variant_measurement& v = alone ? r.alone : r.all_but_one;
      if (!v.mean_kl_vs_fp32 || !v.accuracy_delta_vs_fp32) continue;  // not measured in this mode, or failed
      const std::string label = r.rank + ". " + r.site.substr(r.site.rfind(prefix, 0) == 0 ? prefix.size() : 0);
      const std::string kl = kl_text(v.mean_kl_vs_fp32);
      kl_bars.push_back({label, r.site + ": KL " + kl + ", " + kb(r.bytes_saved) + " KiB saved", kl,
                         plots::palette[alone ? 0 : 1], *v.mean_kl_vs_fp32, std::nullopt});
      plots::bar_row d{label, r.site + ": " + format_delta_with_interval(v), format_points(v.accuracy_delta_vs_fp32),
                       plots::palette[alone ? 3 : 2], *v.accuracy_delta_vs_fp32 * 100, std::nullopt};
      if (const auto& ci = v.accuracy_delta_ci95) d.interval = std::make_pair((*ci)[0] * 100, (*ci)[1] * 100);
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

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

variant_cells read_variant(const json& row, const char* mode) {
  variant_cells v;
  const json* m = find(row, {mode});
  if (!m || !m->is_object()) return v;
  v.present = true;
  v.accuracy_delta = number_at(*m, {"accuracy_delta_vs_fp32"});
  if (const json* ci = find(*m, {"accuracy_delta_ci95"}); ci && ci->is_array() && ci->size() == 2 &&
                                                           (*ci)[0].is_number() && (*ci)[1].is_number()) {
    v.ci_low = (*ci)[0].get<double>();
    v.ci_high = (*ci)[1].get<double>();
  }
  const json* significant = find(*m, {"accuracy_delta_significant"});
  v.significant = significant && significant->is_boolean() && significant->get<bool>();
  v.agreement = number_at(*m, {"agreement_with_fp32"});
  v.kl = number_at(*m, {"mean_kl_vs_fp32"});
  v.logits_sqnr = number_at(*m, {"logits_sqnr_db"});
  return v;
}

std::vector<sensitivity_row> read_rows(const json& sites) {
  std::vector<sensitivity_row> rows;
  for (const auto& s : sites) {
    if (!s.is_object()) continue;
    sensitivity_row r;
    if (auto rank = number_at(s, {"rank"})) r.rank = fixed(*rank, 0);
    r.site = string_at(s, {"site"});
    r.kind = string_at(s, {"kind"});
    r.plugin = string_at(s, {"plugin"});
    r.error = string_at(s, {"error"});
    r.bytes_saved = number_at(s, {"bytes_saved"});
    r.site_sqnr = number_at(s, {"site_sqnr_db"});
    r.alone = read_variant(s, "one_at_a_time");
    r.all_but_one = read_variant(s, "all_but_one");
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
std::string cost_text(const json& section) {
  const auto variants = number_at(section, {"cost", "variants"});
  const auto seconds = number_at(section, {"cost", "variant_seconds"});
  const auto estimate = number_at(section, {"cost", "whole_passes_estimate_seconds"});
  const auto run = number_at(section, {"cost", "stages_run"});
  const auto whole = number_at(section, {"cost", "stages_in_whole_passes"});
  if (!variants || !seconds || !estimate || !run || !whole) return "";
  return fixed(*variants, 0) + " variants measured in " + fixed(*seconds, 1) + " s, running " + fixed(*run, 0) +
         " of the " + fixed(*whole, 0) + " stages whole forward passes would run (from the saved inputs of each "
         "site's stage); whole passes would take about " + fixed(*estimate, 1) + " s (the fp32 pass, timed, times " +
         fixed(*variants, 0) + ").";
}

const json* section_of(const json& run) {
  const json* section = find(run, {"sensitivity"});
  return section && section->is_object() ? section : nullptr;
}

}  // namespace

std::string sensitivity_markdown(const json& run) {
  const json* section = section_of(run);
  if (!section) return "";
  const json* sites = find(*section, {"sites"});
  const auto rows = read_rows(sites && sites->is_array() ? *sites : json::array());
  std::string out = "## Layer sensitivity: " + md_text(string_at(*section, {"scheme"})) + "\n\n";
  out += "Each site of the scheme quantized alone, the rest fp32 (one at a time), and/or every site but it "
         "(all but one), measured against fp32; ranked by " + md_text(string_at(*section, {"ranked_by"})) +
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
  const json* section = section_of(run);
  if (!section) return "";
  const json* sites = find(*section, {"sites"});
  const auto rows = read_rows(sites && sites->is_array() ? *sites : json::array());
  const std::string id = "sensitivity-" + std::to_string(run_index + 1);
  std::string out = "<section class=\"card\" id=\"" + id + "\"><h2>Layer sensitivity: " +
                    html_escape(string_at(*section, {"scheme"})) + "</h2>";
  std::vector<std::string> names;
  for (const auto& r : rows) names.push_back(r.site);
  const std::string prefix = plots::layer_name_prefix(names);
  out += "<p class=\"note\">Ranked by " + html_escape(string_at(*section, {"ranked_by"})) +
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

// Results files: loading and checking results.json, the CSV, the terminal table, summary.md and
// the report files (written atomically, qexp/atomic_file.h). The HTML report lives in results_html.cpp.
#include "results_report.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "qexp/errors.h"
#include "qexp/input_file.h"

namespace qexp {

using nlohmann::json;

namespace detail {

const json* find(const json& j, std::initializer_list<const char*> path) {
  const json* at = &j;
  for (const char* key : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

std::optional<double> number_at(const json& j, std::initializer_list<const char*> path) {
  const json* v = find(j, path);
  if (!v || !v->is_number()) return std::nullopt;
  double d = v->get<double>();
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

std::string string_at(const json& j, std::initializer_list<const char*> path) {
  const json* v = find(j, path);
  if (!v || v->is_null()) return {};
  if (v->is_string()) return v->get<std::string>();
  return v->dump();
}

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string fixed(const std::optional<double>& value, int decimals, const std::string& missing) {
  return value ? fixed(*value, decimals) : missing;
}

std::string with_thousands(double n) {
  std::string digits = fixed(n, 0);
  std::string out;
  int count = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (count && count % 3 == 0 && std::isdigit(static_cast<unsigned char>(*it))) out += ',';
    out += *it;
    ++count;
  }
  return {out.rbegin(), out.rend()};
}

std::string format_ms(const std::optional<double>& ms) {
  if (!ms) return "-";
  return fixed(*ms, *ms >= 100 ? 1 : *ms >= 1 ? 2 : 3);
}
std::string format_percent(const std::optional<double>& v) { return v ? fixed(*v * 100, 2) + "%" : "-"; }
std::string format_points(const std::optional<double>& v) {
  if (!v) return "-";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%+.2f", *v * 100);
  // "-0.00" for a tiny negative delta reads as a loss that is not there.
  return std::string(buffer) == "-0.00" ? "+0.00" : buffer;
}
std::string format_delta(const result_row& row) {
  const bool noise = !row.is_baseline && row.accuracy_delta_significant && !*row.accuracy_delta_significant;
  return format_points(row.accuracy_delta) + (noise ? " (n.s.)" : "");
}
std::string format_delta_with_interval(const results::accuracy_section& a) {
  if (!a.accuracy_delta_vs_fp32) return "-";
  std::string out = format_points(a.accuracy_delta_vs_fp32);
  if (!a.accuracy_delta_ci95) return out;
  out += " [" + format_points((*a.accuracy_delta_ci95)[0]) + ", " + format_points((*a.accuracy_delta_ci95)[1]) + "]";
  return a.accuracy_delta_significant.value_or(false) ? out : out + " (n.s.)";
}
std::string format_times(const std::optional<double>& v, int decimals, const std::string& sign) {
  return v ? fixed(*v, decimals) + sign : "-";
}

namespace {

std::string plural(double n, const char* one, const char* many) {
  // Whole counts as integers; one beyond a long long (a corrupt file) as its digits, not a wrapped cast.
  std::string count = n != std::floor(n) ? fixed(n, 1) : std::abs(n) < 1e15 ? std::to_string(static_cast<long long>(n))
                                                                             : fixed(n, 0);
  return count + " " + (n == 1 ? one : many);
}

}  // namespace

std::string latency_setting(const results::latency_entry& entry, bool dataset) {
  std::vector<std::string> parts;
  if (auto b = as_number(entry.batch_size)) parts.push_back("batch " + fixed(*b, 0));
  if (auto t = as_number(entry.threads)) parts.push_back(plural(*t, "thread", "threads"));
  if (dataset) {
    if (auto s = as_number(entry.sentences)) parts.push_back(plural(*s, "sentence", "sentences"));
    if (entry.mean_tokens) parts.push_back(fixed(*entry.mean_tokens, 1) + " mean tokens");
  } else if (auto k = as_number(entry.tokens)) {
    parts.push_back(plural(*k, "token", "tokens"));
  }
  std::string text;
  for (const auto& p : parts) text += (text.empty() ? "" : ", ") + p;
  return text;
}

const std::vector<results::latency_entry>& latency_list(const results::scheme_result& result, const std::string& kind) {
  static const std::vector<results::latency_entry> none;
  if (!result.latency) return none;
  return kind == "probe" ? result.latency->probe : kind == "dataset" ? result.latency->dataset : none;
}

std::optional<double> breakdown_bytes(const results::scheme_result& result, const std::string& bucket) {
  if (!result.size || !result.size->breakdown) return std::nullopt;
  const auto it = result.size->breakdown->find(bucket);
  return it == result.size->breakdown->end() ? std::nullopt : std::optional<double>(static_cast<double>(it->second));
}

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t i_end = i, j_end = j;
      while (i_end < a.size() && std::isdigit(static_cast<unsigned char>(a[i_end]))) ++i_end;
      while (j_end < b.size() && std::isdigit(static_cast<unsigned char>(b[j_end]))) ++j_end;
      auto na = a.substr(i, i_end - i), nb = b.substr(j, j_end - j);
      na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
      nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = i_end;
      j = j_end;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::vector<std::string> breakdown_buckets(const std::vector<result_row>& rows) {
  std::vector<std::string> buckets;
  for (const auto& r : rows) {
    if (!r.result.size || !r.result.size->breakdown) continue;
    for (const auto& [bucket, bytes] : *r.result.size->breakdown) {
      if (std::find(buckets.begin(), buckets.end(), bucket) == buckets.end()) buckets.push_back(bucket);
    }
  }
  const std::vector<std::string> known{"embeddings", "linear_weights", "linear_bias", "linear_scales", "other", "header"};
  auto rank = [&known](const std::string& k) { return std::find(known.begin(), known.end(), k) - known.begin(); };
  std::stable_sort(buckets.begin(), buckets.end(), [&rank](const std::string& a, const std::string& b) {
    return rank(a) != rank(b) ? rank(a) < rank(b) : a < b;
  });
  return buckets;
}

namespace {

// The entry of a latency list at the smallest batch, then the fewest threads: the number a
// summary quotes, since it is the one every scheme and machine can be compared on.
std::optional<results::latency_entry> headline_entry(const results::scheme_result& result, const char* kind) {
  const results::latency_entry* best = nullptr;
  auto key = [](const results::latency_entry& e) {
    return std::make_pair(as_number(e.batch_size).value_or(1e18), as_number(e.threads).value_or(1e18));
  };
  for (const auto& entry : latency_list(result, kind)) {
    if (!best || key(entry) < key(*best)) best = &entry;
  }
  return best ? std::optional<results::latency_entry>(*best) : std::nullopt;
}

std::string folder_name(const json& run) {
  auto dir = string_at(run, {"experiment", "output_dir"});
  if (dir.empty()) return {};
  std::filesystem::path p(dir);
  if (!p.has_filename()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

std::vector<result_row> collect_rows(const std::vector<json>& runs) {
  // Runs are told apart by experiment name, and by results folder too where names repeat.
  std::map<std::string, int> name_counts;
  for (const auto& run : runs) ++name_counts[string_at(run, {"experiment", "name"})];
  std::vector<result_row> rows;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const json& run = runs[r];
    std::string experiment = string_at(run, {"experiment", "name"});
    std::string run_name;
    if (runs.size() > 1) {
      run_name = experiment.empty() ? "run " + std::to_string(r + 1) : experiment;
      if (name_counts[experiment] > 1) {
        auto folder = folder_name(run);
        run_name += "/" + (folder.empty() ? std::to_string(r + 1) : folder);
      }
    }
    const json* rows_json = find(run, {"results"});
    if (!rows_json || !rows_json->is_array()) continue;
    std::size_t index = 0;
    for (const auto& result : *rows_json) {
      ++index;
      if (!result.is_object()) continue;
      result_row row;
      row.run_index = r;
      row.run_name = run_name;
      row.experiment = experiment;
      row.result = result.get<results::scheme_result>();
      const results::scheme_result& typed = row.result;
      row.plugin = typed.plugin;
      row.label = typed.label;
      if (row.label.empty()) row.label = row.plugin.empty() ? "result " + std::to_string(index) : row.plugin;
      row.plugin_version = typed.plugin_version.value_or("");
      row.status = typed.status;
      row.ok = typed.ok();
      row.error = typed.error.value.value_or("");
      std::replace(row.error.begin(), row.error.end(), '\n', ' ');
      row.is_baseline = typed.is_baseline;
      if (typed.size) {
        row.size_bytes = as_number(typed.size->file_bytes);
        row.size_ratio = typed.size->ratio_to_fp32;
      }
      row.headline_probe = headline_entry(typed, "probe");
      row.headline_dataset = headline_entry(typed, "dataset");
      if (row.headline_probe) {
        row.p50_ms = row.headline_probe->p50_ms;
        row.speedup = row.headline_probe->speedup_vs_fp32;
      }
      if (const auto& a = typed.accuracy) {
        row.accuracy = a->accuracy;
        row.accuracy_delta = a->accuracy_delta_vs_fp32;
        row.accuracy_delta_significant = a->accuracy_delta_significant;
        row.agreement = a->agreement_with_fp32;
        row.mean_kl = a->mean_kl_vs_fp32;
        row.max_abs_dp = a->max_abs_dp_vs_fp32;
        row.probe_total_abs_dp = a->probe_total_abs_dp;
      }
      // layer_error is written worst first, but a hand-edited file may not be: take the minimum.
      for (const auto& layer : typed.layer_error.value_or(std::vector<results::layer_error_entry>())) {
        const auto sqnr = layer.sqnr_db.value;
        if (!sqnr) continue;
        if (!row.worst_sqnr_db || *sqnr < *row.worst_sqnr_db) {
          row.worst_sqnr_db = sqnr;
          row.worst_layer = layer.layer;
        }
      }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

}  // namespace detail

using detail::fixed;
using detail::format_ms;
using detail::format_percent;
using detail::format_points;
using detail::format_times;
using detail::result_row;
using detail::with_thousands;
using detail::md_code;
using detail::md_row;
using detail::md_table;
using detail::md_text;

// ---------------------------------------------------------------------------------------------
// Loading

nlohmann::json load_results(const std::filesystem::path& file) {
  const std::string text = read_regular_file(file, "results file");
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    // nlohmann's message already carries the line, column and the token it did not expect.
    std::string what = e.what();
    auto colon = what.find("] ");
    throw input_error(file.string() + ": not valid JSON: " + (colon == std::string::npos ? what : what.substr(colon + 2)));
  }
  if (!doc.is_object()) {
    throw input_error(file.string() + ": expected a JSON object with \"schema\": \"" + results_schema_id + "\", found a " +
                      doc.type_name());
  }
  const json* schema = detail::find(doc, {"schema"});
  if (!schema || !schema->is_string() || schema->get<std::string>() != results_schema_id) {
    throw input_error(file.string() + ": key 'schema': expected \"" + results_schema_id + "\", found " +
                      (schema ? schema->dump() : std::string("nothing")));
  }
  const json* results = detail::find(doc, {"results"});
  if (!results || !results->is_array()) {
    throw input_error(file.string() + ": key 'results': expected an array, found " +
                      (results ? std::string(results->type_name()) : std::string("nothing")));
  }
  return doc;
}

std::vector<std::filesystem::path> find_results_files(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw input_error(path.string() + ": no such file or folder");
  if (!fs::is_directory(path, ec)) return {path};
  if (fs::is_regular_file(path / "results.json", ec)) return {path / "results.json"};
  std::vector<fs::path> found;
  for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().filename() == "results.json") found.push_back(it->path());
  }
  if (ec) throw input_error(path.string() + ": cannot search the folder (" + ec.message() + ")");
  if (found.empty()) throw input_error(path.string() + ": no results.json in this folder or below it");
  std::sort(found.begin(), found.end());
  return found;
}

// ---------------------------------------------------------------------------------------------
// CSV

std::string csv_field(const std::string& text) {
  bool needs_quotes = text.find_first_of(",\"\r\n") != std::string::npos ||
                      (!text.empty() && (text.front() == ' ' || text.back() == ' '));
  if (!needs_quotes) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

namespace {

// Numbers keep their JSON spelling (shortest round trip); anything else is an empty cell.
std::string csv_number(const json* value) {
  if (!value || !value->is_number()) return {};
  if (value->is_number_float() && !std::isfinite(value->get<double>())) return {};
  return value->dump();
}

template <class T>
std::string csv_number(const std::optional<T>& value) {
  if (!value) return {};
  const json j = *value;
  return csv_number(&j);
}

using setting_key = std::pair<double, double>;  // batch size, threads

std::vector<setting_key> latency_settings_of(const std::vector<result_row>& rows, const char* kind) {
  std::set<setting_key> keys;
  for (const auto& row : rows) {
    for (const auto& e : detail::latency_list(row.result, kind)) {
      auto b = detail::as_number(e.batch_size), t = detail::as_number(e.threads);
      if (b && t) keys.insert({*b, *t});
    }
  }
  return {keys.begin(), keys.end()};
}

const results::latency_entry* entry_at(const results::scheme_result& result, const char* kind, const setting_key& key) {
  for (const auto& e : detail::latency_list(result, kind)) {
    if (detail::as_number(e.batch_size) == key.first && detail::as_number(e.threads) == key.second) return &e;
  }
  return nullptr;
}

// The run column of the CSV: the results folder's name (its time stamp), else the run's position.
std::string folder_name_or_index(const std::vector<json>& runs, std::size_t index) {
  auto folder = detail::folder_name(runs[index]);
  return folder.empty() ? std::to_string(index + 1) : folder;
}

std::string setting_suffix(const setting_key& key) {
  return "_b" + fixed(key.first, 0) + "_t" + fixed(key.second, 0);
}

}  // namespace

std::string results_csv(const std::vector<json>& runs) {
  auto rows = detail::collect_rows(runs);
  auto probe_keys = latency_settings_of(rows, "probe");
  auto dataset_keys = latency_settings_of(rows, "dataset");

  std::vector<std::string> header{"run", "experiment", "label", "plugin", "plugin_version", "status", "is_baseline",
                                  "layers_quantized", "size_bytes", "size_ratio"};
  for (const auto& k : probe_keys) {
    header.push_back("probe_p50_ms" + setting_suffix(k));
    header.push_back("probe_p99_ms" + setting_suffix(k));
    header.push_back("probe_tokens" + setting_suffix(k));
  }
  for (const auto& k : dataset_keys) {
    header.push_back("dataset_p50_ms" + setting_suffix(k));
    header.push_back("dataset_mean_tokens" + setting_suffix(k));
  }
  for (const char* h : {"speedup", "accuracy", "accuracy_delta", "agreement", "mean_kl", "max_abs_dp",
                        "expected_calibration_error", "probe_total_abs_dp", "worst_layer", "worst_sqnr_db", "error"}) {
    header.push_back(h);
  }

  std::string out;
  auto emit = [&out](const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) out += (i ? "," : "") + csv_field(cells[i]);
    out += "\n";
  };
  emit(header);
  for (const auto& row : rows) {
    const results::scheme_result& r = row.result;
    const results::size_section size = r.size.value_or(results::size_section());
    std::string run_id = folder_name_or_index(runs, row.run_index);
    std::vector<std::string> cells{run_id, row.experiment, row.label, row.plugin, row.plugin_version, row.status,
                                   row.is_baseline ? "true" : "false", csv_number(r.layers_quantized),
                                   csv_number(size.file_bytes), csv_number(size.ratio_to_fp32)};
    for (const auto& k : probe_keys) {
      const results::latency_entry* e = entry_at(r, "probe", k);
      cells.push_back(e ? csv_number(e->p50_ms) : "");
      cells.push_back(e ? csv_number(e->p99_ms) : "");
      cells.push_back(e ? csv_number(e->tokens) : "");
    }
    for (const auto& k : dataset_keys) {
      const results::latency_entry* e = entry_at(r, "dataset", k);
      cells.push_back(e ? csv_number(e->p50_ms) : "");
      cells.push_back(e ? csv_number(e->mean_tokens) : "");
    }
    cells.push_back(row.headline_probe ? csv_number(row.headline_probe->speedup_vs_fp32) : "");
    const results::accuracy_section a = r.accuracy.value_or(results::accuracy_section());
    for (const auto& v : {a.accuracy, a.accuracy_delta_vs_fp32, a.agreement_with_fp32, a.mean_kl_vs_fp32,
                          a.max_abs_dp_vs_fp32, a.expected_calibration_error, a.probe_total_abs_dp})
      cells.push_back(csv_number(v));
    cells.push_back(row.worst_layer);
    cells.push_back(row.worst_sqnr_db ? json(*row.worst_sqnr_db).dump() : "");
    cells.push_back(row.error);
    emit(cells);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The summary table, shared by the terminal and Markdown renderers

namespace {

// Two decimals, or three significant digits for parts too small to show that way (the scales of
// a tiny model are 56 bytes).
std::string format_mb(const std::optional<double>& bytes) {
  if (!bytes) return "-";
  if (*bytes == 0) return "0";
  double mb = std::abs(*bytes) / 1e6;
  int decimals = std::clamp(2 - static_cast<int>(std::floor(std::log10(mb))), 2, 6);
  return fixed(*bytes / 1e6, decimals);
}

struct summary_cells {
  std::vector<std::string> header;
  std::vector<bool> numeric;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> failures;  // per row: empty, or "FAILED: error"
  std::vector<std::string> notes;
};

summary_cells make_summary(const std::vector<result_row>& rows, bool always_show_setting) {
  summary_cells t;
  bool several_runs = std::any_of(rows.begin(), rows.end(), [](const result_row& r) { return !r.run_name.empty(); });
  std::set<std::string> settings;
  for (const auto& row : rows) {
    if (row.headline_probe) settings.insert(detail::latency_setting(*row.headline_probe, false));
  }
  bool setting_column = always_show_setting || settings.size() > 1;
  if (several_runs) t.header.push_back("run");
  for (const char* h : {"scheme", "size MB", "ratio", "p50 ms", "speedup", "accuracy", "delta pp", "agreement"}) {
    t.header.push_back(h);
  }
  if (setting_column) t.header.push_back("latency at");
  for (const auto& h : t.header) t.numeric.push_back(h != "run" && h != "scheme" && h != "latency at");

  for (const auto& row : rows) {
    std::vector<std::string> cells;
    if (several_runs) cells.push_back(row.run_name);
    cells.push_back(row.label + (row.is_baseline ? " (baseline)" : ""));
    cells.push_back(format_mb(row.size_bytes));
    cells.push_back(format_times(row.size_ratio, 3));
    cells.push_back(format_ms(row.p50_ms));
    cells.push_back(format_times(row.speedup, 2));
    cells.push_back(format_percent(row.accuracy));
    cells.push_back(format_delta(row));
    cells.push_back(format_percent(row.agreement));
    if (setting_column) cells.push_back(row.headline_probe ? detail::latency_setting(*row.headline_probe, false) : "-");
    t.rows.push_back(std::move(cells));
    t.failures.push_back(row.ok ? "" : "FAILED" + (row.status.empty() || row.status == "failed" ? "" : " (" + row.status + ")") +
                                            ": " + (row.error.empty() ? "no error message recorded" : row.error));
  }
  if (!setting_column && settings.size() == 1) {
    t.notes.push_back("p50 ms: probe sentence at " + *settings.begin() + "; speedup: against fp32 in the same run.");
  } else {
    t.notes.push_back("p50 ms: probe sentence at the smallest batch and fewest threads measured; speedup: against fp32 in the same run.");
  }
  t.notes.push_back("size MB: checkpoint file in 10^6 bytes, ratio to fp32; delta pp: accuracy change in percentage points, "
                    "(n.s.) when its 95% paired-bootstrap interval contains 0; agreement: share of predictions equal to fp32.");
  return t;
}

// Display width in code points: labels may hold UTF-8, and a byte count would skew the columns.
std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad(const std::string& s, std::size_t width, bool right) {
  std::size_t w = display_width(s);
  std::string fill(width > w ? width - w : 0, ' ');
  return right ? fill + s : s + fill;
}

}  // namespace

namespace detail {

// Markdown cell text: the characters that would end a cell or start markup are escaped.
std::string md_text(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      out += ' ';
      continue;
    }
    if (std::strchr("\\`*_[]<>|&~", c)) out += '\\';
    out += c;
  }
  return out;
}

// A name in a code span; `|` still needs its escape inside a GFM table.
std::string md_code(const std::string& text) {
  if (text.find('`') != std::string::npos || text.find('\n') != std::string::npos) return md_text(text);
  std::string out = "`";
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out + "`";
}

std::string md_row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& c : cells) out += " " + c + " |";
  return out + "\n";
}

std::string md_table(const std::vector<std::string>& header, const std::vector<bool>& numeric,
                     const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::string> escaped;
  std::vector<std::string> rule;
  for (std::size_t i = 0; i < header.size(); ++i) {
    escaped.push_back(md_text(header[i]));
    rule.push_back(i < numeric.size() && numeric[i] ? "---:" : "---");
  }
  std::string out = md_row(escaped) + md_row(rule);
  for (const auto& r : rows) out += md_row(r);
  return out;
}

}  // namespace detail

namespace {

}  // namespace

std::string summary_table(const std::vector<json>& runs) {
  auto rows = detail::collect_rows(runs);
  if (rows.empty()) return "(no results)\n";
  auto t = make_summary(rows, false);
  // Labels and errors are user text: a terminal escape sequence in one must not reach the terminal.
  auto printable = [](std::string& text) {
    for (char& c : text) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = '?';
      if (c == '\t') c = ' ';
    }
  };
  for (auto& row : t.rows) std::for_each(row.begin(), row.end(), printable);
  std::for_each(t.failures.begin(), t.failures.end(), printable);
  std::vector<std::size_t> widths(t.header.size());
  for (std::size_t c = 0; c < t.header.size(); ++c) widths[c] = display_width(t.header[c]);
  std::size_t label_columns = t.header[0] == "run" ? 2 : 1;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    // A failed row prints its error across the measured columns; only its names count for widths.
    std::size_t counted = t.failures[r].empty() ? t.rows[r].size() : label_columns;
    for (std::size_t c = 0; c < counted; ++c) widths[c] = std::max(widths[c], display_width(t.rows[r][c]));
  }
  auto line = [&](const std::vector<std::string>& cells, const std::string& failure) {
    std::string out;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      if (!failure.empty() && c == label_columns) {
        out += "  " + failure;
        break;
      }
      out += (c ? "  " : "") + pad(cells[c], widths[c], t.numeric[c]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(t.header, "");
  std::size_t total = 0;
  for (auto w : widths) total += w;
  out += std::string(total + 2 * (widths.size() - 1), '-') + "\n";
  for (std::size_t r = 0; r < t.rows.size(); ++r) out += line(t.rows[r], t.failures[r]);
  for (const auto& note : t.notes) out += note + "\n";
  return out;
}

namespace {

std::string md_summary_table(const std::vector<result_row>& rows) {
  auto t = make_summary(rows, true);
  std::vector<std::vector<std::string>> cells;
  std::size_t label_columns = t.header[0] == "run" ? 2 : 1;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    std::vector<std::string> row;
    for (std::size_t c = 0; c < t.rows[r].size(); ++c) {
      if (!t.failures[r].empty() && c >= label_columns) {
        row.push_back(c == label_columns ? "**" + md_text(t.failures[r]) + "**" : "");
      } else {
        row.push_back(md_text(t.rows[r][c]));
      }
    }
    cells.push_back(std::move(row));
  }
  std::string out = md_table(t.header, t.numeric, cells) + "\n";
  for (const auto& note : t.notes) out += md_text(note) + "  \n";
  return out + "\n";
}

}  // namespace

namespace detail {

run_view run_view_of(const json& run, const std::vector<result_row>& rows, std::size_t run_index) {
  const auto doc = run.get<results::document>();
  const results::experiment_section& e = doc.experiment;
  run_view v;
  v.title = e.name.empty() ? "run " + std::to_string(run_index + 1) : e.name;
  v.folder = folder_name(run);
  v.description = e.description;
  // Only a `complete: false` written by qexp marks a run incomplete; a file without the key is not.
  const json* complete = find(run, {"experiment", "complete"});
  v.incomplete = complete && *complete == false;
  v.experiment = {{"config", e.config_file, true},
                  {"results folder", e.output_dir, true},
                  {"started", e.started_at},
                  {"finished", e.finished_at.value_or("")},
                  {"wall time", e.wall_seconds ? fixed(*e.wall_seconds, 1) + " s" : ""}};

  if (const auto& env = doc.environment) {
    std::string cpu = env->cpu_model;
    if (env->logical_cpus) cpu += " (" + std::to_string(*env->logical_cpus) + " logical CPUs)";
    std::string isa;
    for (const auto& [flag, present] : env->isa) isa += (isa.empty() ? "" : ", ") + flag + (present ? " yes" : " no");
    v.environment = {{"CPU", cpu},
                     {"ISA", isa},
                     {"torch threads", env->torch_threads ? std::to_string(*env->torch_threads) : ""},
                     {"libtorch", env->libtorch},
                     {"oneDNN", env->onednn},
                     {"BLAS", env->blas},
                     {"qexp", env->qexp_version},
                     {"git commit", env->git_commit},
                     {"host", env->hostname},
                     {"OS", env->os}};
  }
  auto joined = [](const std::string& path, const std::vector<std::string>& parts) {
    std::string text;
    for (const auto& p : parts) text += (text.empty() ? "" : ", ") + p;
    return path + (text.empty() ? "" : ": " + text);
  };
  if (const auto& m = doc.model) {
    std::vector<std::string> parts;
    if (m->dim) parts.push_back("dim " + std::to_string(*m->dim));
    if (m->n_layers) parts.push_back(std::to_string(*m->n_layers) + " transformer layers");
    if (m->linear_layers) parts.push_back(std::to_string(*m->linear_layers) + " Linear layers");
    if (m->parameters) parts.push_back(with_thousands(static_cast<double>(*m->parameters)) + " parameters");
    v.inputs.push_back({"model", joined(m->path, parts)});
  }
  if (const auto& d = doc.data) {
    std::vector<std::string> parts;
    if (d->sentences) parts.push_back(std::to_string(*d->sentences) + " sentences");
    if (d->max_length) parts.push_back("max length " + std::to_string(*d->max_length) + " tokens");
    if (d->mean_tokens) parts.push_back(fixed(*d->mean_tokens, 1) + " tokens on average");
    v.inputs.push_back({"data", joined(d->path, parts)});
  }

  std::vector<const result_row*> mine;
  for (const auto& r : rows) {
    if (r.run_index == run_index) mine.push_back(&r);
  }

  // Latency: every measured setting, with batch, threads and sequence length beside each number.
  v.latency.header = {"scheme", "input", "batch", "threads", "tokens", "warm-up + timed", "p50 ms", "p90 ms", "p99 ms",
                      "mean ms", "stdev ms", "sequences/s", "speedup"};
  v.latency.numeric = {false, false, true, true, true, true, true, true, true, true, true, true, true};
  for (const result_row* r : mine) {
    for (const char* kind : {"probe", "dataset"}) {
      const bool dataset = std::string(kind) == "dataset";
      for (const auto& l : latency_list(r->result, kind)) {
        v.latency.rows.push_back(
            {r->label, kind, fixed(as_number(l.batch_size), 0), fixed(as_number(l.threads), 0),
             dataset ? fixed(l.mean_tokens, 1) + " mean" : fixed(as_number(l.tokens), 0),
             dataset ? fixed(as_number(l.sentences), 0) + " sentences"
                     : fixed(as_number(l.warmup), 0) + " + " + fixed(as_number(l.iterations), 0),
             format_ms(l.p50_ms), format_ms(l.p90_ms), format_ms(l.p99_ms), format_ms(l.mean_ms), format_ms(l.stdev_ms),
             fixed(l.throughput_per_s, 1), format_times(l.speedup_vs_fp32, 2)});
      }
    }
  }

  v.accuracy.header = {"scheme", "sentences", "accuracy", "delta pp", "95% CI pp", "McNemar p", "agreement",
                       "mean KL", "max |dp|", "ECE", "probe sum |dp|"};
  v.accuracy.numeric = {false, true, true, true, true, true, true, true, true, true, true};
  for (const result_row* r : mine) {
    if (!r->result.accuracy) continue;
    const results::accuracy_section& a = *r->result.accuracy;
    const auto& ci = a.accuracy_delta_ci95;
    v.accuracy.rows.push_back({r->label, fixed(as_number(a.sentences), 0), format_percent(a.accuracy), format_delta(*r),
                               ci ? "[" + format_points((*ci)[0]) + ", " + format_points((*ci)[1]) + "]" : "-",
                               fixed(a.mcnemar_p, 3), format_percent(a.agreement_with_fp32),
                               fixed(a.mean_kl_vs_fp32, 6), fixed(a.max_abs_dp_vs_fp32, 4),
                               fixed(a.expected_calibration_error, 4), fixed(a.probe_total_abs_dp, 4)});
  }

  std::vector<result_row> sized;
  for (const result_row* r : mine) {
    if (r->result.size) sized.push_back(*r);
  }
  const auto buckets = breakdown_buckets(sized);
  v.size.header = {"scheme", "file MB", "ratio"};
  for (const auto& b : buckets) v.size.header.push_back(b + " MB");
  v.size.numeric.assign(v.size.header.size(), true);
  v.size.numeric[0] = false;
  for (const auto& r : sized) {
    std::vector<std::string> cells{r.label, format_mb(r.size_bytes), format_times(r.size_ratio, 3)};
    for (const auto& b : buckets) cells.push_back(format_mb(breakdown_bytes(r.result, b)));
    v.size.rows.push_back(std::move(cells));
  }

  for (const result_row* r : mine) {
    if (!r->result.layer_error || r->result.layer_error->empty()) continue;
    const auto& layers = *r->result.layer_error;
    std::vector<const results::layer_error_entry*> sorted;
    for (const auto& l : layers) {
      if (l.sqnr_db) sorted.push_back(&l);
    }
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto* a, const auto* b) { return *a->sqnr_db.value < *b->sqnr_db.value; });
    sorted.resize(std::min<std::size_t>(sorted.size(), 5));
    run_view::worst_layers w{r->label, layers.size(), {{"layer", "SQNR dB", "NMSE"}, {false, true, true}, 0, {}}};
    for (const auto* l : sorted) w.table.rows.push_back({l->layer, fixed(l->sqnr_db.value, 2), fixed(l->nmse.value, 6)});
    v.layers.push_back(std::move(w));
  }

  for (const result_row* r : mine) {
    if (!r->ok) v.failures.push_back({r->label + " (" + r->plugin + ")", r->error.empty() ? "no error message recorded" : r->error});
  }
  if (!e.resolved_config.is_null()) v.resolved_config = e.resolved_config.dump(2);
  return v;
}

}  // namespace detail

namespace {

// summary.md's printer of a run_view.
std::string md_cells_table(const detail::text_table& t) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : t.rows) {
    std::vector<std::string> cells;
    for (std::size_t i = 0; i < r.size(); ++i) cells.push_back(static_cast<int>(i) == t.code_column ? md_code(r[i]) : md_text(r[i]));
    rows.push_back(std::move(cells));
  }
  return md_table(t.header, t.numeric, rows);
}

std::string md_run_section(const detail::run_view& v) {
  std::string out = "## " + md_text(v.title) + (v.folder.empty() ? "" : " (" + md_text(v.folder) + ")") + "\n\n";
  if (!v.description.empty()) out += md_text(v.description) + "\n\n";
  if (v.incomplete) {
    out += "> **Incomplete run**: results.json was written before the run finished (still running, or interrupted); "
           "results may be missing.\n\n";
  }
  auto value = [](const detail::fact& f) { return f.code ? md_code(f.value) : md_text(f.value); };
  for (const auto& f : v.experiment) {
    if (!f.value.empty()) out += "- " + f.key + ": " + value(f) + "\n";
  }
  out += "\n";
  if (!v.environment.empty()) {
    out += "### Environment\n\n| | |\n| --- | --- |\n";
    for (const auto& f : v.environment) {
      if (!f.value.empty()) out += "| " + f.key + " | " + value(f) + " |\n";
    }
    out += "\n";
  }
  if (!v.inputs.empty()) {
    out += "### Model and data\n\n";
    for (const auto& f : v.inputs) out += "- " + f.key + " " + value(f) + "\n";
    out += "\n";
  }
  if (!v.latency.rows.empty()) {
    out += "### Latency\n\n" + md_cells_table(v.latency) +
           "\nprobe: one sentence timed repeatedly after warm-up; dataset: dev sentences, one timed call each.\n\n";
  }
  if (!v.accuracy.rows.empty()) out += "### Accuracy\n\n" + md_cells_table(v.accuracy) + "\n";
  if (!v.size.rows.empty()) out += "### Size\n\n" + md_cells_table(v.size) + "\n";
  if (!v.layers.empty()) out += "### Worst layers per scheme\n\n";
  for (const auto& w : v.layers) {
    out += "**" + md_text(w.scheme) + "** (" + std::to_string(w.table.rows.size()) + " of " + std::to_string(w.layers) +
           " layers, lowest SQNR first)\n\n" + md_cells_table(w.table) + "\n";
  }
  if (!v.failures.empty()) {
    out += "### Failures\n\n";
    for (const auto& f : v.failures) out += "- **" + md_text(f.key) + "**: " + md_text(f.value) + "\n";
    out += "\n";
  }
  return out;
}

}  // namespace

std::string summary_markdown(const std::vector<json>& runs) {
  auto rows = detail::collect_rows(runs);
  std::set<std::string> names;
  for (const auto& run : runs) names.insert(detail::string_at(run, {"experiment", "name"}));
  std::string title;
  for (const auto& n : names) title += (title.empty() ? "" : ", ") + (n.empty() ? std::string("unnamed") : n);
  std::string out = "# qexp results: " + md_text(title) + "\n\n";
  if (runs.size() > 1) out += std::to_string(runs.size()) + " runs compared.\n\n";
  out += rows.empty() ? "No results.\n\n" : md_summary_table(rows);
  for (std::size_t r = 0; r < runs.size(); ++r) out += detail::sensitivity_markdown(runs[r]) + detail::autotune_markdown(runs[r]) + md_run_section(detail::run_view_of(runs[r], rows, r));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Files

void write_report_files(const std::vector<json>& runs, const std::filesystem::path& out_dir) {
  write_text_atomically(out_dir / "results.csv", results_csv(runs));
  write_text_atomically(out_dir / "summary.md", summary_markdown(runs));
  write_text_atomically(out_dir / "report.html", report_html(runs));
}

void rebuild_report(const std::filesystem::path& run_dir) {
  write_report_files({load_results(run_dir / "results.json")}, run_dir);
}

}  // namespace qexp

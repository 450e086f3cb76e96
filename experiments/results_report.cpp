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

std::string latency_setting(const json& entry, bool dataset) {
  std::vector<std::string> parts;
  if (auto b = number_at(entry, {"batch_size"})) parts.push_back("batch " + fixed(*b, 0));
  if (auto t = number_at(entry, {"threads"})) parts.push_back(plural(*t, "thread", "threads"));
  if (dataset) {
    if (auto s = number_at(entry, {"sentences"})) parts.push_back(plural(*s, "sentence", "sentences"));
    if (auto m = number_at(entry, {"mean_tokens"})) parts.push_back(fixed(*m, 1) + " mean tokens");
  } else if (auto k = number_at(entry, {"tokens"})) {
    parts.push_back(plural(*k, "token", "tokens"));
  }
  std::string text;
  for (const auto& p : parts) text += (text.empty() ? "" : ", ") + p;
  return text;
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
    const json* breakdown = find(*r.result, {"size", "breakdown"});
    if (!breakdown || !breakdown->is_object()) continue;
    for (auto it = breakdown->begin(); it != breakdown->end(); ++it) {
      if (std::find(buckets.begin(), buckets.end(), it.key()) == buckets.end()) buckets.push_back(it.key());
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
const json* headline_entry(const json& result, const char* kind) {
  const json* list = find(result, {"latency", kind});
  if (!list || !list->is_array()) return nullptr;
  const json* best = nullptr;
  auto key = [](const json& e) {
    return std::make_pair(number_at(e, {"batch_size"}).value_or(1e18), number_at(e, {"threads"}).value_or(1e18));
  };
  for (const auto& entry : *list) {
    if (!entry.is_object()) continue;
    if (!best || key(entry) < key(*best)) best = &entry;
  }
  return best;
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
    const json* results = find(run, {"results"});
    if (!results || !results->is_array()) continue;
    std::size_t index = 0;
    for (const auto& result : *results) {
      ++index;
      if (!result.is_object()) continue;
      result_row row;
      row.run_index = r;
      row.run_name = run_name;
      row.experiment = experiment;
      row.result = &result;
      row.plugin = string_at(result, {"plugin"});
      row.label = string_at(result, {"label"});
      if (row.label.empty()) row.label = row.plugin.empty() ? "result " + std::to_string(index) : row.plugin;
      row.plugin_version = string_at(result, {"plugin_version"});
      row.status = string_at(result, {"status"});
      row.ok = row.status == "ok";
      row.error = string_at(result, {"error"});
      std::replace(row.error.begin(), row.error.end(), '\n', ' ');
      const json* baseline = find(result, {"is_baseline"});
      row.is_baseline = baseline && baseline->is_boolean() && baseline->get<bool>();
      row.size_bytes = number_at(result, {"size", "file_bytes"});
      row.size_ratio = number_at(result, {"size", "ratio_to_fp32"});
      row.headline_probe = headline_entry(result, "probe");
      row.headline_dataset = headline_entry(result, "dataset");
      if (row.headline_probe) {
        row.p50_ms = number_at(*row.headline_probe, {"p50_ms"});
        row.speedup = number_at(*row.headline_probe, {"speedup_vs_fp32"});
      }
      row.accuracy = number_at(result, {"accuracy", "accuracy"});
      row.accuracy_delta = number_at(result, {"accuracy", "accuracy_delta_vs_fp32"});
      if (const auto* significant = find(result, {"accuracy", "accuracy_delta_significant"}); significant && significant->is_boolean())
        row.accuracy_delta_significant = significant->get<bool>();
      row.agreement = number_at(result, {"accuracy", "agreement_with_fp32"});
      row.mean_kl = number_at(result, {"accuracy", "mean_kl_vs_fp32"});
      row.max_abs_dp = number_at(result, {"accuracy", "max_abs_dp_vs_fp32"});
      row.probe_total_abs_dp = number_at(result, {"accuracy", "probe_total_abs_dp"});
      // layer_error is written worst first, but a hand-edited file may not be: take the minimum.
      if (const json* layers = find(result, {"layer_error"}); layers && layers->is_array()) {
        for (const auto& layer : *layers) {
          auto sqnr = number_at(layer, {"sqnr_db"});
          if (!sqnr) continue;
          if (!row.worst_sqnr_db || *sqnr < *row.worst_sqnr_db) {
            row.worst_sqnr_db = sqnr;
            row.worst_layer = string_at(layer, {"layer"});
          }
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

std::string csv_number(const json& j, std::initializer_list<const char*> path) { return csv_number(detail::find(j, path)); }

using setting_key = std::pair<double, double>;  // batch size, threads

std::vector<setting_key> latency_settings_of(const std::vector<result_row>& rows, const char* kind) {
  std::set<setting_key> keys;
  for (const auto& row : rows) {
    const json* list = detail::find(*row.result, {"latency", kind});
    if (!list || !list->is_array()) continue;
    for (const auto& e : *list) {
      auto b = detail::number_at(e, {"batch_size"}), t = detail::number_at(e, {"threads"});
      if (b && t) keys.insert({*b, *t});
    }
  }
  return {keys.begin(), keys.end()};
}

const json* entry_at(const json& result, const char* kind, const setting_key& key) {
  const json* list = detail::find(result, {"latency", kind});
  if (!list || !list->is_array()) return nullptr;
  for (const auto& e : *list) {
    if (detail::number_at(e, {"batch_size"}) == key.first && detail::number_at(e, {"threads"}) == key.second) return &e;
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
                        "probe_total_abs_dp", "worst_layer", "worst_sqnr_db", "error"}) {
    header.push_back(h);
  }

  std::string out;
  auto emit = [&out](const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) out += (i ? "," : "") + csv_field(cells[i]);
    out += "\n";
  };
  emit(header);
  for (const auto& row : rows) {
    const json& r = *row.result;
    std::string run_id = folder_name_or_index(runs, row.run_index);
    std::vector<std::string> cells{run_id, row.experiment, row.label, row.plugin, row.plugin_version, row.status,
                                   row.is_baseline ? "true" : "false", csv_number(r, {"layers_quantized"}),
                                   csv_number(r, {"size", "file_bytes"}), csv_number(r, {"size", "ratio_to_fp32"})};
    for (const auto& k : probe_keys) {
      const json* e = entry_at(r, "probe", k);
      cells.push_back(e ? csv_number(*e, {"p50_ms"}) : "");
      cells.push_back(e ? csv_number(*e, {"p99_ms"}) : "");
      cells.push_back(e ? csv_number(*e, {"tokens"}) : "");
    }
    for (const auto& k : dataset_keys) {
      const json* e = entry_at(r, "dataset", k);
      cells.push_back(e ? csv_number(*e, {"p50_ms"}) : "");
      cells.push_back(e ? csv_number(*e, {"mean_tokens"}) : "");
    }
    cells.push_back(row.headline_probe ? csv_number(*row.headline_probe, {"speedup_vs_fp32"}) : "");
    cells.push_back(csv_number(r, {"accuracy", "accuracy"}));
    cells.push_back(csv_number(r, {"accuracy", "accuracy_delta_vs_fp32"}));
    cells.push_back(csv_number(r, {"accuracy", "agreement_with_fp32"}));
    cells.push_back(csv_number(r, {"accuracy", "mean_kl_vs_fp32"}));
    cells.push_back(csv_number(r, {"accuracy", "max_abs_dp_vs_fp32"}));
    cells.push_back(csv_number(r, {"accuracy", "probe_total_abs_dp"}));
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

std::string yes_no_flags(const json& isa) {
  if (!isa.is_object()) return {};
  std::string out;
  for (auto it = isa.begin(); it != isa.end(); ++it) {
    out += (out.empty() ? "" : ", ") + it.key() + " " +
           (it.value().is_boolean() ? (it.value().get<bool>() ? "yes" : "no") : it.value().dump());
  }
  return out;
}

std::string md_run_section(const json& run, const std::vector<result_row>& rows, std::size_t run_index) {
  std::string out;
  std::string name = detail::string_at(run, {"experiment", "name"});
  std::string folder = detail::folder_name(run);
  out += "## " + md_text(name.empty() ? "run " + std::to_string(run_index + 1) : name) +
         (folder.empty() ? "" : " (" + md_text(folder) + ")") + "\n\n";
  std::vector<result_row> mine;
  for (const auto& r : rows) {
    if (r.run_index == run_index) mine.push_back(r);
  }
  if (auto d = detail::string_at(run, {"experiment", "description"}); !d.empty()) out += md_text(d) + "\n\n";
  if (const json* complete = detail::find(run, {"experiment", "complete"}); complete && *complete == false) {
    out += "> **Incomplete run**: results.json was written before the run finished (still running, or interrupted); "
           "results may be missing.\n\n";
  }
  auto item = [&out](const std::string& key, const std::string& value) {
    if (!value.empty()) out += "- " + key + ": " + value + "\n";
  };
  item("config", detail::string_at(run, {"experiment", "config_file"}).empty()
                     ? ""
                     : md_code(detail::string_at(run, {"experiment", "config_file"})));
  item("results folder", detail::string_at(run, {"experiment", "output_dir"}).empty()
                             ? ""
                             : md_code(detail::string_at(run, {"experiment", "output_dir"})));
  item("started", md_text(detail::string_at(run, {"experiment", "started_at"})));
  item("finished", md_text(detail::string_at(run, {"experiment", "finished_at"})));
  if (auto w = detail::number_at(run, {"experiment", "wall_seconds"})) item("wall time", fixed(*w, 1) + " s");
  out += "\n";

  if (const json* env = detail::find(run, {"environment"}); env && env->is_object()) {
    out += "### Environment\n\n| | |\n| --- | --- |\n";
    auto env_row = [&](const char* title, const std::string& value) {
      if (!value.empty()) out += "| " + std::string(title) + " | " + value + " |\n";
    };
    std::string cpu = md_text(detail::string_at(*env, {"cpu_model"}));
    if (auto n = detail::number_at(*env, {"logical_cpus"})) cpu += " (" + fixed(*n, 0) + " logical CPUs)";
    env_row("CPU", cpu);
    if (const json* isa = detail::find(*env, {"isa"})) env_row("ISA", md_text(yes_no_flags(*isa)));
    for (auto [title, key] : std::vector<std::pair<const char*, const char*>>{
             {"torch threads", "torch_threads"}, {"libtorch", "libtorch"}, {"oneDNN", "onednn"}, {"BLAS", "blas"},
             {"qexp", "qexp_version"},
             {"git commit", "git_commit"}, {"host", "hostname"}, {"OS", "os"}}) {
      env_row(title, md_text(detail::string_at(*env, {key})));
    }
    out += "\n";
  }

  const json* model = detail::find(run, {"model"});
  const json* data = detail::find(run, {"data"});
  if (model || data) {
    out += "### Model and data\n\n";
    if (model) {
      std::vector<std::string> parts;
      if (auto v = detail::number_at(*model, {"dim"})) parts.push_back("dim " + fixed(*v, 0));
      if (auto v = detail::number_at(*model, {"n_layers"})) parts.push_back(fixed(*v, 0) + " transformer layers");
      if (auto v = detail::number_at(*model, {"linear_layers"})) parts.push_back(fixed(*v, 0) + " Linear layers");
      if (auto v = detail::number_at(*model, {"parameters"})) parts.push_back(with_thousands(*v) + " parameters");
      std::string text;
      for (const auto& p : parts) text += (text.empty() ? "" : ", ") + p;
      out += "- model " + md_code(detail::string_at(*model, {"path"})) + (text.empty() ? "" : ": " + text) + "\n";
    }
    if (data) {
      std::vector<std::string> parts;
      if (auto v = detail::number_at(*data, {"sentences"})) parts.push_back(fixed(*v, 0) + " sentences");
      if (auto v = detail::number_at(*data, {"max_length"})) parts.push_back("max length " + fixed(*v, 0) + " tokens");
      if (auto v = detail::number_at(*data, {"mean_tokens"})) parts.push_back(fixed(*v, 1) + " tokens on average");
      std::string text;
      for (const auto& p : parts) text += (text.empty() ? "" : ", ") + p;
      out += "- data " + md_code(detail::string_at(*data, {"path"})) + (text.empty() ? "" : ": " + text) + "\n";
    }
    out += "\n";
  }

  // Latency: every measured setting, with batch, threads and sequence length beside each number.
  std::vector<std::vector<std::string>> latency_rows;
  for (const auto& r : mine) {
    for (const char* kind : {"probe", "dataset"}) {
      const json* list = detail::find(*r.result, {"latency", kind});
      if (!list || !list->is_array()) continue;
      for (const auto& e : *list) {
        bool dataset = std::string(kind) == "dataset";
        auto n = [&e](const char* key) { return detail::number_at(e, {key}); };
        std::string tokens = dataset ? fixed(n("mean_tokens"), 1) + " mean" : fixed(n("tokens"), 0);
        std::string runs_text = dataset ? fixed(n("sentences"), 0) + " sentences"
                                        : fixed(n("warmup"), 0) + " + " + fixed(n("iterations"), 0);
        latency_rows.push_back({md_text(r.label), dataset ? "dataset" : "probe", fixed(n("batch_size"), 0),
                                fixed(n("threads"), 0), tokens, runs_text, format_ms(n("p50_ms")), format_ms(n("p90_ms")),
                                format_ms(n("p99_ms")), format_ms(n("mean_ms")), format_ms(n("stdev_ms")),
                                fixed(n("throughput_per_s"), 1), format_times(n("speedup_vs_fp32"), 2)});
      }
    }
  }
  if (!latency_rows.empty()) {
    out += "### Latency\n\n";
    out += md_table({"scheme", "input", "batch", "threads", "tokens", "warm-up + timed", "p50 ms", "p90 ms", "p99 ms",
                     "mean ms", "stdev ms", "sequences/s", "speedup"},
                    {false, false, true, true, true, true, true, true, true, true, true, true, true}, latency_rows);
    out += "\nprobe: one sentence timed repeatedly after warm-up; dataset: dev sentences, one timed call each.\n\n";
  }

  std::vector<std::vector<std::string>> accuracy_rows;
  for (const auto& r : mine) {
    if (!detail::find(*r.result, {"accuracy"})) continue;
    auto n = [&r](const char* key) { return detail::number_at(*r.result, {"accuracy", key}); };
    const auto* ci = detail::find(*r.result, {"accuracy", "accuracy_delta_ci95"});
    const bool has_ci = ci && ci->is_array() && ci->size() == 2 && (*ci)[0].is_number() && (*ci)[1].is_number();
    accuracy_rows.push_back({md_text(r.label), fixed(n("sentences"), 0), format_percent(n("accuracy")),
                             format_delta(r),
                             has_ci ? "[" + format_points((*ci)[0].get<double>()) + ", " + format_points((*ci)[1].get<double>()) + "]"
                                    : "-",
                             n("mcnemar_p") ? fixed(n("mcnemar_p"), 3) : "-", format_percent(n("agreement_with_fp32")),
                             fixed(n("mean_kl_vs_fp32"), 6), fixed(n("max_abs_dp_vs_fp32"), 4),
                             fixed(n("probe_total_abs_dp"), 4)});
  }
  if (!accuracy_rows.empty()) {
    out += "### Accuracy\n\n";
    out += md_table({"scheme", "sentences", "accuracy", "delta pp", "95% CI pp", "McNemar p", "agreement", "mean KL",
                     "max |dp|", "probe sum |dp|"},
                    {false, true, true, true, true, true, true, true, true, true}, accuracy_rows);
    out += "\n";
  }

  auto buckets = detail::breakdown_buckets(mine);
  std::vector<std::vector<std::string>> size_rows;
  for (const auto& r : mine) {
    if (!detail::find(*r.result, {"size"})) continue;
    std::vector<std::string> cells{md_text(r.label), format_mb(r.size_bytes), format_times(r.size_ratio, 3)};
    for (const auto& b : buckets) cells.push_back(format_mb(detail::number_at(*r.result, {"size", "breakdown", b.c_str()})));
    size_rows.push_back(std::move(cells));
  }
  if (!size_rows.empty()) {
    std::vector<std::string> header{"scheme", "file MB", "ratio"};
    for (const auto& b : buckets) header.push_back(b + " MB");
    out += "### Size\n\n";
    std::vector<bool> numeric(header.size(), true);
    numeric[0] = false;
    out += md_table(header, numeric, size_rows);
    out += "\n";
  }

  bool any_layers = false;
  for (const auto& r : mine) {
    const json* layers = detail::find(*r.result, {"layer_error"});
    if (!layers || !layers->is_array() || layers->empty()) continue;
    if (!any_layers) out += "### Worst layers per scheme\n\n";
    any_layers = true;
    std::vector<const json*> sorted;
    for (const auto& l : *layers) {
      if (detail::number_at(l, {"sqnr_db"})) sorted.push_back(&l);
    }
    std::stable_sort(sorted.begin(), sorted.end(), [](const json* a, const json* b) {
      return *detail::number_at(*a, {"sqnr_db"}) < *detail::number_at(*b, {"sqnr_db"});
    });
    std::size_t shown = std::min<std::size_t>(sorted.size(), 5);
    out += "**" + md_text(r.label) + "** (" + std::to_string(shown) + " of " + std::to_string(layers->size()) +
           " layers, lowest SQNR first)\n\n";
    std::vector<std::vector<std::string>> layer_rows;
    for (std::size_t i = 0; i < shown; ++i) {
      layer_rows.push_back({md_code(detail::string_at(*sorted[i], {"layer"})),
                            fixed(detail::number_at(*sorted[i], {"sqnr_db"}), 2),
                            fixed(detail::number_at(*sorted[i], {"nmse"}), 6)});
    }
    out += md_table({"layer", "SQNR dB", "NMSE"}, {false, true, true}, layer_rows) + "\n";
  }

  bool any_failed = false;
  for (const auto& r : mine) {
    if (r.ok) continue;
    if (!any_failed) out += "### Failures\n\n";
    any_failed = true;
    out += "- **" + md_text(r.label) + "** (" + md_text(r.plugin) + "): " +
           md_text(r.error.empty() ? "no error message recorded" : r.error) + "\n";
  }
  if (any_failed) out += "\n";
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
  for (std::size_t r = 0; r < runs.size(); ++r) out += detail::sensitivity_markdown(runs[r]) + detail::autotune_markdown(runs[r]) + md_run_section(runs[r], rows, r);
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

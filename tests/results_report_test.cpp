// Results files from synthetic results documents: the CSV, the terminal table, summary.md, the
// HTML report (escaping, balanced SVG, one marker per result), atomic writes, `qexp report`, and
// the report rendered by a real browser (headless Chromium).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <regex>

#include "qexp/errors.h"
#include "results_report.h"
#include "test_support.h"

using nlohmann::json;

namespace {

const char* const failed_error = "oneDNN: this CPU lacks \"avx512_vnni\", needed for u8s8 matmul";
const char* const script_label = "<script>alert('x')</script> per-channel";

// Deterministic samples around `p50`: a spread body and a slow tail, like real timings.
json latency_entry(int batch, int threads, double p50, int count, bool dataset) {
  json samples = json::array();
  for (int i = 0; i < count; ++i) {
    double u = std::fmod(i * 0.6180339887, 1.0);
    samples.push_back(p50 * (0.93 + 0.14 * u) + (i % 17 == 0 ? p50 * 0.3 : 0.0));
  }
  json e = {{"batch_size", batch}, {"threads", threads}, {"p50_ms", p50}, {"p90_ms", p50 * 1.06},
            {"p99_ms", p50 * 1.3}, {"mean_ms", p50 * 1.02}, {"stdev_ms", p50 * 0.05},
            {"throughput_per_s", batch * 1000.0 / p50}, {"tokenize_ms", 0.004}, {"samples_ms", samples}};
  if (dataset) {
    e["sentences"] = count;
    e["mean_tokens"] = 25.1;
  } else {
    e["tokens"] = 22;
    e["warmup"] = 10;
    e["iterations"] = count;
  }
  return e;
}

json layer_errors(double offset) {
  return json::array({{{"layer", "distilbert.transformer.layer.1.ffn.lin2"}, {"sqnr_db", 18.5 + offset}, {"nmse", 0.014}},
                      {{"layer", "distilbert.transformer.layer.0.ffn.lin2"}, {"sqnr_db", 24.0 + offset}, {"nmse", 0.004}},
                      {{"layer", "distilbert.transformer.layer.0.attention.q_lin"}, {"sqnr_db", 33.1 + offset}, {"nmse", 0.0005}}});
}

json scheme(const std::string& label, const std::string& plugin, double bytes, double p50, double speedup, double accuracy,
            double agreement, json layers) {
  json r = {{"label", label}, {"plugin", plugin}, {"plugin_version", "1.0.0"}, {"options", {{"granularity", "per_tensor"}}},
            {"is_baseline", false}, {"status", "ok"}, {"error", nullptr}, {"layers_quantized", 38}};
  r["size"] = {{"file_bytes", bytes}, {"checkpoint", "/runs/x/" + plugin + ".safetensors"}, {"ratio_to_fp32", bytes / 267832560.0},
               {"breakdown", {{"embeddings", 94000000}, {"linear_weights", bytes - 94037000}, {"linear_scales", 0}, {"other", 37000}}}};
  json probe_b1 = latency_entry(1, 1, p50, 60, false), probe_b8 = latency_entry(8, 1, p50 * 5, 60, false);
  probe_b1["speedup_vs_fp32"] = speedup;
  probe_b8["speedup_vs_fp32"] = speedup * 0.9;
  json dataset = latency_entry(1, 1, p50 * 0.9, 40, true);
  dataset["speedup_vs_fp32"] = speedup;
  r["latency"] = {{"probe", {probe_b1, probe_b8}}, {"dataset", {dataset}}};
  r["accuracy"] = {{"sentences", 872}, {"accuracy", accuracy}, {"accuracy_delta_vs_fp32", accuracy - 0.823},
                   {"agreement_with_fp32", agreement}, {"mean_kl_vs_fp32", 0.0012}, {"max_abs_dp_vs_fp32", 0.08},
                   {"probe_total_abs_dp", 0.01}, {"probe_probabilities", {0.3, 0.7}}};
  r["layer_error"] = std::move(layers);
  return r;
}

// A baseline, two quantizers (one label with a comma, one with markup) and one failed quantizer.
json synthetic_run(const std::string& name = "ptq_int8", const std::string& stamp = "20261127-050000") {
  json baseline = scheme("fp32", "fp32", 267832560, 12.1, 1.0, 0.823, 1.0, json::array());
  baseline["is_baseline"] = true;
  baseline["accuracy"]["mean_kl_vs_fp32"] = 0.0;
  baseline["accuracy"]["max_abs_dp_vs_fp32"] = 0.0;
  json failed = {{"label", "onednn-int8"}, {"plugin", "onednn-int8"}, {"options", {{"granularity", "per_channel"}}},
                 {"status", "failed"}, {"error", failed_error}};
  return {
      {"schema", "qexp.results/1"},
      {"experiment", {{"name", name}, {"kind", "ptq"}, {"description", "INT8 against fp32"},
                      {"config_file", "/abs/configs/ptq_int8.yaml"}, {"resolved_config", {{"name", name}}},
                      {"started_at", "2026-11-27T05:00:00Z"}, {"finished_at", "2026-11-27T05:01:21Z"}, {"wall_seconds", 81.2},
                      {"output_dir", "/abs/runs/" + name + "/" + stamp}}},
      {"environment", {{"cpu_model", "AMD EPYC 9R14 test CPU"}, {"isa", {{"avx2", true}, {"avx512f", true}, {"avx512_vnni", false}}},
                       {"logical_cpus", 2}, {"libtorch", "1.13.0"}, {"onednn", "2.6.3"}, {"blas", "OpenBLAS 0.3.21 (pthread)"},
                       {"qexp_version", "0.1.0"}, {"git_commit", "abc123 (dirty)"}, {"hostname", "box"}, {"os", "Linux 6.1"}}},
      {"model", {{"path", "/abs/models/x"}, {"dim", 768}, {"n_layers", 6}, {"linear_layers", 38}, {"parameters", 66955010}}},
      {"data", {{"path", "/abs/dev.tsv"}, {"sentences", 872}, {"max_length", 128}, {"mean_tokens", 25.2}}},
      {"results", {baseline, scheme("int8, per-tensor", "dynamic-int8", 70e6, 5.0, 2.42, 0.818, 0.985, layer_errors(0)),
                   scheme(script_label, "dynamic-int8", 71e6, 5.2, 2.33, 0.821, 0.991, layer_errors(3)), failed}}};
}

// RFC 4180: quoted fields may hold commas, doubled quotes and newlines.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
    } else if (c == '\n') {
      row.push_back(field);
      field.clear();
      rows.push_back(row);
      row.clear();
    } else {
      field += c;
    }
  }
  return rows;
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

// The markup of the <svg> element with this id, up to its closing tag (plots hold no nested svg).
std::string svg_by_id(const std::string& html, const std::string& id) {
  auto start = html.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos) return {};
  auto end = html.find("</svg>", start);
  return end == std::string::npos ? std::string() : html.substr(start, end + 6 - start);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::size_t column(const std::vector<std::string>& header, const std::string& name) {
  auto it = std::find(header.begin(), header.end(), name);
  EXPECT_NE(it, header.end()) << "no column " << name;
  return static_cast<std::size_t>(it - header.begin());
}

}  // namespace

TEST(results_csv, has_a_header_one_row_per_result_and_quotes_commas_and_quotes) {
  std::string csv = qexp::results_csv({synthetic_run()});
  auto rows = parse_csv(csv);
  ASSERT_EQ(rows.size(), 5u) << csv;
  const auto& header = rows[0];
  for (const auto& r : rows) EXPECT_EQ(r.size(), header.size()) << csv;
  for (const char* name : {"run", "experiment", "label", "plugin", "status", "size_bytes", "size_ratio", "probe_p50_ms_b1_t1",
                           "probe_p50_ms_b8_t1", "dataset_p50_ms_b1_t1", "speedup", "accuracy", "accuracy_delta",
                           "agreement", "mean_kl", "max_abs_dp", "worst_layer", "worst_sqnr_db", "error"}) {
    column(header, name);
  }
  EXPECT_EQ(header.front(), "run");
  EXPECT_EQ(header.back(), "error");
  EXPECT_NE(csv.find("\"int8, per-tensor\""), std::string::npos) << csv;
  EXPECT_EQ(rows[2][column(header, "label")], "int8, per-tensor");
  EXPECT_EQ(rows[2][column(header, "run")], "20261127-050000");
  // file_bytes is an integer key: a whole number written as 7e7 reads (and prints) as one.
  EXPECT_EQ(rows[2][column(header, "size_bytes")], "70000000");
  EXPECT_DOUBLE_EQ(std::stod(rows[2][column(header, "probe_p50_ms_b1_t1")]), 5.0);
  EXPECT_DOUBLE_EQ(std::stod(rows[2][column(header, "probe_p50_ms_b8_t1")]), 25.0);
  EXPECT_DOUBLE_EQ(std::stod(rows[2][column(header, "speedup")]), 2.42);
  EXPECT_DOUBLE_EQ(std::stod(rows[2][column(header, "accuracy_delta")]), 0.818 - 0.823);
  EXPECT_EQ(rows[2][column(header, "worst_layer")], "distilbert.transformer.layer.1.ffn.lin2");
  EXPECT_DOUBLE_EQ(std::stod(rows[3][column(header, "worst_sqnr_db")]), 21.5);
  EXPECT_EQ(rows[3][column(header, "label")], script_label);
  EXPECT_EQ(rows[1][column(header, "worst_layer")], "");
  // The failed row: its error round-trips through the quoting, its measurements are empty cells.
  EXPECT_EQ(rows[4][column(header, "status")], "failed");
  EXPECT_EQ(rows[4][column(header, "error")], failed_error);
  EXPECT_EQ(rows[4][column(header, "size_bytes")], "");
  EXPECT_EQ(rows[4][column(header, "accuracy")], "");
}

TEST(results_csv, two_runs_give_one_row_per_result_per_run) {
  auto rows = parse_csv(qexp::results_csv({synthetic_run("a", "s1"), synthetic_run("b", "s2")}));
  ASSERT_EQ(rows.size(), 9u);
  auto run = column(rows[0], "run"), experiment = column(rows[0], "experiment");
  EXPECT_EQ(rows[1][run], "s1");
  EXPECT_EQ(rows[1][experiment], "a");
  EXPECT_EQ(rows[8][run], "s2");
  EXPECT_EQ(rows[8][experiment], "b");
}

TEST(summary_table, aligns_columns_and_shows_the_error_of_a_failed_row) {
  std::string table = qexp::summary_table({synthetic_run()});
  std::vector<std::string> lines;
  for (std::size_t at = 0, next; (next = table.find('\n', at)) != std::string::npos; at = next + 1) {
    lines.push_back(table.substr(at, next - at));
  }
  ASSERT_GE(lines.size(), 6u) << table;
  EXPECT_EQ(lines[0].rfind("scheme", 0), 0u) << table;
  for (const char* h : {"size MB", "ratio", "p50 ms", "speedup", "accuracy", "delta pp", "agreement"}) {
    EXPECT_NE(lines[0].find(h), std::string::npos) << h << "\n" << table;
  }
  // Right-aligned numeric columns: the header, the rule and every measured row end at one column.
  EXPECT_EQ(lines[1].size(), lines[0].size()) << table;
  auto p50_end = lines[0].find("p50 ms") + 6;
  for (int i : {2, 3}) {
    EXPECT_EQ(lines[i].size(), lines[0].size()) << table;
    EXPECT_EQ(lines[i][p50_end - 1] != ' ' && (p50_end == lines[i].size() || lines[i][p50_end] == ' '), true) << table;
  }
  EXPECT_NE(lines[2].find("fp32 (baseline)"), std::string::npos) << table;
  EXPECT_NE(lines[3].find("int8, per-tensor"), std::string::npos);
  EXPECT_NE(lines[3].find("70.00"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("2.42x"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("81.80%"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("-0.50"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("98.50%"), std::string::npos) << lines[3];
  EXPECT_NE(lines[5].find(std::string("FAILED: ") + failed_error), std::string::npos) << table;
  EXPECT_NE(table.find("batch 1, 1 thread, 22 tokens"), std::string::npos) << table;

  json escape = synthetic_run();
  escape["results"][1]["label"] = "red\x1b[31m";
  std::string sanitized = qexp::summary_table({escape});
  EXPECT_EQ(sanitized.find('\x1b'), std::string::npos);
  EXPECT_NE(sanitized.find("red?[31m"), std::string::npos) << sanitized;
}

TEST(summary_markdown, has_the_table_environment_latency_settings_and_worst_layers) {
  json run = synthetic_run();
  run["results"][0]["size"]["breakdown"]["header"] = 7560;  // a bucket only one result has
  std::string md = qexp::summary_markdown({run});
  EXPECT_NE(md.find("# qexp results: ptq\\_int8"), std::string::npos) << md;
  EXPECT_NE(md.find("| scheme | size MB | ratio | p50 ms | speedup | accuracy | delta pp | agreement | latency at |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| fp32 (baseline) | 267.83 | 1.000x | 12.10 | 1.00x | 82.30% | +0.00 | 100.00% | batch 1, 1 thread, 22 tokens |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| int8, per-tensor | 70.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("AMD EPYC 9R14 test CPU (2 logical CPUs)"), std::string::npos);
  EXPECT_NE(md.find("avx512\\_vnni no"), std::string::npos) << md;
  EXPECT_NE(md.find("OpenBLAS 0.3.21 (pthread)"), std::string::npos);
  EXPECT_NE(md.find("872 sentences, max length 128 tokens"), std::string::npos) << md;
  // Threads, batch and sequence length beside every latency number.
  EXPECT_NE(md.find("| int8, per-tensor | probe | 8 | 1 | 22 | 10 + 60 | 25.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| int8, per-tensor | dataset | 1 | 1 | 25.1 mean | 40 sentences | 4.50 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| scheme | file MB | ratio | embeddings MB | linear\\_weights MB | linear\\_scales MB | other MB | header MB |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| fp32 | 267.83 | 1.000x | 94.00 | 173.80 | 0 | 0.0370 | 0.00756 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| int8, per-tensor | 70.00 | 0.261x | 94.00 | "), std::string::npos) << md;
  EXPECT_NE(md.find("### Worst layers per scheme"), std::string::npos);
  EXPECT_NE(md.find("| `distilbert.transformer.layer.1.ffn.lin2` | 18.50 | 0.014000 |"), std::string::npos) << md;
  EXPECT_NE(md.find(std::string("**FAILED: oneDNN: this CPU lacks \"avx512\\_vnni\"")), std::string::npos) << md;
  // User labels cannot inject markup.
  EXPECT_EQ(md.find("<script>"), std::string::npos);
  EXPECT_NE(md.find("\\<script\\>alert('x')\\</script\\> per-channel"), std::string::npos) << md;
}

TEST(report_html, is_balanced_escaped_and_has_one_marker_per_ok_result) {
  std::string html = qexp::report_html({synthetic_run()});
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(html, "<svg"), count(html, "</svg>"));
  EXPECT_GE(count(html, "<svg"), 5u);  // two scatter plots, three latency distributions, per-layer SQNR
  EXPECT_EQ(lower(html).find("<script"), std::string::npos) << "unescaped label";
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; per-channel"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // only the SVG namespace
  EXPECT_EQ(html.find("https://"), std::string::npos);

  for (const char* id : {"accuracy-vs-size", "accuracy-vs-latency"}) {
    std::string svg = svg_by_id(html, id);
    ASSERT_FALSE(svg.empty()) << id;
    EXPECT_EQ(count(svg, "class=\"marker"), 3u) << id;
    EXPECT_EQ(count(svg, "class=\"marker baseline\""), 1u) << id;
    EXPECT_EQ(count(svg, "class=\"point-label\""), 3u) << id;
    EXPECT_EQ(svg.find("onednn-int8"), std::string::npos) << "a failed result was plotted";
  }
  for (const char* id : {"latency-probe-b1-t1", "latency-probe-b8-t1", "latency-dataset-b1-t1"}) {
    std::string svg = svg_by_id(html, id);
    ASSERT_FALSE(svg.empty()) << id;
    EXPECT_EQ(count(svg, "class=\"box\""), 3u) << id;
    EXPECT_EQ(count(svg, "class=\"median\""), 3u) << id;
  }
  std::string sqnr = svg_by_id(html, "layer-sqnr");
  EXPECT_EQ(count(sqnr, "class=\"bar\""), 6u);  // 3 layers x 2 quantizers; the baseline has none
  EXPECT_NE(sqnr.find(">layer.1.ffn.lin2<"), std::string::npos) << "common prefix not dropped";
  // layer.1 sorts after both layer.0 names.
  EXPECT_LT(sqnr.find(">layer.0.ffn.lin2<"), sqnr.find(">layer.1.ffn.lin2<"));
  EXPECT_NE(html.find(std::string("failed: oneDNN: this CPU lacks &quot;avx512_vnni&quot;")), std::string::npos);
}

TEST(report_html, survives_runs_with_missing_sections_and_no_results) {
  json bare = {{"schema", "qexp.results/1"}, {"results", json::array()}};
  json partial = synthetic_run();
  for (auto& r : partial["results"]) {
    r.erase("latency");
    r.erase("layer_error");
  }
  partial["results"][1]["accuracy"] = "not an object";
  partial.erase("environment");
  for (const auto& runs : {std::vector<json>{bare}, std::vector<json>{partial}, std::vector<json>{bare, partial}}) {
    std::string html = qexp::report_html(runs);
    EXPECT_EQ(count(html, "<svg"), count(html, "</svg>"));
    EXPECT_FALSE(qexp::summary_markdown(runs).empty());
    EXPECT_FALSE(qexp::summary_table(runs).empty());
    EXPECT_FALSE(qexp::results_csv(runs).empty());
  }
  std::string html = qexp::report_html({partial});
  EXPECT_EQ(count(svg_by_id(html, "accuracy-vs-size"), "class=\"marker"), 2u);
  EXPECT_TRUE(svg_by_id(html, "accuracy-vs-latency").empty());
  EXPECT_NE(html.find("int8, per-tensor (no accuracy)"), std::string::npos);
}

TEST(report_html, survives_numbers_too_large_to_plot_or_count) {
  // An accuracy of 6e13 (6e15 percent): a tick step of 0.2 no longer changes a value that large,
  // so the tick loop never ended.
  json run = synthetic_run();
  for (auto& r : run["results"]) r["accuracy"]["accuracy"] = 6e13;
  std::string html = qexp::report_html({run});
  EXPECT_EQ(count(html, "<svg"), count(html, "</svg>"));
  EXPECT_FALSE(svg_by_id(html, "accuracy-vs-size").empty());
  // Spans that overflow a double, and a thread count beyond a long long (a wrapped cast before).
  for (auto& r : run["results"]) {
    r["accuracy"]["accuracy"] = -1e308;
    r["size"]["file_bytes"] = 1e308;
  }
  run["results"][0]["accuracy"]["accuracy"] = 1e308;
  html = qexp::report_html({run});
  EXPECT_EQ(count(html, "<svg"), count(html, "</svg>"));
  // A thread count beyond a 64-bit integer is not read as one (it was a wrapped cast once).
  const json entry = {{"batch_size", 1}, {"threads", 1e19}, {"tokens", 22}};
  EXPECT_EQ(qexp::detail::latency_setting(entry.get<qexp::results::latency_entry>(), false), "batch 1, 22 tokens");
}

TEST(report_html, flags_a_run_written_before_it_finished) {
  json run = synthetic_run();
  EXPECT_EQ(qexp::report_html({run}).find("Incomplete run"), std::string::npos);
  run["experiment"]["complete"] = false;
  EXPECT_NE(qexp::report_html({run}).find("<p class=\"warning\">Incomplete run (ptq_int8)"), std::string::npos);
  EXPECT_NE(qexp::summary_markdown({run}).find("> **Incomplete run**"), std::string::npos);
}

TEST(results_files, load_results_names_the_file_and_the_json_problem) {
  qexp::test::temp_dir dir;
  auto file = dir.path() / "results.json";
  qexp::test::write_file(file, "{\"schema\": \"qexp.results/1\", \"results\": [,]}");
  try {
    qexp::load_results(file);
    FAIL() << "malformed JSON accepted";
  } catch (const qexp::input_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(file.string()), std::string::npos) << what;
    EXPECT_NE(what.find("line 1, column 42"), std::string::npos) << what;
  }
  qexp::test::write_file(file, "{\"schema\": \"qexp.results/9\", \"results\": []}");
  EXPECT_THROW(qexp::load_results(file), qexp::input_error);
  qexp::test::write_file(file, "{\"schema\": \"qexp.results/1\", \"results\": {}}");
  try {
    qexp::load_results(file);
    FAIL() << "results as an object accepted";
  } catch (const qexp::input_error& e) {
    EXPECT_NE(std::string(e.what()).find("'results': expected an array, found object"), std::string::npos) << e.what();
  }
  EXPECT_THROW(qexp::load_results(dir.path() / "missing.json"), qexp::input_error);
  EXPECT_THROW(qexp::find_results_files(dir.path() / "nowhere"), qexp::input_error);
}

TEST(results_files, load_results_refuses_a_fifo_and_numbers_beyond_double) {
  qexp::test::temp_dir dir;
  const auto fifo = dir.path() / "results.json";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  try {
    qexp::load_results(fifo);
    FAIL() << "a FIFO was read";
  } catch (const qexp::input_error& e) {
    EXPECT_EQ(std::string(e.what()), "results file " + fifo.string() + ": is a FIFO, expected a regular file");
  }
  const auto huge = dir.path() / "huge.json";
  qexp::test::write_file(huge, "{\"schema\": \"qexp.results/1\", \"results\": [1e400]}");
  try {
    qexp::load_results(huge);
    FAIL() << "1e400 accepted";
  } catch (const qexp::input_error& e) {
    EXPECT_NE(std::string(e.what()).find(huge.string() + ": not valid JSON: "), std::string::npos) << e.what();
  }
}

TEST(results_files, writes_atomically_and_rebuilds_a_results_folder) {
  qexp::test::temp_dir dir;
  auto target = dir.path() / "deep" / "file.txt";
  qexp::write_text_atomically(target, "first");
  qexp::write_text_atomically(target, "second");
  EXPECT_EQ(qexp::test::read_file(target), "second");
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(target.parent_path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "file.txt");
  }
  EXPECT_EQ(files, 1u) << "a temporary file was left behind";

  qexp::test::write_file(dir.path() / "run" / "results.json", synthetic_run().dump(2));
  qexp::rebuild_report(dir.path() / "run");
  EXPECT_EQ(qexp::test::read_file(dir.path() / "run" / "results.csv"), qexp::results_csv({synthetic_run()}));
  EXPECT_EQ(qexp::test::read_file(dir.path() / "run" / "summary.md"), qexp::summary_markdown({synthetic_run()}));
  EXPECT_EQ(qexp::test::read_file(dir.path() / "run" / "report.html"), qexp::report_html({synthetic_run()}));
}

TEST(report_command, rewrites_one_folder_combines_several_and_reports_bad_files) {
  qexp::test::temp_dir dir;
  auto a = dir.path() / "runs" / "a" / "s1", b = dir.path() / "runs" / "b" / "s2";
  qexp::test::write_file(a / "results.json", synthetic_run("exp_a", "s1").dump());
  qexp::test::write_file(b / "results.json", synthetic_run("exp_b", "s2").dump());

  auto one = qexp::test::run_qexp("report '" + a.string() + "'");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_TRUE(std::filesystem::exists(a / "report.html"));
  EXPECT_TRUE(std::filesystem::exists(a / "summary.md"));
  EXPECT_TRUE(std::filesystem::exists(a / "results.csv"));
  EXPECT_NE(one.output.find("int8, per-tensor"), std::string::npos) << one.output;

  auto combined = dir.path() / "combined";
  auto both = qexp::test::run_qexp("report '" + (dir.path() / "runs").string() + "' --out '" + combined.string() + "'");
  ASSERT_EQ(both.exit_code, 0) << both.output;
  EXPECT_NE(both.output.find("exp_a"), std::string::npos) << both.output;
  EXPECT_NE(both.output.find("exp_b"), std::string::npos) << both.output;
  EXPECT_EQ(parse_csv(qexp::test::read_file(combined / "results.csv")).size(), 9u);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "runs" / "report.html"));

  qexp::test::write_file(b / "results.json", "{\"schema\": \"qexp.results/1\", \"results\": [");
  auto bad = qexp::test::run_qexp("report '" + a.string() + "' '" + b.string() + "' --out '" + combined.string() + "'");
  EXPECT_EQ(bad.exit_code, 4) << bad.output;
  EXPECT_NE(bad.output.find((b / "results.json").string()), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("not valid JSON"), std::string::npos) << bad.output;

  auto empty = qexp::test::run_qexp("report '" + (dir.path() / "combined").string() + "'");
  EXPECT_EQ(empty.exit_code, 4) << empty.output;
  EXPECT_NE(empty.output.find("no results.json"), std::string::npos) << empty.output;
}

// The report as a browser sees it: Chromium parses the page, keeps every plot and marker, and
// paints a screenshot. CI installs chromium (tools/install-deps.sh); a missing browser fails.
TEST(report_html, renders_in_headless_chromium) {
  const char* override_path = std::getenv("QEXP_CHROMIUM");
  std::string chromium = override_path && *override_path ? override_path : "";
  if (chromium.empty()) {
    auto which = qexp::test::run_command("command -v chromium || command -v chromium-browser");
    chromium = which.output.substr(0, which.output.find('\n'));
  }
  ASSERT_FALSE(chromium.empty()) << "headless Chromium is needed for this test and was not found: install it with "
                                    "`apt-get install -y --no-install-recommends chromium` (tools/install-deps.sh does), "
                                    "or point QEXP_CHROMIUM at the binary";
  qexp::test::temp_dir dir;
  auto page = dir.path() / "report.html";
  std::string html = qexp::report_html({synthetic_run()});
  qexp::test::write_file(page, html);
  auto browser = [&](const std::string& profile, const std::string& action) {
    return qexp::test::run_command(
        "timeout 120 '" + chromium + "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
        "--disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage "
        "--user-data-dir='" + (dir.path() / profile).string() + "' " + action + " 'file://" + page.string() + "' 2>/dev/null");
  };

  auto dom = browser("profile-dom", "--dump-dom");
  ASSERT_EQ(dom.exit_code, 0) << dom.output;
  EXPECT_EQ(count(dom.output, "<svg"), count(html, "<svg")) << dom.output.substr(0, 2000);
  EXPECT_EQ(count(dom.output, "</svg>"), count(html, "<svg"));
  EXPECT_EQ(count(svg_by_id(dom.output, "accuracy-vs-size"), "class=\"marker"), 3u);
  EXPECT_EQ(count(svg_by_id(dom.output, "accuracy-vs-latency"), "class=\"marker"), 3u);
  EXPECT_EQ(count(svg_by_id(dom.output, "latency-probe-b1-t1"), "class=\"box\""), 3u);
  EXPECT_EQ(count(svg_by_id(dom.output, "layer-sqnr"), "class=\"bar\""), 6u);
  EXPECT_EQ(lower(dom.output).find("<script"), std::string::npos);
  EXPECT_NE(dom.output.find("&lt;script&gt;alert('x')&lt;/script&gt; per-channel"), std::string::npos);

  auto png = dir.path() / "report.png";
  auto shot = browser("profile-shot", "--screenshot='" + png.string() + "' --window-size=1200,2400 --hide-scrollbars");
  ASSERT_EQ(shot.exit_code, 0) << shot.output;
  ASSERT_TRUE(std::filesystem::exists(png)) << shot.output;
  std::string bytes = qexp::test::read_file(png);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  // Width and height from the IHDR chunk, big-endian at offsets 16 and 20.
  auto be32 = [&bytes](std::size_t at) {
    return (static_cast<unsigned char>(bytes[at]) << 24) | (static_cast<unsigned char>(bytes[at + 1]) << 16) |
           (static_cast<unsigned char>(bytes[at + 2]) << 8) | static_cast<unsigned char>(bytes[at + 3]);
  };
  EXPECT_EQ(be32(16), 1200u);
  EXPECT_EQ(be32(20), 2400u);
  // A blank or text-only page compresses to a few kB; plots with coloured markers do not.
  EXPECT_GT(bytes.size(), 60000u);
  if (const char* keep = std::getenv("QEXP_KEEP_SCREENSHOT"); keep && *keep) std::filesystem::copy_file(png, keep,
      std::filesystem::copy_options::overwrite_existing);
}

#include "ptq_runner.h"

#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "accuracy_stats.h"
#include "calibration_data.h"
#include "results_report.h"
#include "qexp/dataset.h"
#include "qexp/distilbert.h"
#include "qexp/environment.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/isolation.h"
#include "qexp/latency_stats.h"
#include "qexp/quantized_checkpoint.h"
#include "qexp/recipe.h"
#include "qexp/text.h"
#include "qexp/threads.h"
#include "qexp/tokenizer.h"
#include "qexp/version.h"

namespace qexp {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string utc_stamp(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, format, &tm);
  return buffer;
}

json yaml_to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    json out = json::object();
    for (const auto& e : n) out[e.first.as<std::string>()] = yaml_to_json(e.second);
    return out;
  }
  if (n.IsSequence()) {
    json out = json::array();
    for (const auto& e : n) out.push_back(yaml_to_json(e));
    return out;
  }
  if (!n.IsScalar()) return nullptr;
  // The resolved config holds typed scalars; recover the type from the text the schema wrote.
  const std::string text = n.Scalar();
  if (text == "true" || text == "false") return text == "true";
  char* end = nullptr;
  const long long i = std::strtoll(text.c_str(), &end, 10);
  if (!text.empty() && *end == '\0') return i;
  const double d = std::strtod(text.c_str(), &end);
  if (!text.empty() && *end == '\0') return d;
  return text;
}

fs::path make_run_dir(const fs::path& root, const std::string& name) {
  const fs::path base = fs::absolute(root) / name;
  fs::create_directories(base);
  const std::string stamp = utc_stamp("%Y%m%d-%H%M%S");
  fs::path dir = base / stamp;
  for (int suffix = 2; fs::exists(dir); ++suffix) dir = base / (stamp + "-" + std::to_string(suffix));
  fs::create_directories(dir);
  return dir;
}

// Progress for long loops: a redrawn bar on a terminal, a few plain lines in a log.
class progress {
 public:
  progress(std::string what, std::size_t total) : what_(std::move(what)), total_(total), tty_(isatty(2)) {}
  void step(std::size_t done) {
    if (total_ == 0) return;
    if (tty_) {
      const int width = 30;
      const int filled = static_cast<int>(width * done / total_);
      std::cerr << "\r  " << what_ << " [" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
                << done << "/" << total_ << std::flush;
      if (done == total_) std::cerr << "\n";
    } else if (done == total_ || done * 4 / total_ != (done - 1) * 4 / total_) {
      spdlog::info("  {}: {}/{} sentences", what_, done, total_);
    }
  }

 private:
  std::string what_;
  std::size_t total_;
  bool tty_;
};

// Everything measured against, loaded once per run.
struct workload {
  ptq_config config;
  wordpiece_tokenizer tokenizer;
  distilbert_classifier fp32;
  labelled_sentences data;
  std::vector<std::vector<std::int64_t>> ids;  // tokenized data, [CLS] ... [SEP]
  std::vector<std::int64_t> probe_ids;
  std::optional<calibration_set> calibration;  // drawn when a recipe asks for it
};

struct candidate {
  const quantizer_entry* entry;
  quantized_model quantized;
  distilbert_classifier& model() { return quantized.model; }
  std::size_t linear_sites() const {
    std::size_t n = 0;
    for (const auto& s : quantized.sites) n += s.kind == site_kind::linear;
    return n;
  }
  std::size_t calibration_sentences = 0;  // 0: the recipe did not calibrate
};

candidate build_candidate(workload& w, const quantizer_entry& entry, const plugin_registry& plugins) {
  const auto assignment = assign_sites(entry.scheme, w.fp32.sites(), plugins);
  const bool calibrates = recipe_wants_calibration(entry.scheme, assignment, plugins);
  if (calibrates && !w.calibration) {
    w.calibration = load_calibration_set(w.config.calibration, w.tokenizer, w.config.max_length);
    spdlog::info("  calibration: {}, batch {}, mode {}", w.calibration->source, w.calibration->batch_size,
                 to_string(w.calibration->mode));
  }
  return {&entry, apply_recipe(w.fp32, entry.scheme, plugins, calibrates ? &*w.calibration : nullptr, w.config.seed),
          calibrates ? w.calibration->ids.size() : 0};
}

json save_checkpoint(candidate& c, const fs::path& file) {
  const checkpoint_size size = save_quantized_checkpoint(c.model(), c.quantized.sites, file);
  return {{"file_bytes", size.file_bytes}, {"checkpoint", file.string()}, {"breakdown", size.breakdown}};
}

// Probabilities of every sentence, each run alone (batch 1) or padded batches.
at::Tensor predict_probabilities(distilbert_classifier& model, const workload& w, std::size_t batch_size,
                                 const std::string& what) {
  const std::size_t n = w.ids.size();
  std::vector<at::Tensor> parts;
  progress bar(what, n);
  for (std::size_t begin = 0; begin < n; begin += batch_size) {
    const std::size_t end = std::min(n, begin + batch_size);
    at::Tensor mask;
    auto input = padded_batch(w.ids, begin, end, w.tokenizer.pad_id(), &mask);
    parts.push_back(at::softmax(model.forward(input, mask).to(at::kDouble), 1));
    bar.step(end);
  }
  return at::cat(parts);
}

json accuracy_json(const at::Tensor& probs, const at::Tensor& baseline_probs, const workload& w,
                   const at::Tensor& probe_probs, const at::Tensor& baseline_probe_probs) {
  const auto labels = at::tensor(w.data.labels, at::kLong);
  const auto predicted = probs.argmax(1);
  const auto baseline_predicted = baseline_probs.argmax(1);
  const double accuracy = predicted.eq(labels).to(at::kDouble).mean().item<double>();
  const double baseline_accuracy = baseline_predicted.eq(labels).to(at::kDouble).mean().item<double>();
  // KL(p_fp32 || p_candidate), clamped so a zero probability cannot produce inf.
  const auto p = baseline_probs.clamp_min(1e-12), q = probs.clamp_min(1e-12);
  const double kl = (p * (p.log() - q.log())).sum(1).mean().item<double>();
  std::vector<double> probe(probe_probs.data_ptr<double>(), probe_probs.data_ptr<double>() + probe_probs.numel());
  const auto right = predicted.eq(labels).contiguous(), baseline_right = baseline_predicted.eq(labels).contiguous();
  const paired_accuracy_stats paired = compare_accuracy(
      std::vector<bool>(baseline_right.data_ptr<bool>(), baseline_right.data_ptr<bool>() + baseline_right.numel()),
      std::vector<bool>(right.data_ptr<bool>(), right.data_ptr<bool>() + right.numel()), w.config.seed);
  return {{"sentences", w.data.size()},
          {"accuracy", accuracy},
          {"accuracy_delta_vs_fp32", accuracy - baseline_accuracy},
          {"accuracy_delta_ci95", {paired.ci_low, paired.ci_high}},
          {"accuracy_delta_significant", paired.significant()},
          {"mcnemar_p", paired.mcnemar_p},
          {"sentences_only_fp32_right", paired.baseline_only},
          {"sentences_only_this_right", paired.candidate_only},
          {"agreement_with_fp32", predicted.eq(baseline_predicted).to(at::kDouble).mean().item<double>()},
          {"mean_kl_vs_fp32", kl},
          {"max_abs_dp_vs_fp32", (probs - baseline_probs).abs().max().item<double>()},
          {"probe_total_abs_dp", (probe_probs - baseline_probe_probs).abs().sum().item<double>()},
          {"probe_probabilities", probe}};
}

// Each quantized Linear fed the fp32 model's own input to that layer, so the error is the
// layer's alone, not what earlier layers passed down.
json layer_error_json(const workload& w, candidate& c, std::vector<std::string>* bad_layers) {
  const auto& s = w.config.layer_error;
  std::set<std::string> selected;
  for (const auto& site : c.quantized.sites)
    if (site.kind == site_kind::linear) selected.insert(site.site);
  std::map<std::string, std::pair<double, double>> energy;  // name -> (signal, noise)
  auto observed = w.fp32;
  observed.set_linear_observer([&](const std::string& name, const at::Tensor& in, const at::Tensor& out) {
    if (!selected.count(name)) return;
    const auto q = c.model().linear(name).forward(in).to(at::kDouble);
    const auto ref = out.to(at::kDouble);
    auto& e = energy[name];
    e.first += ref.pow(2).sum().item<double>();
    e.second += (ref - q).pow(2).sum().item<double>();
  });
  const std::size_t n = std::min(w.ids.size(), static_cast<std::size_t>(s.batches) * s.batch_size);
  for (std::size_t begin = 0; begin < n; begin += s.batch_size) {
    at::Tensor mask;
    auto input = padded_batch(w.ids, begin, std::min(n, begin + s.batch_size), w.tokenizer.pad_id(), &mask);
    observed.forward(input, mask);
  }
  // A quantized table's error is over the whole table: every row can be looked up.
  for (const auto& site : c.quantized.sites) {
    if (site.kind != site_kind::table) continue;
    const auto ref = w.fp32.float_table(site.site).weight.to(at::kDouble);
    const auto q = c.model().table_site(site.site).dequantized_table().to(at::kDouble);
    energy[site.site] = {ref.pow(2).sum().item<double>(), (ref - q).pow(2).sum().item<double>()};
  }
  std::vector<json> rows;
  std::vector<std::string> non_finite;
  for (const auto& [name, e] : energy) {
    if (!std::isfinite(e.first) || !std::isfinite(e.second)) {
      // NaN or inf in the outputs: no SQNR to report (JSON null), and the layer is named.
      rows.push_back({{"layer", name}, {"sqnr_db", nullptr}, {"nmse", nullptr}, {"finite", false}});
      non_finite.push_back(name);
      continue;
    }
    const double nmse = e.first > 0 ? e.second / e.first : 0.0;
    // An exact layer has no noise: report a finite ceiling rather than inf, which JSON cannot hold.
    const double sqnr = e.second > 0 ? 10.0 * std::log10(e.first / e.second) : 300.0;
    rows.push_back({{"layer", name}, {"sqnr_db", sqnr}, {"nmse", nmse}});
  }
  // Worst first; layers without a number before all others.
  std::stable_sort(rows.begin(), rows.end(), [](const json& a, const json& b) {
    if (a["sqnr_db"].is_null() != b["sqnr_db"].is_null()) return a["sqnr_db"].is_null();
    return !a["sqnr_db"].is_null() && a["sqnr_db"].get<double>() < b["sqnr_db"].get<double>();
  });
  if (!non_finite.empty() && bad_layers) *bad_layers = std::move(non_finite);
  return rows;
}

json stats_json(const std::vector<double>& samples, std::size_t sentences_per_call) {
  const latency_stats s = summarize_latency(samples);
  return {{"p50_ms", s.p50_ms},
          {"p90_ms", s.p90_ms},
          {"p99_ms", s.p99_ms},
          {"mean_ms", s.mean_ms},
          {"stdev_ms", s.stdev_ms},
          {"throughput_per_s", s.mean_ms > 0 ? 1000.0 * static_cast<double>(sentences_per_call) / s.mean_ms : 0.0},
          {"samples_ms", samples}};
}

struct paired_latency {
  json baseline, candidate;
};

// Baseline and candidate timed alternately on the same inputs, so machine drift hits both; the
// speedup is the ratio of their medians (probe) or of their total times (dataset).
paired_latency measure_latency(const workload& w, distilbert_classifier& baseline, distilbert_classifier* other) {
  const auto& s = w.config.latency;
  paired_latency out{{{"probe", json::array()}, {"dataset", json::array()}},
                     {{"probe", json::array()}, {"dataset", json::array()}}};
  std::vector<distilbert_classifier*> models{&baseline};
  if (other) models.push_back(other);
  const int original_threads = compute_threads();
  for (int threads : s.threads) {
    set_compute_threads(threads);
    for (int batch : s.batch_sizes) {
      const std::vector<std::string> texts(batch, s.probe_text);
      std::vector<double> tokenize_ms;
      batch_encoding encoded;
      for (int i = 0; i < std::max(3, s.iterations / 10); ++i)
        tokenize_ms.push_back(time_ms([&] { encoded = w.tokenizer.encode_batch(texts, w.config.max_length); }));
      for (int i = 0; i < s.warmup; ++i)
        for (auto* m : models) m->forward(encoded.input_ids, encoded.attention_mask);
      std::vector<std::vector<double>> samples(models.size());
      for (int i = 0; i < s.iterations; ++i)
        for (std::size_t k = 0; k < models.size(); ++k)
          samples[k].push_back(time_ms([&] { models[k]->forward(encoded.input_ids, encoded.attention_mask); }));
      const json setting = {{"batch_size", batch},
                            {"threads", threads},
                            {"tokens", encoded.input_ids.size(1)},
                            {"warmup", s.warmup},
                            {"iterations", s.iterations},
                            {"tokenize_ms", summarize_latency(tokenize_ms).mean_ms}};
      json b = setting, c = setting;
      b.update(stats_json(samples[0], batch));
      b["speedup_vs_fp32"] = 1.0;
      out.baseline["probe"].push_back(b);
      if (other) {
        c.update(stats_json(samples[1], batch));
        c["speedup_vs_fp32"] = summarize_latency(samples[0]).p50_ms / summarize_latency(samples[1]).p50_ms;
        c["baseline_p50_ms"] = b["p50_ms"];
        out.candidate["probe"].push_back(c);
      }
    }
    const std::size_t n = std::min<std::size_t>(w.ids.size(), s.dataset_sentences);
    if (n == 0) continue;
    std::vector<std::vector<double>> samples(models.size());
    std::vector<double> tokenize_ms;
    std::size_t tokens = 0;
    for (std::size_t i = 0; i < std::min<std::size_t>(n, s.warmup); ++i)
      for (auto* m : models) m->forward(at::tensor(w.ids[i], at::kLong).unsqueeze(0));
    for (std::size_t i = 0; i < n; ++i) {
      tokenize_ms.push_back(time_ms([&] { w.tokenizer.encode_ids(w.data.sentences[i], w.config.max_length); }));
      const auto input = at::tensor(w.ids[i], at::kLong).unsqueeze(0);
      tokens += w.ids[i].size();
      for (std::size_t k = 0; k < models.size(); ++k) samples[k].push_back(time_ms([&] { models[k]->forward(input); }));
    }
    const json setting = {{"batch_size", 1},
                          {"threads", threads},
                          {"sentences", n},
                          {"mean_tokens", static_cast<double>(tokens) / static_cast<double>(n)},
                          {"tokenize_ms", summarize_latency(tokenize_ms).mean_ms}};
    json b = setting, c = setting;
    b.update(stats_json(samples[0], 1));
    b["speedup_vs_fp32"] = 1.0;
    out.baseline["dataset"].push_back(b);
    if (other) {
      c.update(stats_json(samples[1], 1));
      c["speedup_vs_fp32"] = summarize_latency(samples[0]).mean_ms / summarize_latency(samples[1]).mean_ms;
      c["baseline_mean_ms"] = b["mean_ms"];
      out.candidate["dataset"].push_back(c);
    }
  }
  set_compute_threads(original_threads);
  return out;
}

// Set in the environment of a child process that measures one quantizer (measure.isolate).
constexpr const char* worker_variable = "QEXP_PTQ_WORKER";
// With measure.timeout_s: how long a worker may take to load what it needs (the model, the data,
// the plugins) before it starts measuring.
constexpr double startup_limit_seconds = 300;

// Called as each part of a quantizer's measurement starts, with what is measured so far: in a
// child process it sends both to the parent, which keeps them if the child dies.
using stage_hook = std::function<void(const char* stage, const json& result_so_far)>;

class ptq_run {
 public:
  // A worker (run_worker) writes nothing but its checkpoint, into the parent's folder.
  ptq_run(const ptq_config& config, const YAML::Node& resolved, const run_request& request, bool worker)
      : config_(config), request_(request), resolved_text_(to_yaml_text(resolved)) {
    if (worker) return;
    const fs::path root = request.out_root.empty() ? fs::path(config.output_dir) : request.out_root;
    if (request.results_dir.empty()) {
      dir_ = make_run_dir(root, config.name);
    } else {
      dir_ = fs::absolute(request.results_dir);
      fs::create_directories(dir_);
    }
    write_text_atomically(dir_ / "config.yaml", to_yaml_text(resolved));
    started_ = std::chrono::steady_clock::now();
    doc_ = {{"schema", "qexp.results/1"},
            {"experiment",
             {{"name", config.name},
              {"kind", "ptq"},
              {"description", config.description},
              {"config_file", config.source_file.string()},
              {"resolved_config", yaml_to_json(resolved)},
              {"started_at", utc_stamp("%Y-%m-%dT%H:%M:%SZ")},
              {"complete", false},
              {"output_dir", dir_.string()}}},
            {"environment", environment_json(config.source_file.parent_path())},
            {"results", json::array()}};
    spdlog::info("experiment '{}': results in {}", config.name, dir_.string());
    const unsigned cores = std::thread::hardware_concurrency();
    for (int threads : config.latency.threads)
      if (cores > 0 && threads > static_cast<int>(cores))
        spdlog::warn("measure.latency.threads {} is more than this machine's {} cores: the timings will be "
                     "oversubscribed", threads, cores);
  }

  int run() {
    workload w = load_workload();
    spdlog::info("baseline: {}", config_.baseline.label);
    candidate baseline = build_candidate(w, config_.baseline, *request_.plugins);
    json base = result_header(baseline);
    base["is_baseline"] = true;
    at::Tensor base_probs, base_probe;
    measure(w, baseline, nullptr, base, base_probs, base_probe, 0, nullptr);
    record(base);
    if (config_.isolate && !config_.quantizers.empty()) save_baseline_for_workers(base_probs, base_probe);

    int failures = 0;
    for (std::size_t i = 0; i < config_.quantizers.size(); ++i) {
      const auto& entry = config_.quantizers[i];
      spdlog::info("[{}/{}] {}", i + 1, config_.quantizers.size(), entry.label);
      // results.json names the quantizer before it runs, so a run killed now says which one it was.
      json result = {{"label", entry.label}, {"plugin", plugins_of(entry)}, {"options", options_of(entry)},
                     {"is_baseline", false}, {"status", "running"}, {"error", nullptr}};
      const std::size_t row = record(result);
      result = config_.isolate ? measure_in_child(entry, result, row)
                               : measure_quantizer(w, entry, baseline, result, base_probs, base_probe, row, nullptr);
      if (result["status"] != "ok") {
        // Recorded with whatever was measured before the failure; the next quantizer still runs.
        ++failures;
        spdlog::error("{}: {}", entry.label, result["error"].get<std::string>());
      }
      doc_["results"][row] = result;
      write_results();
    }
    if (!baseline_file_.empty()) fs::remove(baseline_file_);
    doc_["experiment"]["complete"] = true;
    write_results();
    std::cout << summary_table({doc_});
    spdlog::info("experiment '{}' done in {:.1f} s: {}", config_.name, elapsed_seconds(), dir_.string());
    return failures ? static_cast<int>(exit_code::runtime_failure) : 0;
  }

 private:
  double elapsed_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  }

  workload load_workload() {
    workload w{config_, wordpiece_tokenizer::from_model_folder(config_.model_path),
               distilbert_classifier::from_folder(config_.model_path),
               read_sentence_tsv(config_.data_path, static_cast<std::size_t>(config_.data_limit)), {}, {}, {}};
    const auto classes = static_cast<std::int64_t>(w.fp32.config().id2label.size());
    for (std::size_t i = 0; i < w.data.size(); ++i)
      if (w.data.labels[i] >= classes)
        throw input_error("dataset " + config_.data_path.string() + ":" + std::to_string(w.data.lines[i]) +
                          ": label " + std::to_string(w.data.labels[i]) + " is not a class of the model (" +
                          std::to_string(classes) + " classes: expected 0.." + std::to_string(classes - 1) + ")");
    std::size_t tokens = 0;
    for (const auto& s : w.data.sentences) {
      w.ids.push_back(w.tokenizer.encode_ids(s, config_.max_length));
      tokens += w.ids.back().size();
    }
    w.probe_ids = w.tokenizer.encode_ids(config_.latency.probe_text, config_.max_length);
    const auto& mc = w.fp32.config();
    std::int64_t parameters = 0;
    for (const auto& [name, t] : w.fp32.non_linear_tensors()) parameters += t.numel();
    for (const auto& name : w.fp32.linear_names()) {
      const layer l = w.fp32.float_layer(name);
      parameters += l.weight.numel() + (l.bias.defined() ? l.bias.numel() : 0);
    }
    doc_["model"] = {{"path", config_.model_path.string()}, {"dim", mc.dim}, {"n_layers", mc.n_layers},
                     {"linear_layers", w.fp32.linear_names().size()}, {"parameters", parameters}};
    doc_["data"] = {{"path", config_.data_path.string()}, {"sentences", w.data.size()},
                    {"max_length", config_.max_length},
                    {"mean_tokens", w.ids.empty() ? 0.0 : static_cast<double>(tokens) / w.ids.size()}};
    return w;
  }

  // A one-rule recipe reads as before: its plugin and options; a longer one lists its plugins.
  static std::string plugins_of(const quantizer_entry& e) {
    std::string out;
    for (const auto& rule : e.scheme.rules) out += (out.empty() ? "" : "+") + rule.plugin;
    return out;
  }
  static json options_of(const quantizer_entry& e) {
    return e.scheme.rules.size() == 1 ? json(e.scheme.rules[0].options) : json::object();
  }

  json result_header(const candidate& c) const {
    const auto& sites = c.quantized.sites;
    json rules = json::array();
    std::string versions;
    for (std::size_t i = 0; i < c.entry->scheme.rules.size(); ++i) {
      const auto& rule = c.entry->scheme.rules[i];
      json assigned = json::array();
      for (const auto& a : c.quantized.assignment)
        if (a.rule == static_cast<int>(i)) assigned.push_back(a.target.name);
      const auto& record = request_.plugins->find(rule.plugin);
      versions += (versions.empty() ? "" : "+") + std::string(record.info->version);
      rules.push_back({{"plugin", rule.plugin}, {"plugin_version", record.info->version}, {"options", rule.options},
                       {"include", rule.layers.include}, {"exclude", rule.layers.exclude}, {"sites", assigned}});
    }
    json out = {{"label", c.entry->label},
                {"plugin", plugins_of(*c.entry)},
                {"plugin_version", versions},
                {"options", options_of(*c.entry)},
                {"is_baseline", false},
                {"status", "ok"},
                {"error", nullptr},
                {"layers_quantized", c.linear_sites()},
                {"sites_quantized", sites.size()},
                {"recipe", rules},
                {"prepare_seconds", c.quantized.prepare_seconds}};
    if (c.calibration_sentences) {
      const auto& cal = config_.calibration;
      out["calibration"] = {{"data", cal.data_path.string()}, {"sentences", cal.sentences},
                            {"sentences_used", c.calibration_sentences},
                            {"batch_size", cal.batch_size}, {"seed", cal.seed}, {"mode", to_string(cal.mode)},
                            {"seconds", c.quantized.calibration_seconds}};
    }
    return out;
  }

  // One quantizer, prepared and measured; never throws: a failure is the returned row's status and
  // error, with what was measured before it.
  json measure_quantizer(workload& w, const quantizer_entry& entry, candidate& baseline, json result,
                         at::Tensor& base_probs, at::Tensor& base_probe, std::size_t row, const stage_hook& hook) {
    const char* stage = "preparing";
    const stage_hook track = [&](const char* next, const json& so_far) {
      stage = next;
      if (hook) hook(next, so_far);
    };
    try {
      track("preparing", result);
      candidate c = build_candidate(w, entry, *request_.plugins);
      result = result_header(c);
      measure(w, c, &baseline, result, base_probs, base_probe, row, track);
      result["status"] = "ok";
    } catch (const std::exception& e) {
      result["status"] = "failed";
      result["error"] = error_message(e);
    } catch (...) {
      result["status"] = "failed";
      result["error"] = "'" + entry.label + "': a plugin threw something that is not a std::exception while " +
                        stage + "; expected plugins to throw std::exception";
    }
    return result;
  }

  // measure_quantizer in a child process: this program again, same command line, told by
  // worker_variable which row to measure (run_worker). The child sends the row as each stage
  // starts and when it is done; when it dies instead, the row is the last one it sent, failed, with
  // how the process ended and the stage it was in.
  json measure_in_child(const quantizer_entry& entry, const json& result, std::size_t row) {
    const json job = {{"quantizer", row - 1},
                      {"results_dir", dir_.string()},
                      {"baseline", baseline_file_.string()},
                      {"config_digest", config_digest()},
                      {"row", result}};
    // The child reloads the model before its first message: that is not the quantizer's time.
    const isolated_run child = run_isolated(this_program_command_line(), {{worker_variable, job.dump()}},
                                            config_.timeout_s, std::max(config_.timeout_s, startup_limit_seconds));
    json last = result;
    std::string stage = "starting";
    for (const auto& message : child.messages) {
      const json m = json::parse(message, nullptr, false);
      if (m.is_discarded() || !m.is_object() || !m.contains("result")) continue;
      if (m.value("done", false)) return m["result"];
      last = m["result"];
      stage = m.value("stage", stage);
    }
    const char* cause = child.timed_out ? "" : child.signal > 0 ? " (a crash in a plugin, most likely)"
                                                                : " (its error is in the log above)";
    last["status"] = "failed";
    last["error"] = "'" + entry.label + "': its process " + child.ending("measure.timeout_s") + " while " + stage +
                    cause + "; the sections measured before are kept";
    last["process"] = {{"exit_status", child.exit_status >= 0 ? json(child.exit_status) : json(nullptr)},
                       {"signal", child.signal > 0 ? json(child.signal) : json(nullptr)},
                       {"timed_out", child.timed_out},
                       {"stage", stage},
                       {"seconds", child.seconds}};
    return last;
  }

 public:
  // The child's side of measure_in_child: loads what the parent loaded, measures one quantizer
  // against the parent's baseline predictions, sends the row. Returns the exit code.
  int run_worker(const json& job) {
    const auto& channel = parent_channel();
    if (!channel) throw error(std::string(worker_variable) + " is set, but this process was not started by qexp run");
    if (job.value("config_digest", std::string()) != config_digest())
      throw config_error(config_.source_file.string() + ": the config changed while the experiment ran; expected "
                         "what the run started with");
    dir_ = job.at("results_dir").get<std::string>();
    const auto index = job.at("quantizer").get<std::size_t>();
    if (index >= config_.quantizers.size()) throw error("worker: no quantizer " + std::to_string(index));
    workload w = load_workload();
    candidate baseline = build_candidate(w, config_.baseline, *request_.plugins);
    const json saved = json::parse(read_regular_file(job.at("baseline").get<std::string>(), "the baseline's predictions"));
    baseline_bytes_ = saved.at("checkpoint_bytes").get<double>();
    at::Tensor base_probs, base_probe;
    if (!saved.at("probabilities").is_null()) {
      const auto probs = saved.at("probabilities").get<std::vector<double>>();
      const auto probe = saved.at("probe").get<std::vector<double>>();
      base_probs = at::tensor(probs, at::kDouble).view({static_cast<std::int64_t>(w.ids.size()), -1});
      base_probe = at::tensor(probe, at::kDouble);
    }
    const auto send = [&](const json& message) { channel(message.dump(-1, ' ', false, json::error_handler_t::replace)); };
    const json done = measure_quantizer(w, config_.quantizers[index], baseline, job.at("row"), base_probs, base_probe,
                                        index + 1, [&](const char* stage, const json& so_far) {
                                          send({{"stage", stage}, {"result", so_far}});
                                        });
    send({{"done", true}, {"result", done}});
    return 0;
  }

 private:
  // What a worker checks it was started with the same config as its parent.
  std::string config_digest() const { return std::to_string(std::hash<std::string>{}(resolved_text_)); }

  // The baseline's predictions and checkpoint size, for the workers (a temporary file).
  void save_baseline_for_workers(const at::Tensor& base_probs, const at::Tensor& base_probe) {
    json saved = {{"checkpoint_bytes", baseline_bytes_}, {"probabilities", nullptr}, {"probe", nullptr}};
    if (base_probs.defined()) {
      const auto p = base_probs.contiguous(), q = base_probe.contiguous();
      saved["probabilities"] = std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
      saved["probe"] = std::vector<double>(q.data_ptr<double>(), q.data_ptr<double>() + q.numel());
    }
    baseline_file_ = fs::temp_directory_path() /
                     ("qexp-baseline-" + std::to_string(::getpid()) + "-" + utc_stamp("%Y%m%d%H%M%S") + ".json");
    write_text_atomically(baseline_file_, saved.dump() + "\n");
  }

  // Fills `result` section by section, so a failure keeps what was already measured; `hook` (may be
  // empty) hears of each section before it starts.
  void measure(const workload& w, candidate& c, candidate* baseline, json& result, at::Tensor& base_probs,
               at::Tensor& base_probe, std::size_t row, const stage_hook& hook) {
    const bool is_baseline = baseline == nullptr;
    const auto stage = [&](const char* name) {
      if (hook) hook(name, result);
    };
    if (config_.measure_size) {
      stage("saving the checkpoint");
      const std::string file = "checkpoint-" + std::to_string(row) + ".safetensors";
      result["size"] = save_checkpoint(c, dir_ / file);
      baseline_bytes_ = is_baseline ? result["size"]["file_bytes"].get<double>() : baseline_bytes_;
      result["size"]["ratio_to_fp32"] = result["size"]["file_bytes"].get<double>() / baseline_bytes_;
      result["size"]["ratio_is_to"] = "baseline checkpoint";
    }
    // Accuracy and layer error are not timed: they get the largest thread count the config allows
    // (more than that oversubscribes a shared machine, where spinning OpenMP threads crawl).
    const int threads = compute_threads();
    set_compute_threads(*std::max_element(config_.latency.threads.begin(), config_.latency.threads.end()));
    // NaN or inf outputs fail the scheme (after the layer errors, which name the sites).
    std::string not_finite;
    try {
      if (config_.accuracy.enabled) {
        stage("measuring accuracy");
        auto probs = predict_probabilities(c.model(), w, config_.accuracy.batch_size, c.entry->label + " accuracy");
        if (const auto bad = (~at::isfinite(probs)).any(1).sum().item<std::int64_t>(); bad > 0) {
          not_finite = "the model's outputs are not finite (NaN or inf) on " + std::to_string(bad) + " of " +
                       std::to_string(probs.size(0)) + " sentences";
        } else {
          auto probe =
              at::softmax(c.model().forward(at::tensor(w.probe_ids, at::kLong).unsqueeze(0)).to(at::kDouble), 1)[0];
          if (is_baseline) base_probs = probs, base_probe = probe;
          result["accuracy"] = accuracy_json(probs, base_probs, w, probe, base_probe);
        }
      }
      if (config_.layer_error.enabled) {
        stage("measuring layer errors");
        std::vector<std::string> bad_layers;
        result["layer_error"] = is_baseline ? json::array() : layer_error_json(w, c, &bad_layers);
        if (!bad_layers.empty())
          not_finite += (not_finite.empty() ? "" : "; ") + std::string("the outputs of ") +
                        std::to_string(bad_layers.size()) + " quantized site(s) are not finite (NaN or inf), first " +
                        bad_layers.front();
      }
    } catch (...) {
      set_compute_threads(threads);
      throw;
    }
    set_compute_threads(threads);
    if (!not_finite.empty())
      throw error("'" + c.entry->label + "': " + not_finite + "; expected finite outputs (are the weights finite?)");
    if (config_.latency.enabled) {
      stage("measuring latency");
      auto latency = measure_latency(w, is_baseline ? c.model() : baseline->model(), is_baseline ? nullptr : &c.model());
      result["latency"] = is_baseline ? latency.baseline : latency.candidate;
    }
  }

  // Appends a row and writes results.json; returns the row's index.
  std::size_t record(const json& result) {
    doc_["results"].push_back(result);
    write_results();
    return doc_["results"].size() - 1;
  }

  void write_results() {
    doc_["experiment"]["finished_at"] = utc_stamp("%Y-%m-%dT%H:%M:%SZ");
    doc_["experiment"]["wall_seconds"] = elapsed_seconds();
    // Text that is not UTF-8 (a plugin's strings, a path) is written as U+FFFD rather than lost
    // with the whole file; config strings were already checked to be UTF-8.
    write_text_atomically(dir_ / "results.json",
                          doc_.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    try {
      rebuild_report(dir_);
    } catch (const std::exception& e) {
      const bool complete = doc_["experiment"]["complete"].get<bool>();
      spdlog::warn("report not rebuilt ({}); results.json is written{}", error_message(e),
                   complete ? " and complete" : " (the run is not finished: complete is false)");
    }
  }

  const ptq_config& config_;
  const run_request& request_;
  const std::string resolved_text_;
  fs::path baseline_file_;  // the baseline's predictions for the workers, while quantizers run
  fs::path dir_;
  json doc_;
  double baseline_bytes_ = 1;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

int run_ptq(const ptq_config& config, const YAML::Node& resolved, const run_request& request) {
  if (!request.plugins) throw error("run_ptq: no plugin registry");
  c10::InferenceMode inference;
  if (const char* job = std::getenv(worker_variable)) {
    const json parsed = json::parse(job, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) throw error(std::string(worker_variable) + " is not a JSON object");
    ptq_run worker(config, resolved, request, true);
    return worker.run_worker(parsed);
  }
  ptq_run run(config, resolved, request, false);
  return run.run();
}

}  // namespace qexp

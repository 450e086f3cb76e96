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

#include "calibration_data.h"
#include "measurement.h"
#include "results_folder.h"
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

// Everything measured against, loaded once per run.
struct workload {
  const ptq_config& config;
  evaluation_data eval;
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
  const auto assignment = assign_sites(entry.scheme, w.eval.fp32.sites(), plugins);
  const bool calibrates = recipe_wants_calibration(entry.scheme, assignment, plugins);
  if (calibrates && !w.calibration) {
    w.calibration = load_calibration_set(w.config.calibration, w.eval.tokenizer, w.config.max_length);
    spdlog::info("  calibration: {}, batch {}, mode {}", w.calibration->source, w.calibration->batch_size,
                 to_string(w.calibration->mode));
  }
  return {&entry, apply_recipe(w.eval.fp32, entry.scheme, plugins, calibrates ? &*w.calibration : nullptr, w.config.seed),
          calibrates ? w.calibration->ids.size() : 0};
}

// compare_predictions and the probe sentence's probabilities and their distance to fp32's.
results::accuracy_section accuracy_of(const at::Tensor& probs, const at::Tensor& baseline_probs,
                                      const at::Tensor& probe_probs, const at::Tensor& baseline_probe_probs,
                                      const workload& w) {
  auto out = compare_predictions(probs, baseline_probs, w.eval.data.labels, w.config.seed);
  const auto probe = probe_probs.contiguous();
  out.probe_total_abs_dp = (probe_probs - baseline_probe_probs).abs().sum().item<double>();
  out.probe_probabilities = std::vector<double>(probe.data_ptr<double>(), probe.data_ptr<double>() + probe.numel());
  return out;
}

results::size_section save_checkpoint(candidate& c, const fs::path& file) {
  const checkpoint_size size = save_quantized_checkpoint(c.model(), c.quantized.sites, file);
  results::size_section out;
  out.file_bytes = static_cast<std::int64_t>(size.file_bytes);
  out.checkpoint = file.string();
  out.breakdown.emplace();
  for (const auto& [bucket, bytes] : size.breakdown) (*out.breakdown)[bucket] = static_cast<std::int64_t>(bytes);
  return out;
}

// A file removed when the run ends, also when it ends by an exception.
struct temporary_file {
  fs::path path;
  temporary_file() = default;
  temporary_file(const temporary_file&) = delete;
  temporary_file& operator=(const temporary_file&) = delete;
  ~temporary_file() {
    std::error_code ignored;
    if (!path.empty()) fs::remove(path, ignored);
  }
};

// Set in the environment of a child process that measures one quantizer (measure.isolate).
constexpr const char* worker_variable = "QEXP_PTQ_WORKER";
// With measure.timeout_s: how long a worker may take to load what it needs (the model, the data,
// the plugins) before it starts measuring.
constexpr double startup_limit_seconds = 300;

// Called as each part of a quantizer's measurement starts, with what is measured so far: in a
// child process it sends both to the parent, which keeps them if the child dies.
using stage_hook = std::function<void(const char* stage, const results::scheme_result& result_so_far)>;

class ptq_run {
 public:
  // A worker (run_worker) writes nothing but its checkpoint, into the parent's folder.
  ptq_run(const ptq_config& config, const YAML::Node& resolved, const run_request& request, bool worker)
      : config_(config), request_(request), resolved_text_(to_yaml_text(resolved)) {
    if (worker) return;
    folder_.emplace("ptq", config.name, config.description, config.source_file, resolved, config.output_dir, request);
    dir_ = folder_->dir();
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
    results::scheme_result base = result_header(baseline);
    base.is_baseline = true;
    at::Tensor base_probs, base_probe;
    measure(w, baseline, nullptr, base, base_probs, base_probe, 0, nullptr);
    record(base);
    if (config_.isolate && !config_.quantizers.empty()) save_baseline_for_workers(base_probs, base_probe);

    int failures = 0;
    for (std::size_t i = 0; i < config_.quantizers.size(); ++i) {
      const auto& entry = config_.quantizers[i];
      spdlog::info("[{}/{}] {}", i + 1, config_.quantizers.size(), entry.label);
      // results.json names the quantizer before it runs, so a run killed now says which one it was.
      results::scheme_result result;
      result.label = entry.label;
      result.plugin = plugins_of(entry);
      result.options = options_of(entry);
      result.status = "running";
      const std::size_t row = record(result);
      result = config_.isolate ? measure_in_child(entry, result, row)
                               : measure_quantizer(w, entry, baseline, result, base_probs, base_probe, row, nullptr);
      if (!result.ok()) {
        // Recorded with whatever was measured before the failure; the next quantizer still runs.
        ++failures;
        spdlog::error("{}: {}", entry.label, result.error.value.value_or("(no message)"));
      }
      folder_->doc().results[row] = result;
      folder_->write();
    }
    folder_->finish();
    std::cout << summary_table({json(folder_->doc())});
    spdlog::info("experiment '{}' done in {:.1f} s: {}", config_.name, folder_->elapsed_seconds(), dir_.string());
    return failures ? static_cast<int>(exit_code::runtime_failure) : 0;
  }

 private:
  workload load_workload() {
    workload w{config_,
               load_evaluation_data(config_.model_path, config_.data_path, config_.data_limit, config_.max_length),
               {}, {}};
    w.probe_ids = w.eval.tokenizer.encode_ids(config_.latency.probe_text, config_.max_length);
    if (folder_) {
      folder_->doc().model = model_section_of(w.eval);
      folder_->doc().data = data_section_of(w.eval);
    }
    return w;
  }

  // A one-rule recipe reads as before: its plugin and options; a longer one lists its plugins.
  static std::string plugins_of(const quantizer_entry& e) {
    std::string out;
    for (const auto& rule : e.scheme.rules) out += (out.empty() ? "" : "+") + rule.plugin;
    return out;
  }
  static results::option_map options_of(const quantizer_entry& e) {
    return e.scheme.rules.size() == 1 ? results::option_map(e.scheme.rules[0].options.begin(),
                                                            e.scheme.rules[0].options.end())
                                      : results::option_map();
  }

  results::scheme_result result_header(const candidate& c) const {
    results::scheme_result out;
    out.label = c.entry->label;
    out.plugin = plugins_of(*c.entry);
    out.options = options_of(*c.entry);
    out.status = "ok";
    out.recipe.emplace();
    std::string versions;
    for (std::size_t i = 0; i < c.entry->scheme.rules.size(); ++i) {
      const auto& rule = c.entry->scheme.rules[i];
      results::recipe_rule_section r;
      for (const auto& a : c.quantized.assignment)
        if (a.rule == static_cast<int>(i)) r.sites.push_back(a.target.name);
      const auto& record = request_.plugins->find(rule.plugin);
      versions += (versions.empty() ? "" : "+") + std::string(record.info->version);
      r.plugin = rule.plugin;
      r.plugin_version = record.info->version;
      r.options = results::option_map(rule.options.begin(), rule.options.end());
      r.include = rule.layers.include;
      r.exclude = rule.layers.exclude;
      out.recipe->push_back(std::move(r));
    }
    out.plugin_version = versions;
    out.layers_quantized = static_cast<std::int64_t>(c.linear_sites());
    out.sites_quantized = static_cast<std::int64_t>(c.quantized.sites.size());
    out.prepare_seconds = c.quantized.prepare_seconds;
    if (c.calibration_sentences) {
      const auto& cal = config_.calibration;
      results::calibration_section section;
      section.data = cal.data_path.string();
      section.sentences = cal.sentences;
      section.sentences_used = static_cast<std::int64_t>(c.calibration_sentences);
      section.batch_size = cal.batch_size;
      section.seed = cal.seed;
      section.mode = to_string(cal.mode);
      section.seconds = c.quantized.calibration_seconds;
      out.calibration = section;
    }
    return out;
  }

  // One quantizer, prepared and measured; never throws: a failure is the returned row's status and
  // error, with what was measured before it.
  results::scheme_result measure_quantizer(workload& w, const quantizer_entry& entry, candidate& baseline,
                                           results::scheme_result result, at::Tensor& base_probs,
                                           at::Tensor& base_probe, std::size_t row, const stage_hook& hook) {
    const char* stage = "preparing";
    const stage_hook track = [&](const char* next, const results::scheme_result& so_far) {
      stage = next;
      if (hook) hook(next, so_far);
    };
    try {
      track("preparing", result);
      candidate c = build_candidate(w, entry, *request_.plugins);
      result = result_header(c);
      measure(w, c, &baseline, result, base_probs, base_probe, row, track);
      result.status = "ok";
    } catch (const std::exception& e) {
      result.status = "failed";
      result.error = error_message(e);
    } catch (...) {
      result.status = "failed";
      result.error = "'" + entry.label + "': a plugin threw something that is not a std::exception while " +
                     stage + "; expected plugins to throw std::exception";
    }
    return result;
  }

  // measure_quantizer in a child process: this program again, same command line, told by
  // worker_variable which row to measure (run_worker). The child sends the row as each stage
  // starts and when it is done; when it dies instead, the row is the last one it sent, failed, with
  // how the process ended and the stage it was in.
  results::scheme_result measure_in_child(const quantizer_entry& entry, const results::scheme_result& result,
                                          std::size_t row) {
    const json job = {{"quantizer", row - 1},
                      {"results_dir", dir_.string()},
                      {"baseline", baseline_file_.path.string()},
                      {"config_digest", config_digest()},
                      {"row", result}};
    // The child reloads the model before its first message: that is not the quantizer's time.
    const isolated_run child = run_isolated(this_program_command_line(), {{worker_variable, job.dump()}},
                                            config_.timeout_s, std::max(config_.timeout_s, startup_limit_seconds));
    results::scheme_result last = result;
    std::string stage = "starting";
    for (const auto& message : child.messages) {
      const json m = json::parse(message, nullptr, false);
      if (m.is_discarded() || !m.is_object() || !m.contains("result")) continue;
      if (m.value("done", false)) return m["result"].get<results::scheme_result>();
      last = m["result"].get<results::scheme_result>();
      stage = m.value("stage", stage);
    }
    const char* cause = child.timed_out ? "" : child.signal > 0 ? " (a crash in a plugin, most likely)"
                                                                : " (its error is in the log above)";
    last.status = "failed";
    last.error = "'" + entry.label + "': its process " + child.ending("measure.timeout_s") + " while " + stage +
                 cause + "; the sections measured before are kept";
    results::process_section process;
    if (child.exit_status >= 0) process.exit_status = child.exit_status;
    if (child.signal > 0) process.signal = child.signal;
    process.timed_out = child.timed_out;
    process.stage = stage;
    process.seconds = child.seconds;
    last.process = process;
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
      base_probs = at::tensor(probs, at::kDouble).view({static_cast<std::int64_t>(w.eval.ids.size()), -1});
      base_probe = at::tensor(probe, at::kDouble);
    }
    const auto send = [&](const json& message) { channel(message.dump(-1, ' ', false, json::error_handler_t::replace)); };
    const results::scheme_result done =
        measure_quantizer(w, config_.quantizers[index], baseline, job.at("row").get<results::scheme_result>(),
                          base_probs, base_probe, index + 1,
                          [&](const char* stage, const results::scheme_result& so_far) {
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
    baseline_file_.path = fs::temp_directory_path() /
                          ("qexp-baseline-" + std::to_string(::getpid()) + "-" + utc_stamp("%Y%m%d%H%M%S") + ".json");
    write_text_atomically(baseline_file_.path, saved.dump() + "\n");
  }

  // Fills `result` section by section, so a failure keeps what was already measured; `hook` (may be
  // empty) hears of each section before it starts.
  void measure(const workload& w, candidate& c, candidate* baseline, results::scheme_result& result,
               at::Tensor& base_probs,
               at::Tensor& base_probe, std::size_t row, const stage_hook& hook) {
    const bool is_baseline = baseline == nullptr;
    const auto stage = [&](const char* name) {
      if (hook) hook(name, result);
    };
    if (config_.measure_size) {
      stage("saving the checkpoint");
      const std::string file = "checkpoint-" + std::to_string(row) + ".safetensors";
      auto& size = result.size.emplace(save_checkpoint(c, dir_ / file));
      const double bytes = static_cast<double>(*size.file_bytes);
      baseline_bytes_ = is_baseline ? bytes : baseline_bytes_;
      size.ratio_to_fp32 = bytes / baseline_bytes_;
      size.ratio_is_to = "baseline checkpoint";
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
        auto probs = predict_probabilities(c.model(), w.eval, config_.accuracy.batch_size, c.entry->label + " accuracy");
        if (const auto bad = (~at::isfinite(probs)).any(1).sum().item<std::int64_t>(); bad > 0) {
          not_finite = "the model's outputs are not finite (NaN or inf) on " + std::to_string(bad) + " of " +
                       std::to_string(probs.size(0)) + " sentences";
        } else {
          auto probe =
              at::softmax(c.model().forward(at::tensor(w.probe_ids, at::kLong).unsqueeze(0)).to(at::kDouble), 1)[0];
          if (is_baseline) base_probs = probs, base_probe = probe;
          result.accuracy = accuracy_of(probs, base_probs, probe, base_probe, w);
        }
      }
      if (config_.layer_error.enabled) {
        stage("measuring layer errors");
        std::vector<std::string> bad_layers;
        result.layer_error = is_baseline ? std::vector<results::layer_error_entry>()
                                         : layer_errors(w.eval, c.model(), c.quantized.sites, config_.layer_error,
                                                        &bad_layers);
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
      auto latency = measure_latency(w.eval, config_.latency, is_baseline ? c.model() : baseline->model(),
                                     is_baseline ? nullptr : &c.model());
      result.latency = is_baseline ? latency.baseline : latency.candidate;
    }
  }

  std::size_t record(const results::scheme_result& result) { return folder_->append(result); }

  const ptq_config& config_;
  const run_request& request_;
  const std::string resolved_text_;
  temporary_file baseline_file_;  // the baseline's predictions for the workers, while quantizers run
  std::optional<results_folder> folder_;  // none in a worker
  fs::path dir_;
  double baseline_bytes_ = 1;
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

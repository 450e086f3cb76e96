// results.json (schema "qexp.results/1", docs/results.md) as plain structs: the one place its keys
// are written down. Every experiment kind fills these structs, `to_json` writes them, and the
// report reads them back with `from_json`; a new metric is a member here and a line in its
// struct's `fields`, which the writer, the reader and the docs test (results_test) all follow.
//
// Reading is tolerant, as `qexp report` reads files a person may have edited: a missing key or a
// value of another type leaves the member empty (a plain member keeps its default), and unknown
// keys are ignored. Writing leaves an empty `std::optional` out and writes an empty `nullable` as
// null, so that a results.json read and written again is the same document.
//
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace qexp::results {

inline constexpr const char* schema_id = "qexp.results/1";

// A value that is always written, as null when empty (an std::optional member is left out).
template <class T>
struct nullable {
  std::optional<T> value;
  nullable() = default;
  nullable(T v) : value(std::move(v)) {}  // NOLINT: implicit, so a member is set as `x.error = "..."`
  explicit operator bool() const { return value.has_value(); }
};

// Each struct lists its keys once, in `fields(self, visit)`: visit(key, member) per member.

struct size_section {
  std::optional<std::int64_t> file_bytes;
  std::optional<std::string> checkpoint;
  std::optional<double> ratio_to_fp32;
  std::optional<std::string> ratio_is_to;
  std::optional<std::map<std::string, std::int64_t>> breakdown;  // bytes by bucket
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("file_bytes", s.file_bytes), v("checkpoint", s.checkpoint), v("ratio_to_fp32", s.ratio_to_fp32);
    v("ratio_is_to", s.ratio_is_to), v("breakdown", s.breakdown);
  }
};

// One entry of latency.probe (the probe sentence repeated to a batch) or latency.dataset (dev
// sentences one at a time).
struct latency_entry {
  std::optional<std::int64_t> batch_size, threads;
  std::optional<std::int64_t> tokens, warmup, iterations;  // probe only
  std::optional<std::int64_t> sentences;                   // dataset only
  std::optional<double> mean_tokens;                       // dataset only
  std::optional<double> p50_ms, p90_ms, p99_ms, mean_ms, stdev_ms, throughput_per_s, tokenize_ms;
  std::optional<double> speedup_vs_fp32;
  std::optional<double> baseline_p50_ms;   // probe: the numerator of the speedup
  std::optional<double> baseline_mean_ms;  // dataset: the numerator of the speedup
  std::optional<std::vector<double>> samples_ms;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("batch_size", s.batch_size), v("threads", s.threads), v("tokens", s.tokens), v("warmup", s.warmup);
    v("iterations", s.iterations), v("sentences", s.sentences), v("mean_tokens", s.mean_tokens);
    v("p50_ms", s.p50_ms), v("p90_ms", s.p90_ms), v("p99_ms", s.p99_ms), v("mean_ms", s.mean_ms);
    v("stdev_ms", s.stdev_ms), v("throughput_per_s", s.throughput_per_s), v("tokenize_ms", s.tokenize_ms);
    v("speedup_vs_fp32", s.speedup_vs_fp32), v("baseline_p50_ms", s.baseline_p50_ms);
    v("baseline_mean_ms", s.baseline_mean_ms), v("samples_ms", s.samples_ms);
  }
};

struct latency_section {
  std::vector<latency_entry> probe, dataset;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("probe", s.probe), v("dataset", s.dataset);
  }
};

// A model's predictions against the fp32 model's on the same sentences.
struct accuracy_section {
  std::optional<std::int64_t> sentences;
  std::optional<double> accuracy, accuracy_delta_vs_fp32;
  std::optional<std::array<double, 2>> accuracy_delta_ci95;
  std::optional<bool> accuracy_delta_significant;
  std::optional<double> mcnemar_p;
  std::optional<std::int64_t> sentences_only_fp32_right, sentences_only_this_right;
  std::optional<double> agreement_with_fp32, mean_kl_vs_fp32, max_abs_dp_vs_fp32;
  std::optional<double> expected_calibration_error;  // of this model's confidences (15 bins)
  std::optional<double> logits_sqnr_db;  // sensitivity and autotune: the logits against fp32's
  std::optional<double> probe_total_abs_dp;
  std::optional<std::vector<double>> probe_probabilities;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("sentences", s.sentences), v("accuracy", s.accuracy), v("accuracy_delta_vs_fp32", s.accuracy_delta_vs_fp32);
    v("accuracy_delta_ci95", s.accuracy_delta_ci95), v("accuracy_delta_significant", s.accuracy_delta_significant);
    v("mcnemar_p", s.mcnemar_p), v("sentences_only_fp32_right", s.sentences_only_fp32_right);
    v("sentences_only_this_right", s.sentences_only_this_right), v("agreement_with_fp32", s.agreement_with_fp32);
    v("mean_kl_vs_fp32", s.mean_kl_vs_fp32), v("max_abs_dp_vs_fp32", s.max_abs_dp_vs_fp32);
    v("expected_calibration_error", s.expected_calibration_error), v("logits_sqnr_db", s.logits_sqnr_db);
    v("probe_total_abs_dp", s.probe_total_abs_dp);
    v("probe_probabilities", s.probe_probabilities);
  }
};

struct layer_error_entry {
  std::string layer;
  nullable<double> sqnr_db, nmse;  // null when the site's outputs were not finite
  std::optional<bool> finite;      // present (false) only then
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("layer", s.layer), v("sqnr_db", s.sqnr_db), v("nmse", s.nmse), v("finite", s.finite);
  }
};

// ---- kind `sensitivity` ----

// One variant of a sensitivity run (a site alone, or every site but it): its predictions against
// fp32's, as `accuracy` (less the probe fields, plus logits_sqnr_db), and the seconds it took.
struct variant_measurement : accuracy_section {
  std::optional<double> seconds;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    accuracy_section::fields(s, v);
    v("seconds", s.seconds);
  }
};

struct sensitivity_site {
  std::optional<std::int64_t> rank;
  std::string site, kind, plugin;
  std::optional<std::int64_t> stage, fp32_bytes, quantized_bytes;
  std::optional<double> bytes_saved;
  std::optional<nullable<double>> site_sqnr_db, site_nmse;  // from the whole scheme's layer_error
  std::optional<variant_measurement> one_at_a_time, all_but_one;
  std::optional<std::string> error;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("rank", s.rank), v("site", s.site), v("kind", s.kind), v("stage", s.stage), v("plugin", s.plugin);
    v("fp32_bytes", s.fp32_bytes), v("quantized_bytes", s.quantized_bytes), v("bytes_saved", s.bytes_saved);
    v("site_sqnr_db", s.site_sqnr_db), v("site_nmse", s.site_nmse), v("one_at_a_time", s.one_at_a_time);
    v("all_but_one", s.all_but_one), v("error", s.error);
  }
};

// What running the variants from the saved stage inputs cost, against whole passes.
struct sensitivity_cost {
  std::optional<double> fp32_pass_seconds, scheme_pass_seconds, variant_seconds, whole_passes_estimate_seconds;
  std::optional<std::int64_t> variants, stages_per_pass, stages_run, stages_in_whole_passes;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("fp32_pass_seconds", s.fp32_pass_seconds), v("scheme_pass_seconds", s.scheme_pass_seconds);
    v("variants", s.variants), v("variant_seconds", s.variant_seconds), v("stages_per_pass", s.stages_per_pass);
    v("stages_run", s.stages_run), v("stages_in_whole_passes", s.stages_in_whole_passes);
    v("whole_passes_estimate_seconds", s.whole_passes_estimate_seconds);
  }
};

struct sensitivity_section {
  std::string scheme;
  std::vector<std::string> modes;  // one_at_a_time and/or all_but_one
  std::string ranked_by, calibration_mode;
  std::optional<std::int64_t> batch_size, threads;
  std::vector<sensitivity_site> sites;  // in rank order once the run is done
  std::optional<sensitivity_cost> cost;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("scheme", s.scheme), v("modes", s.modes), v("ranked_by", s.ranked_by);
    v("calibration_mode", s.calibration_mode), v("batch_size", s.batch_size), v("threads", s.threads);
    v("sites", s.sites), v("cost", s.cost);
  }
};

// ---- kind `autotune` ----

struct autotune_constraint {
  std::string metric;  // accuracy_drop | kl
  std::optional<double> max;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("metric", s.metric), v("max", s.max);
  }
};

struct autotune_tuning {
  std::string from, data, drawn;
  std::optional<std::int64_t> sentences, batch_size, threads;
  std::optional<double> fp32_accuracy;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("from", s.from), v("data", s.data), v("sentences", s.sentences), v("drawn", s.drawn);
    v("fp32_accuracy", s.fp32_accuracy), v("batch_size", s.batch_size), v("threads", s.threads);
  }
};

struct autotune_candidate {
  std::string label;
  std::optional<std::int64_t> sites;
  std::optional<double> prepare_seconds, calibration_seconds;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("label", s.label), v("sites", s.sites), v("prepare_seconds", s.prepare_seconds);
    v("calibration_seconds", s.calibration_seconds);
  }
};

struct autotune_estimates {
  std::optional<double> fp32_weight_bytes, fp32_batch1_ms;
  std::string latency, bytes;  // how a trial's latency and size are estimated
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("fp32_weight_bytes", s.fp32_weight_bytes), v("fp32_batch1_ms", s.fp32_batch1_ms), v("latency", s.latency);
    v("bytes", s.bytes);
  }
};

struct autotune_level {
  std::string label;
  std::optional<std::int64_t> bytes;
  std::optional<double> site_ms;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("label", s.label), v("bytes", s.bytes), v("site_ms", s.site_ms);
  }
};

struct autotune_site {
  std::string site, kind;
  std::optional<std::int64_t> stage, fp32_bytes;
  std::optional<double> fp32_site_ms;
  std::vector<autotune_level> levels;  // most aggressive first, fp32 last when allowed
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("site", s.site), v("kind", s.kind), v("stage", s.stage), v("fp32_bytes", s.fp32_bytes);
    v("fp32_site_ms", s.fp32_site_ms), v("levels", s.levels);
  }
};

// One site alone at one level, against fp32 (also a line of trials.jsonl, with "type").
struct autotune_site_measurement {
  std::string site, level;
  std::optional<double> mean_kl_vs_fp32, accuracy_delta_vs_fp32, seconds;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("site", s.site), v("level", s.level), v("mean_kl_vs_fp32", s.mean_kl_vs_fp32);
    v("accuracy_delta_vs_fp32", s.accuracy_delta_vs_fp32), v("seconds", s.seconds);
  }
};

struct autotune_trial {
  std::optional<std::int64_t> index;
  std::string phase, change;       // phase: start | fallback | trim
  std::vector<std::string> levels;  // each site's level label, in `sites` order
  std::optional<double> weight_bytes, size_ratio_to_fp32, latency_estimate_ms, metric;
  std::optional<bool> meets_constraint, kept;
  std::optional<accuracy_section> accuracy;
  std::optional<double> seconds;
  std::optional<bool> from_trials_jsonl;
  nullable<std::int64_t> same_as_trial;
  std::optional<std::string> recipe_file;                  // `chosen` only
  std::optional<std::map<std::string, std::string>> sites;  // `chosen` only: site -> level label
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("index", s.index), v("phase", s.phase), v("change", s.change), v("levels", s.levels);
    v("weight_bytes", s.weight_bytes), v("size_ratio_to_fp32", s.size_ratio_to_fp32);
    v("latency_estimate_ms", s.latency_estimate_ms), v("metric", s.metric), v("meets_constraint", s.meets_constraint);
    v("kept", s.kept), v("accuracy", s.accuracy), v("seconds", s.seconds), v("from_trials_jsonl", s.from_trials_jsonl);
    v("same_as_trial", s.same_as_trial), v("recipe_file", s.recipe_file), v("sites", s.sites);
  }
};

struct autotune_cost {
  std::optional<double> fp32_pass_seconds, prepare_seconds, trial_seconds, sensitivity_seconds;
  std::optional<std::int64_t> trials, sensitivity_measurements;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("fp32_pass_seconds", s.fp32_pass_seconds), v("prepare_seconds", s.prepare_seconds), v("trials", s.trials);
    v("trial_seconds", s.trial_seconds), v("sensitivity_measurements", s.sensitivity_measurements);
    v("sensitivity_seconds", s.sensitivity_seconds);
  }
};

struct autotune_final_row {
  std::string label, status;
  std::optional<accuracy_section> accuracy;
  std::optional<size_section> size;
  std::optional<double> latency_p50_ms;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("label", s.label), v("status", s.status), v("accuracy", s.accuracy), v("size", s.size);
    v("latency_p50_ms", s.latency_p50_ms);
  }
};

// The chosen recipe run by `qexp run` on the held-out sentences.
struct autotune_final {
  std::string config, results_dir;
  std::optional<double> metric;
  std::optional<bool> meets_constraint;
  std::optional<std::vector<autotune_final_row>> rows;
  std::optional<std::string> error;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("config", s.config), v("results_dir", s.results_dir), v("metric", s.metric);
    v("meets_constraint", s.meets_constraint), v("rows", s.rows), v("error", s.error);
  }
};

struct autotune_section {
  std::string objective;  // size | latency
  std::optional<autotune_constraint> constraint;
  std::optional<autotune_tuning> tuning;
  std::optional<std::vector<autotune_candidate>> candidates;
  std::optional<autotune_estimates> estimates;
  std::optional<std::vector<autotune_site>> sites;
  std::vector<autotune_site_measurement> sensitivity;
  std::vector<autotune_trial> trials;
  std::optional<autotune_cost> cost;
  std::optional<autotune_trial> chosen;
  std::optional<bool> met;
  std::optional<autotune_final> final;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("objective", s.objective), v("constraint", s.constraint), v("tuning", s.tuning);
    v("candidates", s.candidates), v("estimates", s.estimates), v("sites", s.sites);
    v("sensitivity", s.sensitivity), v("trials", s.trials), v("cost", s.cost), v("chosen", s.chosen);
    v("met", s.met), v("final", s.final);
  }
};

// How a quantizer's child process (measure.isolate) ended when it sent no result.
struct process_section {
  nullable<std::int64_t> exit_status, signal;
  bool timed_out = false;
  std::string stage;
  std::optional<double> seconds;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("exit_status", s.exit_status), v("signal", s.signal), v("timed_out", s.timed_out), v("stage", s.stage);
    v("seconds", s.seconds);
  }
};

using option_map = std::map<std::string, std::string>;

struct recipe_rule_section {
  std::string plugin, plugin_version;
  option_map options;
  std::vector<std::string> include, exclude, sites;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("plugin", s.plugin), v("plugin_version", s.plugin_version), v("options", s.options);
    v("include", s.include), v("exclude", s.exclude), v("sites", s.sites);
  }
};

struct calibration_section {
  std::string data;
  std::optional<std::int64_t> sentences, sentences_used, batch_size;
  std::optional<std::uint64_t> seed;
  std::string mode;
  std::optional<double> seconds;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("data", s.data), v("sentences", s.sentences), v("sentences_used", s.sentences_used);
    v("batch_size", s.batch_size), v("seed", s.seed), v("mode", s.mode), v("seconds", s.seconds);
  }
};

// One entry of `results`: the fp32 baseline or one scheme, with what was measured of it.
struct scheme_result {
  std::string label, plugin;
  std::optional<std::string> plugin_version;
  std::optional<option_map> options;
  bool is_baseline = false;
  std::string status;  // "ok", "failed", "running"
  nullable<std::string> error;
  std::optional<process_section> process;
  std::optional<std::int64_t> layers_quantized, sites_quantized;
  std::optional<std::vector<recipe_rule_section>> recipe;
  std::optional<double> prepare_seconds;
  std::optional<double> calibration_seconds;  // sensitivity's whole-scheme row
  std::optional<calibration_section> calibration;
  std::optional<size_section> size;
  std::optional<latency_section> latency;
  std::optional<accuracy_section> accuracy;
  std::optional<std::vector<layer_error_entry>> layer_error;  // worst first; [] for the baseline
  bool ok() const { return status == "ok"; }
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("label", s.label), v("plugin", s.plugin), v("plugin_version", s.plugin_version), v("options", s.options);
    v("is_baseline", s.is_baseline), v("status", s.status), v("error", s.error), v("process", s.process);
    v("layers_quantized", s.layers_quantized), v("sites_quantized", s.sites_quantized), v("recipe", s.recipe);
    v("prepare_seconds", s.prepare_seconds), v("calibration_seconds", s.calibration_seconds);
    v("calibration", s.calibration), v("size", s.size), v("latency", s.latency), v("accuracy", s.accuracy);
    v("layer_error", s.layer_error);
  }
};

struct experiment_section {
  std::string name, kind, description, config_file;
  nlohmann::json resolved_config;  // the resolved YAML as JSON: any document
  std::string started_at;
  std::optional<std::string> finished_at;
  std::optional<double> wall_seconds;
  std::string output_dir;
  bool complete = false;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("name", s.name), v("kind", s.kind), v("description", s.description), v("config_file", s.config_file);
    v("resolved_config", s.resolved_config), v("started_at", s.started_at), v("finished_at", s.finished_at);
    v("wall_seconds", s.wall_seconds), v("output_dir", s.output_dir), v("complete", s.complete);
  }
};

struct environment_section {
  std::string cpu_model;
  std::map<std::string, bool> isa;
  std::optional<std::int64_t> logical_cpus, torch_threads;
  std::string libtorch, onednn, blas, qexp_version, git_commit, hostname, os;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("cpu_model", s.cpu_model), v("isa", s.isa), v("logical_cpus", s.logical_cpus);
    v("torch_threads", s.torch_threads), v("libtorch", s.libtorch), v("onednn", s.onednn), v("blas", s.blas);
    v("qexp_version", s.qexp_version), v("git_commit", s.git_commit), v("hostname", s.hostname), v("os", s.os);
  }
};

struct model_section {
  std::string path;
  std::optional<std::int64_t> dim, n_layers, linear_layers, parameters;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("path", s.path), v("dim", s.dim), v("n_layers", s.n_layers), v("linear_layers", s.linear_layers);
    v("parameters", s.parameters);
  }
};

struct data_section {
  std::string path;
  std::optional<std::int64_t> sentences, max_length;
  std::optional<double> mean_tokens;
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("path", s.path), v("sentences", s.sentences), v("max_length", s.max_length), v("mean_tokens", s.mean_tokens);
  }
};

// A whole results.json.
struct document {
  std::string schema = schema_id;
  experiment_section experiment;
  std::optional<environment_section> environment;
  std::optional<model_section> model;
  std::optional<data_section> data;
  std::vector<scheme_result> results;
  std::optional<sensitivity_section> sensitivity;  // kind sensitivity (docs/results.md)
  std::optional<autotune_section> autotune;        // kind autotune
  template <class S, class V>
  static void fields(S& s, V&& v) {
    v("schema", s.schema), v("experiment", s.experiment), v("environment", s.environment), v("model", s.model);
    v("data", s.data), v("results", s.results), v("sensitivity", s.sensitivity), v("autotune", s.autotune);
  }
};

// ---- the one writer and the one reader, driven by `fields` ----

namespace detail {

template <class T, class = void>
struct has_fields : std::false_type {};
template <class T>
struct has_fields<T, std::void_t<decltype(T::fields(std::declval<T&>(), std::declval<void (*)(const char*, int&)>()))>>
    : std::true_type {};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_nullable : std::false_type {};
template <class T>
struct is_nullable<nullable<T>> : std::true_type {};

template <class T>
nlohmann::json encode(const T& value);

template <class T>
bool decode(const nlohmann::json& j, T& out) {
  using nlohmann::json;
  if constexpr (std::is_same_v<T, json>) {
    out = j;
    return true;
  } else if constexpr (is_nullable<T>::value) {  // inside an optional: null is a value
    out.value.reset();
    typename decltype(out.value)::value_type v{};
    if (j.is_null()) return true;
    if (!decode(j, v)) return false;
    out.value = std::move(v);
    return true;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) return false;
    out = j.get<bool>();
    return true;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) return false;
    out = j.get<std::string>();
    return true;
  } else if constexpr (std::is_same_v<T, double>) {
    if (!j.is_number()) return false;
    out = j.get<double>();
    return std::isfinite(out);
  } else if constexpr (std::is_integral_v<T>) {
    // An integer key holds an integer; a whole number written as 3.0 is read as 3.
    if (j.is_number_unsigned()) {
      const auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return false;
      out = static_cast<T>(u);
      return true;
    }
    if (j.is_number_integer()) {
      const auto i = j.get<std::int64_t>();
      if constexpr (std::is_unsigned_v<T>) {
        if (i < 0) return false;
      }
      out = static_cast<T>(i);
      return true;
    }
    if (!j.is_number_float()) return false;
    const double d = j.get<double>();
    if (!(d == std::floor(d)) || !(std::fabs(d) < 9.0e15)) return false;
    if constexpr (std::is_unsigned_v<T>) {
      if (d < 0) return false;
    }
    out = static_cast<T>(d);
    return true;
  } else if constexpr (std::is_same_v<T, std::array<double, 2>>) {
    if (!j.is_array() || j.size() != 2) return false;
    return decode(j[0], out[0]) && decode(j[1], out[1]);
  } else if constexpr (has_fields<T>::value) {
    if (!j.is_object()) return false;
    out = T{};
    T::fields(out, [&j](const char* key, auto& member) {
      using M = std::decay_t<decltype(member)>;
      const auto it = j.find(key);
      if constexpr (is_optional<M>::value) {
        typename M::value_type v{};
        if (it != j.end() && decode(*it, v)) member = std::move(v);
      } else if constexpr (is_nullable<M>::value) {
        typename decltype(member.value)::value_type v{};
        if (it != j.end() && decode(*it, v)) member.value = std::move(v);
      } else {
        M v{};
        if (it != j.end() && decode(*it, v)) member = std::move(v);
      }
    });
    return true;
  } else {
    // std::vector<X> and std::map<std::string, X>: entries that do not read are skipped.
    if constexpr (std::is_same_v<T, std::vector<typename T::value_type>>) {
      if (!j.is_array()) return false;
      out.clear();
      for (const auto& e : j) {
        typename T::value_type v{};
        if (decode(e, v)) out.push_back(std::move(v));
      }
      return true;
    } else {
      if (!j.is_object()) return false;
      out.clear();
      for (auto it = j.begin(); it != j.end(); ++it) {
        typename T::mapped_type v{};
        if (decode(it.value(), v)) out.emplace(it.key(), std::move(v));
      }
      return true;
    }
  }
}

template <class T>
nlohmann::json encode(const T& value) {
  using nlohmann::json;
  if constexpr (is_nullable<T>::value) {
    return value.value ? encode(*value.value) : json(nullptr);
  } else if constexpr (has_fields<T>::value) {
    json out = json::object();
    T::fields(value, [&out](const char* key, const auto& member) {
      using M = std::decay_t<decltype(member)>;
      if constexpr (is_optional<M>::value) {
        if (member) out[key] = encode(*member);
      } else if constexpr (is_nullable<M>::value) {
        out[key] = member.value ? encode(*member.value) : json(nullptr);
      } else {
        out[key] = encode(member);
      }
    });
    return out;
  } else if constexpr (std::is_same_v<T, json> || std::is_arithmetic_v<T> || std::is_same_v<T, std::string> ||
                       std::is_same_v<T, std::array<double, 2>>) {
    return json(value);
  } else if constexpr (std::is_same_v<T, std::vector<typename T::value_type>>) {
    json out = json::array();
    for (const auto& e : value) out.push_back(encode(e));
    return out;
  } else {
    json out = json::object();
    for (const auto& [k, v] : value) out[k] = encode(v);
    return out;
  }
}

}  // namespace detail

// nlohmann's hooks, so `json j = row;` and `j.get<scheme_result>()` work for every struct above.
template <class T, std::enable_if_t<detail::has_fields<T>::value, int> = 0>
void to_json(nlohmann::json& j, const T& value) {
  j = detail::encode(value);
}
template <class T, std::enable_if_t<detail::has_fields<T>::value, int> = 0>
void from_json(const nlohmann::json& j, T& value) {
  value = T{};
  detail::decode(j, value);
}

// The keys a struct writes, in `fields` order (the docs test compares them with docs/results.md).
template <class T>
std::vector<std::string> keys_of() {
  std::vector<std::string> keys;
  T sample{};
  T::fields(sample, [&keys](const char* key, const auto&) { keys.emplace_back(key); });
  return keys;
}

}  // namespace qexp::results

// The `autotune` experiment kind: accuracy-aware search for the smallest (or fastest) recipe that
// keeps the model within a constraint of fp32, in the manner of Intel Neural Compressor's tuning.
//
// Every candidate scheme is prepared once on the whole model (calibration in float mode, so a site
// quantizes the same whatever its neighbours get), and a trial recipe is composed site by site from
// those prepared models: no trial quantizes anything. A trial is measured on the tuning sentences,
// never on the sentences of the final evaluation: by default a seeded draw from data.path, whose
// other sentences are the final evaluation (written to heldout.tsv); or the sentences after the
// calibration ones in calibration's seeded draw (biased when the model was trained on that file). The search: every site on its most aggressive candidate; while the
// constraint is not met, the site that hurts most at its current level (its KL to fp32 when
// quantized alone, measured from the fp32 pass's saved stage inputs) moves up one level; then one
// bounded pass tries each raised site one level down again and keeps what still meets the
// constraint and improves the objective. The chosen recipe is written as a ptq config
// (chosen_recipe.yaml) and run as one: that is the final evaluation, on data.path.
//
// With autotune.executor local or slurm, trials and per-site measurements are not composed here:
// each is a ptq config on the tuning sentences (tuning.tsv), run as one point of a sweep
// (experiments/sweep.h) on a local process pool or as one task of a Slurm job array, and its
// results.json read back; the per-site measurements of a round go out as one sweep.
//
// Trials go to trials.jsonl as they finish; a run given the same --results-dir again (after a kill)
// reads them back instead of measuring them again and continues from where it stopped.
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "calibration_data.h"
#include "experiment.h"
#include "measurement.h"
#include "ptq_config.h"
#include "results_folder.h"
#include "results_report.h"
#include "site_variants.h"
#include "sweep.h"
#include "qexp/atomic_file.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/latency_stats.h"
#include "qexp/text.h"
#include "qexp/dataset.h"
#include "qexp/threads.h"

namespace qexp {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct autotune_config : experiment_basics {
  std::vector<quantizer_entry> candidates;
  calibration_settings calibration;
  bool minimize_latency = false;  // objective: latency; else size
  bool constrain_kl = false;      // constraint metric: kl; else accuracy_drop
  double constraint_max = 1.0;
  bool tune_on_data = true;  // tuning.from: data (else calibration)
  int tuning_sentences = 400;
  std::uint64_t tuning_seed = 0;
  int max_trials = 64;
  int batch_size = 8;
  int threads = 2;
  bool allow_fp32 = true;
  std::string executor = "in_process";  // in_process | local | slurm
  int jobs = 2;
  bool final_enabled = true;
  int final_latency_iterations = 30;
  int final_latency_sentences = 100;
};

schema_node autotune_schema() {
  auto fields = common_experiment_fields("autotune");
  fields.insert(fields.end(), {
      {"model", model_section_schema()},
      {"data", data_section_schema()},
      {"candidates",
       schema_node::list_of(recipe_entry_schema(""),
                            "the schemes a site may take, most aggressive first; a site can take a candidate only "
                            "where that candidate's rules give it one; fp32 comes after them all (allow_fp32)")
           .non_empty()
           .is_required()},
      {"calibration", calibration_section_schema(false)},
      {"autotune",
       schema_node::map_of({
           {"objective", schema_node::choice_of({"size", "latency"},
                                                "size: fewest bytes of weights; latency: the lowest batch-1 forward "
                                                "time, estimated from each site's measured time at each level")
                             .with_default("size")},
           {"constraint",
            schema_node::map_of({
                {"metric", schema_node::choice_of({"accuracy_drop", "kl"},
                                                  "accuracy_drop: fp32's accuracy minus the recipe's, in points, on "
                                                  "the tuning sentences; kl: mean KL(fp32 || recipe) there, in nats")
                               .with_default("accuracy_drop")},
                {"max", schema_node::of(value_kind::number, "the largest value of the metric a recipe may have")
                            .at_least(0)
                            .with_default(1.0)},
            })},
           {"tuning",
            schema_node::map_of({
                {"from", schema_node::choice_of(
                             {"data", "calibration"},
                             "data: a seeded draw of data.path, whose other sentences are the final evaluation "
                             "(heldout.tsv); calibration: the sentences after the calibration ones in "
                             "calibration.data's seeded draw (biased when the model was trained on that file)")
                             .with_default("data")},
                {"sentences", schema_node::of(value_kind::integer, "sentences the constraint is checked on")
                                  .at_least(10)
                                  .at_most(1000000)
                                  .with_default(400)},
                {"seed", schema_node::of(value_kind::integer, "seed of the draw from data.path")
                             .at_least(0)
                             .wide_integer()
                             .with_default(0)},
            })},
           {"max_trials", schema_node::of(value_kind::integer, "recipes measured at most, every phase together")
                              .at_least(1)
                              .at_most(100000)
                              .with_default(64)},
           {"batch_size", schema_node::of(value_kind::integer, "tuning sentences per forward pass")
                              .at_least(1)
                              .with_default(8)},
           {"threads", schema_node::of(value_kind::integer, "intra-op threads while tuning")
                           .at_least(1)
                           .at_most(max_compute_threads)
                           .with_default(2)},
           {"allow_fp32", schema_node::of(value_kind::boolean, "a site may fall back to fp32 after the last candidate")
                              .with_default(true)},
           {"executor", schema_node::choice_of(
                            {"in_process", "local", "slurm"},
                            "in_process: trials composed from the candidates prepared here (fastest); local, slurm: "
                            "each trial and per-site measurement is a `qexp run` of a ptq config on the tuning "
                            "sentences, one sweep point each, on a local process pool or a Slurm job array (default "
                            "sweep.slurm settings, cpus_per_task = threads)")
                            .with_default("in_process")},
           {"jobs", schema_node::of(value_kind::integer, "points run at once by the local executor")
                        .at_least(1)
                        .at_most(1024)
                        .with_default(2)},
       })},
      {"final",
       schema_node::map_of({
           {"enabled", schema_node::of(value_kind::boolean,
                                       "run chosen_recipe.yaml (the chosen recipe and each candidate on every site it "
                                       "covers) as a ptq experiment on data.path")
                           .with_default(true)},
           {"latency_iterations", schema_node::of(value_kind::integer, "timed iterations of the probe sentence")
                                      .at_least(1)
                                      .with_default(30)},
           {"latency_sentences", schema_node::of(value_kind::integer, "dev sentences timed one at a time (0: none)")
                                     .at_least(0)
                                     .with_default(100)},
       })},
      {"output", output_section_schema()},
      {"seed", seed_field()},
  });
  return schema_node::map_of(std::move(fields));
}

autotune_config autotune_config_from(const YAML::Node& r, const config_source& source) {
  autotune_config c;
  static_cast<experiment_basics&>(c) = experiment_basics_from(r, source);
  for (std::size_t i = 0; i < r["candidates"].size(); ++i)
    c.candidates.push_back(quantizer_from(r["candidates"][i], source, "candidates." + std::to_string(i)));
  c.calibration = calibration_from(r["calibration"], source);
  c.calibration.mode = calibration_mode::float_inputs;
  const YAML::Node a = r["autotune"];
  c.minimize_latency = a["objective"].as<std::string>() == "latency";
  c.constrain_kl = a["constraint"]["metric"].as<std::string>() == "kl";
  c.constraint_max = a["constraint"]["max"].as<double>();
  c.tune_on_data = a["tuning"]["from"].as<std::string>() == "data";
  c.tuning_sentences = a["tuning"]["sentences"].as<int>();
  c.tuning_seed = a["tuning"]["seed"].as<std::uint64_t>();
  c.max_trials = a["max_trials"].as<int>();
  c.batch_size = a["batch_size"].as<int>();
  c.threads = a["threads"].as<int>();
  c.allow_fp32 = a["allow_fp32"].as<bool>();
  c.executor = a["executor"].as<std::string>();
  c.jobs = a["jobs"].as<int>();
  c.final_enabled = r["final"]["enabled"].as<bool>();
  c.final_latency_iterations = r["final"]["latency_iterations"].as<int>();
  c.final_latency_sentences = r["final"]["latency_sentences"].as<int>();
  return c;
}

// One thing a site can be: a candidate's quantization of it, or fp32.
struct site_level {
  std::string label;   // the candidate's label, or "fp32"
  int candidate = -1;  // index into the candidates; -1: fp32
  int rule = -1;       // the candidate's rule the site took
  std::size_t bytes = 0;
  double ms = 0;  // the site's forward time at batch 1 (median), for the latency estimate
};

struct tuned_site {
  site target;
  std::int64_t stage = 0;
  std::size_t fp32_bytes = 0;
  std::vector<site_level> levels;  // most aggressive first
};

labelled_sentences rows_of(const labelled_sentences& all, const std::vector<std::size_t>& rows) {
  labelled_sentences out;
  out.path = all.path;
  for (std::size_t i : rows) {
    out.sentences.push_back(all.sentences[i]);
    out.labels.push_back(all.labels[i]);
    out.lines.push_back(all.lines[i]);
  }
  return out;
}

// The tuning sentences: the `count` after the calibration sentences in calibration's seeded draw.
labelled_sentences tuning_from_calibration(const calibration_settings& cal, int count) {
  const labelled_sentences all = read_sentence_tsv(cal.data_path);
  const auto used = static_cast<std::size_t>(cal.sentences);
  std::vector<std::size_t> order = seeded_draw(all.size(), cal.seed, used + static_cast<std::size_t>(count));
  if (order.size() <= used)
    throw config_error(cal.where + ": calibration data " + cal.data_path.string() + " has " +
                       std::to_string(all.size()) + " sentences, none left for tuning after the " +
                       std::to_string(used) + " calibration sentences; expected a larger file or fewer sentences");
  order.erase(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(used));
  return rows_of(all, order);
}

// The evaluation data split in two by a seeded draw: `count` tuning sentences and the rest, in
// file order.
std::pair<labelled_sentences, labelled_sentences> split_data(const labelled_sentences& all, int count,
                                                             std::uint64_t seed, const std::string& where) {
  std::vector<std::size_t> tuning = seeded_draw(all.size(), seed, static_cast<std::size_t>(count));
  if (tuning.size() >= all.size())
    throw config_error(where + ": autotune.tuning.sentences is " + std::to_string(count) + " but " +
                       all.path.string() + " (data.path, after data.limit) has " + std::to_string(all.size()) +
                       " sentences; expected fewer, so that some are left for the final evaluation");
  std::sort(tuning.begin(), tuning.end());
  std::vector<std::size_t> rest;
  for (std::size_t i = 0, t = 0; i < all.size(); ++i) {
    if (t < tuning.size() && tuning[t] == i)
      ++t;
    else
      rest.push_back(i);
  }
  return {rows_of(all, tuning), rows_of(all, rest)};
}

// An SST-2 style TSV of these sentences (the reader splits each line on its last tab).
std::string sentence_tsv(const labelled_sentences& data) {
  std::string out = "sentence\tlabel\n";
  for (std::size_t i = 0; i < data.size(); ++i)
    out += data.sentences[i] + "\t" + std::to_string(data.labels[i]) + "\n";
  return out;
}

// Median time of one site's forward at `rows` rows (batch 1 of a typical sentence).
double site_ms(distilbert_classifier& model, const tuned_site& s, std::int64_t rows) {
  if (s.target.kind == site_kind::table) return 0;  // a lookup: nothing worth timing
  packed_linear& l = model.linear(s.target.name);
  const at::Tensor x = at::randn({rows, model.float_layer(s.target.name).weight.size(1)},
                                 at::TensorOptions().dtype(at::kFloat));
  for (int i = 0; i < 3; ++i) l.forward(x);
  std::vector<double> samples;
  for (int i = 0; i < 15; ++i) {
    const auto start = std::chrono::steady_clock::now();
    l.forward(x);
    samples.push_back(1000 * seconds_since(start));
  }
  return summarize_latency(samples).p50_ms;
}

std::string number_text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

std::string levels_key(const std::vector<int>& levels) {
  std::string key;
  for (int l : levels) key += (key.empty() ? "" : ",") + std::to_string(l);
  return key;
}

class autotune_run {
 public:
  autotune_run(const autotune_config& config, const YAML::Node& resolved, const config_source& source,
               const run_request& request)
      : config_(config),
        resolved_(resolved),
        source_(source),
        request_(request),
        folder_("autotune", config.name, config.description, config.source_file, resolved, config.output_dir,
                request) {}

  int run() {
    c10::InferenceMode inference;
    const plugin_registry& plugins = *request_.plugins;
    const int original_threads = compute_threads();
    set_compute_threads(config_.threads);
    evaluation_data final_data =
        load_evaluation_data(config_.model_path, config_.data_path, config_.data_limit, config_.max_length);
    if (config_.tune_on_data) {
      auto [tuning, heldout] = split_data(final_data.data, config_.tuning_sentences, config_.tuning_seed,
                                          location_of(source_, "autotune.tuning.sentences"));
      heldout_file_ = folder_.dir() / "heldout.tsv";
      write_text_atomically(heldout_file_, sentence_tsv(heldout));
      heldout_sentences_ = heldout.size();
      tuning_.emplace(with_sentences(final_data, std::move(tuning)));
    } else {
      heldout_sentences_ = final_data.data.size();
      tuning_.emplace(
          with_sentences(final_data, tuning_from_calibration(config_.calibration, config_.tuning_sentences)));
    }
    if (config_.executor != "in_process") {
      tuning_file_ = folder_.dir() / "tuning.tsv";
      write_text_atomically(tuning_file_, sentence_tsv(tuning_->data));
    }
    folder_.doc().model = model_section_of(*tuning_);
    folder_.doc().data = data_section_of(*tuning_);
    eval_.emplace(*tuning_, static_cast<std::size_t>(config_.batch_size));
    open_trial_log();

    // fp32 on the tuning sentences, keeping every stage's input for the per-site measurements.
    auto start = std::chrono::steady_clock::now();
    fp32_logits_ = eval_->logits(tuning_->fp32, &fp32_saved_, "fp32 (tuning sentences)");
    fp32_probs_ = probabilities(fp32_logits_);
    const results::accuracy_section fp32_accuracy = compare_predictions(fp32_probs_, fp32_probs_, tuning_->data.labels, config_.seed);
    results::scheme_result fp32_row;
    fp32_row.label = fp32_row.plugin = "fp32";
    fp32_row.is_baseline = true;
    fp32_row.status = "ok";
    fp32_row.accuracy = fp32_accuracy;
    folder_.append(fp32_row);
    fp32_pass_seconds_ = seconds_since(start);

    prepare_candidates(plugins);
    describe(fp32_accuracy);
    folder_.write();

    search();
    double trial_seconds = 0, sensitivity_seconds = 0, prepare_seconds = 0;
    for (const auto& t : trials_) trial_seconds += t.seconds;
    for (const auto& h : section().sensitivity) sensitivity_seconds += h.seconds.value_or(0.0);
    for (const auto& q : prepared_) prepare_seconds += q.prepare_seconds + q.calibration_seconds;
    results::autotune_cost cost;
    cost.fp32_pass_seconds = fp32_pass_seconds_;
    cost.prepare_seconds = prepare_seconds;
    cost.trials = static_cast<std::int64_t>(trials_.size());
    cost.trial_seconds = trial_seconds;
    cost.sensitivity_measurements = static_cast<std::int64_t>(section().sensitivity.size());
    cost.sensitivity_seconds = sensitivity_seconds;
    section().cost = cost;

    const trial_result& chosen = trials_.at(chosen_);
    const fs::path recipe_file = folder_.dir() / "chosen_recipe.yaml";
    write_text_atomically(recipe_file, chosen_recipe_yaml(chosen));
    results::autotune_trial& chosen_entry = section().chosen.emplace(trial_entry(chosen));
    chosen_entry.recipe_file = recipe_file.string();
    chosen_entry.sites = assignment(chosen.levels);
    section().met = chosen.meets;
    results::scheme_result chosen_row;
    chosen_row.label = "autotuned (tuning sentences)";
    chosen_row.plugin = "recipe";
    chosen_row.status = "ok";
    chosen_row.accuracy = chosen.accuracy;
    folder_.append(chosen_row);
    spdlog::info("chosen: trial {} ({} of fp32's weight bytes, {} {:.4g}); {}", chosen.index,
                 detail::format_percent(chosen.bytes / fp32_model_bytes_), metric_name(), chosen.metric,
                 recipe_file.string());
    set_compute_threads(original_threads);

    int exit = chosen.meets ? 0 : static_cast<int>(exit_code::runtime_failure);
    if (!chosen.meets)
      spdlog::error("no recipe met {} <= {} within {} trials; chosen_recipe.yaml holds the closest one", metric_name(),
                    config_.constraint_max, config_.max_trials);
    if (config_.final_enabled) exit = std::max(exit, final_evaluation(recipe_file, plugins));
    folder_.finish();
    std::cout << summary_table({json(folder_.doc())});
    spdlog::info("experiment '{}' done in {:.1f} s ({} trials): {}", config_.name, folder_.elapsed_seconds(),
                 trials_.size(), folder_.dir().string());
    return exit;
  }

 private:
  struct trial_result {
    int index = 0;
    std::string phase, change;
    std::vector<int> levels;
    double bytes = 0, latency_ms = 0, metric = 0, seconds = 0;
    results::accuracy_section accuracy;
    bool meets = false, resumed = false;
    std::optional<std::size_t> same_as;  // the earlier trial of the same recipe
  };

  const char* metric_name() const { return config_.constrain_kl ? "mean KL" : "accuracy drop (points)"; }
  // The constrained metric of a recipe's accuracy against fp32; NaN when it is missing (a
  // hand-edited trials.jsonl), which meets no constraint. An unchanged accuracy is a drop of 0, not -0.
  double metric_of(const results::accuracy_section& a) const {
    return config_.constrain_kl ? a.mean_kl_vs_fp32.value_or(NAN) : 0.0 - 100 * a.accuracy_delta_vs_fp32.value_or(NAN);
  }
  double objective(const trial_result& t) const { return config_.minimize_latency ? t.latency_ms : t.bytes; }

  void prepare_candidates(const plugin_registry& plugins) {
    const auto sites = tuning_->fp32.sites();
    std::optional<calibration_set> calibration;
    for (const auto& c : config_.candidates) {
      const auto assignment = assign_sites(c.scheme, sites, plugins);
      if (!calibration && recipe_wants_calibration(c.scheme, assignment, plugins))
        calibration = load_calibration_set(config_.calibration, tuning_->tokenizer, config_.max_length);
    }
    std::vector<results::autotune_candidate> prepared;
    for (const auto& c : config_.candidates) {
      spdlog::info("preparing candidate '{}' on every site it covers", c.label);
      quantized_model q = apply_recipe(tuning_->fp32, c.scheme, plugins, calibration ? &*calibration : nullptr,
                                       config_.seed);
      prepared.push_back({c.label, static_cast<std::int64_t>(q.sites.size()), q.prepare_seconds, q.calibration_seconds});
      prepared_.push_back(std::move(q));
    }
    section().candidates = prepared;

    // Each site with the levels the candidates give it, then fp32.
    std::int64_t tokens = 0;
    for (const auto& row : tuning_->ids) tokens += static_cast<std::int64_t>(row.size());
    const std::int64_t rows = std::max<std::int64_t>(1, tokens / std::max<std::int64_t>(1, tuning_->ids.size()));
    for (const auto& s : sites) {
      tuned_site t{s, tuning_->fp32.stage_of(s.name), float_site_bytes(tuning_->fp32, s.name, s.kind), {}};
      for (std::size_t k = 0; k < prepared_.size(); ++k) {
        const auto& assignment = prepared_[k].assignment;
        const auto it = std::find_if(assignment.begin(), assignment.end(),
                                     [&](const site_assignment& a) { return a.target.name == s.name; });
        if (it == assignment.end() || it->rule < 0) continue;
        t.levels.push_back({config_.candidates[k].label, static_cast<int>(k), it->rule,
                            site_bytes(prepared_[k].model, s.name, s.kind), 0});
      }
      if (t.levels.empty()) continue;  // no candidate covers it: it stays fp32, outside the search
      if (config_.allow_fp32) t.levels.push_back({"fp32", -1, -1, t.fp32_bytes, 0});
      for (auto& l : t.levels)
        l.ms = site_ms(l.candidate < 0 ? tuning_->fp32 : prepared_[static_cast<std::size_t>(l.candidate)].model, t,
                       rows);
      fp32_site_ms_[s.name] = site_ms(tuning_->fp32, t, rows);
      sites_.push_back(std::move(t));
    }
    if (sites_.empty()) throw config_error(location_of_candidates() + ": no candidate covers any site of the model");

    // The whole model's size and batch-1 time, for the estimates.
    fp32_model_bytes_ = 0;
    for (const auto& [name, tensor] : tuning_->fp32.non_linear_tensors())
      fp32_model_bytes_ += static_cast<double>(tensor.nbytes());
    for (const auto& name : tuning_->fp32.linear_names())
      fp32_model_bytes_ += static_cast<double>(float_site_bytes(tuning_->fp32, name, site_kind::linear));
    std::vector<double> per_sentence;
    const std::size_t timed = std::min<std::size_t>(tuning_->ids.size(), 50);
    for (std::size_t i = 0; i < timed; ++i) {
      at::Tensor mask;
      const at::Tensor input = padded_batch(tuning_->ids, i, i + 1, tuning_->tokenizer.pad_id(), &mask);
      const auto start = std::chrono::steady_clock::now();
      tuning_->fp32.forward(input, mask);
      per_sentence.push_back(1000 * seconds_since(start));
    }
    fp32_ms_ = summarize_latency(per_sentence).mean_ms;
  }

  std::string location_of_candidates() const { return config_.candidates.front().where; }

  void describe(const results::accuracy_section& fp32_accuracy) {
    results::autotune_section& a = section();
    std::vector<results::autotune_site> sites;
    for (const auto& s : sites_) {
      results::autotune_site site;
      site.site = s.target.name, site.kind = to_string(s.target.kind), site.stage = s.stage;
      site.fp32_bytes = static_cast<std::int64_t>(s.fp32_bytes), site.fp32_site_ms = fp32_site_ms_[s.target.name];
      for (const auto& l : s.levels) site.levels.push_back({l.label, static_cast<std::int64_t>(l.bytes), l.ms});
      sites.push_back(std::move(site));
    }
    a.objective = config_.minimize_latency ? "latency" : "size";
    a.constraint = results::autotune_constraint{config_.constrain_kl ? "kl" : "accuracy_drop", config_.constraint_max};
    results::autotune_tuning tuning;
    tuning.from = config_.tune_on_data ? "data" : "calibration";
    tuning.data = tuning_->data_path.string();
    tuning.sentences = static_cast<std::int64_t>(tuning_->data.size());
    tuning.drawn = config_.tune_on_data ? "seeded draw (seed " + std::to_string(config_.tuning_seed) + "); the other " +
                                              std::to_string(heldout_sentences_) +
                                              " sentences are the final evaluation (heldout.tsv)"
                                        : "after the " + std::to_string(config_.calibration.sentences) +
                                              " calibration sentences in the same seeded draw (seed " +
                                              std::to_string(config_.calibration.seed) + ")";
    tuning.fp32_accuracy = fp32_accuracy.accuracy;
    tuning.batch_size = config_.batch_size;
    tuning.threads = config_.threads;
    a.tuning = tuning;
    results::autotune_estimates estimates;
    estimates.fp32_weight_bytes = fp32_model_bytes_;
    estimates.fp32_batch1_ms = fp32_ms_;
    estimates.latency = "fp32_batch1_ms minus, per site, its fp32 time less its time at its level "
                        "(batch 1, median of 15 at the tuning sentences' mean token count)";
    estimates.bytes = "every tensor of the model in memory: fp32 bytes, with each site at its level";
    a.estimates = estimates;
    a.sites = sites;
    a.trials.clear();  // the sensitivity measurements trials.jsonl gave back stay
  }

  // ---- the search -----------------------------------------------------------------------------

  void search() {
    std::vector<int> levels(sites_.size(), 0);
    trial_result current = measure(levels, "start", "every site on its most aggressive candidate");
    chosen_ = 0;
    // Fallback: raise the site that hurts most at its level, one level at a time.
    while (!current.meets && budget_left()) {
      std::vector<std::pair<std::size_t, int>> needed;
      for (std::size_t i = 0; i < sites_.size(); ++i)
        if (levels[i] + 1 < static_cast<int>(sites_[i].levels.size())) needed.push_back({i, levels[i]});
      prefetch_harms(needed);
      std::optional<std::size_t> worst;
      double worst_harm = -1;
      for (std::size_t i = 0; i < sites_.size(); ++i) {
        if (levels[i] + 1 >= static_cast<int>(sites_[i].levels.size())) continue;
        const double h = harm(i, levels[i]);
        if (!worst || h > worst_harm) worst = i, worst_harm = h;
      }
      if (!worst) break;  // every site at its last level
      const std::size_t i = *worst;
      const std::string change = move_text(i, levels[i], levels[i] + 1);
      ++levels[i];
      current = measure(levels, "fallback", change);
      chosen_ = static_cast<std::size_t>(current.index);
    }
    if (!current.meets) {
      // The closest recipe, for the user to see; the run fails.
      for (std::size_t t = 0; t < trials_.size(); ++t)
        if (trials_[t].metric < trials_[chosen_].metric) chosen_ = t;
      return;
    }
    // Trim: each raised site, least harmful one level down first, one level down again.
    std::vector<std::size_t> raised;
    std::vector<std::pair<std::size_t, int>> needed;
    for (std::size_t i = 0; i < sites_.size(); ++i)
      if (levels[i] > 0) raised.push_back(i), needed.push_back({i, levels[i] - 1});
    prefetch_harms(needed);
    std::stable_sort(raised.begin(), raised.end(), [&](std::size_t a, std::size_t b) {
      return harm(a, levels[a] - 1) < harm(b, levels[b] - 1);
    });
    for (std::size_t i : raised) {
      if (!budget_left()) break;
      std::vector<int> tried = levels;
      --tried[i];
      const trial_result t = measure(tried, "trim", move_text(i, levels[i], tried[i]));
      if (t.meets && objective(t) < objective(current)) {
        levels = tried;
        current = t;
        chosen_ = static_cast<std::size_t>(t.index);
        mark_kept(t.index);
      }
    }
  }

  bool budget_left() const { return static_cast<int>(trials_.size()) < config_.max_trials; }

  std::string move_text(std::size_t site, int from, int to) const {
    return sites_[site].target.name + ": " + sites_[site].levels[static_cast<std::size_t>(from)].label + " -> " +
           sites_[site].levels[static_cast<std::size_t>(to)].label;
  }

  distilbert_classifier compose(const std::vector<int>& levels) const {
    distilbert_classifier model = tuning_->fp32;
    for (std::size_t i = 0; i < sites_.size(); ++i) {
      if (levels[i] < 0) continue;  // fp32, whatever the site's levels are
      const site_level& l = sites_[i].levels[static_cast<std::size_t>(levels[i])];
      if (l.candidate < 0) continue;
      model = with_site_from(model, prepared_[static_cast<std::size_t>(l.candidate)].model, sites_[i].target.name,
                             sites_[i].target.kind);
    }
    return model;
  }

  // The KL to fp32 of site `i` alone at level `level` (0 for fp32), from the fp32 pass's saved
  // input of the site's stage; measured once (or read back from trials.jsonl).
  double harm(std::size_t i, int level) {
    const site_level& l = sites_[i].levels[static_cast<std::size_t>(level)];
    if (l.candidate < 0) return 0;
    const std::string key = sites_[i].target.name + "|" + l.label;
    if (const auto it = harms_.find(key); it != harms_.end()) return it->second;
    if (config_.executor != "in_process") {
      prefetch_harms({{i, level}});
      return harms_.at(key);
    }
    const auto start = std::chrono::steady_clock::now();
    distilbert_classifier model = with_site_from(tuning_->fp32, prepared_[static_cast<std::size_t>(l.candidate)].model,
                                                 sites_[i].target.name, sites_[i].target.kind);
    const at::Tensor logits = eval_->logits_from(model, fp32_saved_, sites_[i].stage);
    const results::accuracy_section m =
        variant_accuracy(logits, fp32_logits_, fp32_probs_, tuning_->data.labels, config_.seed);
    const results::autotune_site_measurement entry{sites_[i].target.name, l.label, m.mean_kl_vs_fp32,
                                                   m.accuracy_delta_vs_fp32, seconds_since(start)};
    record_harm(entry);
    log_measurement(entry);
    return harms_.at(key);
  }

  std::string harm_key(std::size_t i, int level) const {
    return sites_[i].target.name + "|" + sites_[i].levels[static_cast<std::size_t>(level)].label;
  }

  // The per-site measurements not known yet among `wanted`, as one sweep (executor local or slurm;
  // in process they are cheap one by one).
  void prefetch_harms(const std::vector<std::pair<std::size_t, int>>& wanted) {
    if (config_.executor == "in_process") {
      for (const auto& [i, level] : wanted) harm(i, level);
      return;
    }
    std::vector<std::pair<std::size_t, int>> missing;
    std::vector<std::vector<int>> specs;
    for (const auto& [i, level] : wanted) {
      if (sites_[i].levels[static_cast<std::size_t>(level)].candidate < 0 || harms_.count(harm_key(i, level))) continue;
      if (std::find(missing.begin(), missing.end(), std::make_pair(i, level)) != missing.end()) continue;
      missing.push_back({i, level});
      std::vector<int> spec(sites_.size(), -1);
      spec[i] = level;
      specs.push_back(spec);
    }
    if (specs.empty()) return;
    const auto start = std::chrono::steady_clock::now();
    const std::vector<results::accuracy_section> measured = run_recipes(specs, "site measurements");
    const double seconds = seconds_since(start) / static_cast<double>(specs.size());
    for (std::size_t k = 0; k < missing.size(); ++k) {
      const auto [i, level] = missing[k];
      const results::autotune_site_measurement entry{sites_[i].target.name,
                                                     sites_[i].levels[static_cast<std::size_t>(level)].label,
                                                     measured[k].mean_kl_vs_fp32, measured[k].accuracy_delta_vs_fp32,
                                                     seconds};
      record_harm(entry);
      log_measurement(entry);
    }
  }

  // Each recipe (a level per site; -1: fp32) as a ptq config on the tuning sentences, run as one
  // sweep point; returns each point's accuracy against fp32. qexp::error naming the point's log
  // when one fails.
  std::vector<results::accuracy_section> run_recipes(const std::vector<std::vector<int>>& specs,
                                                     const std::string& what) {
    sweep_plan plan;
    plan.name = config_.name + "-trials";
    plan.dir = folder_.dir() / "trials";
    plan.config_file = config_.source_file;
    plan.slurm.cpus_per_task = config_.threads;
    fs::create_directories(plan.dir);
    for (std::size_t k = 0; k < specs.size(); ++k) {
      const fs::path file = plan.dir / "pending.yaml";
      write_text_atomically(file, to_yaml_text(trial_config(specs[k])));
      const loaded_experiment e = load_experiment(file, {});
      plan.points.push_back({k, point_id(e.resolved), {"recipe=" + spec_text(specs[k])}, e.resolved});
      fs::remove(file);
    }
    // Points already done (a resumed run, or the same recipe asked again) are not run again.
    const auto statuses = sweep_status(plan);
    const auto selected = points_to_run(statuses, false);
    point_command command{fs::read_symlink("/proc/self/exe"), request_.global_args};
    if (!selected.empty()) {
      spdlog::info("{}: {} of {} as sweep points ({}) in {}", what, selected.size(), specs.size(), config_.executor,
                   plan.dir.string());
      prepare_points(plan, selected);
      std::ostringstream progress;
      if (config_.executor == "local") {
        run_local(plan, selected, command, static_cast<unsigned>(config_.jobs), progress);
      } else {
        const std::string job = submit_slurm(plan, selected, command);
        spdlog::info("{}: Slurm job {}", what, job);
        wait_for_slurm_job(plan, job, progress);
      }
    }
    std::vector<results::accuracy_section> out;
    const auto after = sweep_status(plan);
    for (std::size_t k = 0; k < specs.size(); ++k) {
      const fs::path results_file = plan.dir / plan.points[k].id / "results.json";
      if (after[k].state != point_state::done || !fs::exists(results_file))
        throw error(what + ": sweep point " + plan.points[k].id + " (" + spec_text(specs[k]) + ") did not finish: " +
                    after[k].detail);
      const auto doc = json::parse(read_regular_file(results_file, "a trial's results")).get<results::document>();
      if (doc.results.size() < 2 || !doc.results[1].accuracy)
        throw error(what + ": sweep point " + plan.points[k].id + ": " + results_file.string() +
                    " holds no measured row after the baseline; expected the trial's accuracy");
      const results::scheme_result& row = doc.results[1];
      if (!row.ok())
        throw error(what + ": sweep point " + plan.points[k].id + " failed: " + row.error.value.value_or("?"));
      out.push_back(*row.accuracy);
    }
    return out;
  }

  // "layer.0.ffn.lin1=int4 gptq g128, ...": the sites a spec quantizes.
  std::string spec_text(const std::vector<int>& spec) const {
    std::string out;
    for (std::size_t i = 0; i < sites_.size(); ++i) {
      if (spec[i] < 0 || sites_[i].levels[static_cast<std::size_t>(spec[i])].candidate < 0) continue;
      out += (out.empty() ? "" : "; ") + sites_[i].target.name + "=" +
             sites_[i].levels[static_cast<std::size_t>(spec[i])].label;
    }
    return out.empty() ? "fp32" : out;
  }

  // A ptq config measuring one recipe against fp32 on the tuning sentences, as composing it here
  // would: the same batches, calibration in float mode, nothing but accuracy.
  YAML::Node trial_config(const std::vector<int>& spec) const {
    YAML::Node doc;
    doc["name"] = config_.name + "_trial";
    doc["description"] = spec_text(spec);
    doc["model"]["path"] = fs::absolute(config_.model_path).string();
    doc["data"]["path"] = tuning_file_.string();
    doc["data"]["max_length"] = config_.max_length;
    YAML::Node entry = recipe_node(spec);
    entry["label"] = "trial";
    doc["quantizers"].push_back(entry);
    add_calibration(doc);
    doc["measure"]["isolate"] = false;
    doc["measure"]["size"]["enabled"] = false;
    doc["measure"]["latency"]["enabled"] = false;
    doc["measure"]["layer_error"]["enabled"] = false;
    doc["measure"]["accuracy"]["batch_size"] = config_.batch_size;
    doc["seed"] = config_.seed;
    return doc;
  }

  void add_calibration(YAML::Node& doc) const {
    doc["calibration"]["data"] = fs::absolute(config_.calibration.data_path).string();
    doc["calibration"]["sentences"] = config_.calibration.sentences;
    doc["calibration"]["batch_size"] = config_.calibration.batch_size;
    doc["calibration"]["seed"] = config_.calibration.seed;
    doc["calibration"]["mode"] = "float";
  }

  // A recipe entry with one rule per (candidate, rule) the spec uses, naming its sites exactly,
  // in candidate order.
  YAML::Node recipe_node(const std::vector<int>& spec) const {
    std::map<std::pair<int, int>, std::vector<std::string>> groups;
    for (std::size_t i = 0; i < sites_.size(); ++i) {
      if (spec[i] < 0) continue;
      const site_level& l = sites_[i].levels[static_cast<std::size_t>(spec[i])];
      if (l.candidate >= 0) groups[{l.candidate, l.rule}].push_back(sites_[i].target.name);
    }
    YAML::Node entry;
    entry["rules"] = YAML::Node(YAML::NodeType::Sequence);
    for (const auto& [key, names] : groups) {
      YAML::Node rule = rule_node(key.first, key.second);
      for (const auto& n : names) rule["layers"]["include"].push_back(n);
      entry["rules"].push_back(rule);
    }
    return entry;
  }

  // A measurement without a KL (a hand-edited trials.jsonl) ranks the site as harmless as fp32.
  void record_harm(const results::autotune_site_measurement& entry) {
    harms_[entry.site + "|" + entry.level] = entry.mean_kl_vs_fp32.value_or(0);
    section().sensitivity.push_back(entry);
  }

  trial_result measure(const std::vector<int>& levels, const std::string& phase, const std::string& change) {
    trial_result t;
    t.index = static_cast<int>(trials_.size());
    t.phase = phase;
    t.change = change;
    t.levels = levels;
    t.bytes = fp32_model_bytes_;
    t.latency_ms = fp32_ms_;
    for (std::size_t i = 0; i < sites_.size(); ++i) {
      const site_level& l = sites_[i].levels[static_cast<std::size_t>(levels[i])];
      t.bytes -= static_cast<double>(sites_[i].fp32_bytes) - static_cast<double>(l.bytes);
      t.latency_ms -= fp32_site_ms_.at(sites_[i].target.name) - l.ms;
    }
    const std::string key = levels_key(levels);
    if (const auto it = measured_.find(key); it != measured_.end()) {
      t.accuracy = trials_[it->second].accuracy;  // a trim back to a recipe already tried
      t.same_as = it->second;
    } else if (const auto r = resumed_.find(key); r != resumed_.end()) {
      t.accuracy = r->second;
      t.resumed = true;
    } else {
      const auto start = std::chrono::steady_clock::now();
      if (config_.executor == "in_process") {
        distilbert_classifier model = compose(levels);
        const at::Tensor logits = eval_->logits(model, nullptr, "");
        t.accuracy = variant_accuracy(logits, fp32_logits_, fp32_probs_, tuning_->data.labels, config_.seed);
      } else {
        t.accuracy = run_recipes({levels}, "trial " + std::to_string(t.index)).front();
      }
      t.seconds = seconds_since(start);
      log_line({{"type", "trial"}, {"levels", levels_key(levels)}, {"accuracy", t.accuracy}});
    }
    t.metric = metric_of(t.accuracy);
    t.meets = t.metric <= config_.constraint_max;
    measured_.emplace(key, trials_.size());
    trials_.push_back(t);
    section().trials.push_back(trial_entry(t));
    folder_.write();
    spdlog::info("trial {} ({}{}): {}; {:.1f}% of fp32's bytes, {} {:.4g}{}", t.index, phase,
                 t.resumed ? ", from trials.jsonl" : "", change, 100 * t.bytes / fp32_model_bytes_, metric_name(),
                 t.metric, t.meets ? ", meets the constraint" : "");
    return t;
  }

  // results.json's "autotune" section.
  results::autotune_section& section() {
    auto& s = folder_.doc().autotune;
    return s ? *s : s.emplace();
  }

  void mark_kept(int index) { section().trials.at(static_cast<std::size_t>(index)).kept = true; }

  results::autotune_trial trial_entry(const trial_result& t) const {
    results::autotune_trial e;
    e.index = t.index, e.phase = t.phase, e.change = t.change;
    for (std::size_t i = 0; i < sites_.size(); ++i)
      e.levels.push_back(sites_[i].levels[static_cast<std::size_t>(t.levels[i])].label);
    e.weight_bytes = t.bytes, e.size_ratio_to_fp32 = t.bytes / fp32_model_bytes_, e.latency_estimate_ms = t.latency_ms;
    e.metric = t.metric, e.meets_constraint = t.meets, e.kept = t.phase != "trim";
    e.accuracy = t.accuracy, e.seconds = t.seconds, e.from_trials_jsonl = t.resumed;
    if (t.same_as) e.same_as_trial = static_cast<std::int64_t>(*t.same_as);
    return e;
  }

  std::map<std::string, std::string> assignment(const std::vector<int>& levels) const {
    std::map<std::string, std::string> out;
    for (std::size_t i = 0; i < sites_.size(); ++i)
      out[sites_[i].target.name] = sites_[i].levels[static_cast<std::size_t>(levels[i])].label;
    return out;
  }

  // ---- trials.jsonl: what a killed run does not measure again ---------------------------------

  void open_trial_log() {
    log_path_ = folder_.dir() / "trials.jsonl";
    const std::string id = point_id(resolved_);
    if (fs::exists(log_path_)) {
      std::ifstream in(log_path_);
      std::string line;
      std::size_t number = 0;
      while (std::getline(in, line)) {
        ++number;
        json entry = json::parse(line, nullptr, false);
        if (entry.is_discarded() || !entry.is_object()) continue;  // a line cut by the kill
        const std::string type = entry.value("type", "");
        if (type == "config" && entry.value("id", "") != id)
          throw config_error(log_path_.string() + ":" + std::to_string(number) + ": trials of another config (id " +
                             entry.value("id", "") + ", this one " + id +
                             "); expected the same config to resume, or another --results-dir");
        if (type == "trial") resumed_[entry.value("levels", "")] = entry["accuracy"].get<results::accuracy_section>();
        if (type == "sensitivity") record_harm(entry.get<results::autotune_site_measurement>());
      }
      spdlog::info("resuming: {} trials and {} site measurements read back from {}", resumed_.size(), harms_.size(),
                   log_path_.string());
    } else {
      log_line({{"type", "config"}, {"id", id}});
    }
  }

  void log_measurement(const results::autotune_site_measurement& entry) {
    json line = entry;
    line["type"] = "sensitivity";
    log_line(line);
  }

  void log_line(const json& entry) {
    std::ofstream out(log_path_, std::ios::app);
    out << entry.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    out.flush();
    if (!out) throw error("cannot append to " + log_path_.string() + " (disk full?)");
  }

  // ---- the chosen recipe as a ptq config, and its run ------------------------------------------

  YAML::Node rule_node(int candidate, int rule) const {
    const YAML::Node entry = resolved_["candidates"][static_cast<std::size_t>(candidate)];
    const YAML::Node r = entry["rules"] && entry["rules"].size() > 0 ? entry["rules"][static_cast<std::size_t>(rule)] : entry;
    YAML::Node out;
    out["plugin"] = r["plugin"];
    if (r["options"] && r["options"].size() > 0) out["options"] = YAML::Clone(r["options"]);
    return out;
  }

  std::string chosen_recipe_yaml(const trial_result& t) const {
    YAML::Node chosen = recipe_node(t.levels);
    chosen["label"] = "autotuned";
    YAML::Node doc;
    doc["name"] = config_.name + "_chosen";
    doc["description"] = "recipe chosen by autotune '" + config_.name + "' (objective " +
                         (config_.minimize_latency ? "latency" : "size") + ", " + metric_name() +
                         " <= " + number_text(config_.constraint_max) + " on " +
                         std::to_string(tuning_->data.size()) + " tuning sentences), against each candidate alone";
    doc["model"]["path"] = fs::absolute(config_.model_path).string();
    doc["data"]["path"] = fs::absolute(config_.tune_on_data ? heldout_file_ : config_.data_path).string();
    doc["data"]["max_length"] = config_.max_length;
    doc["data"]["limit"] = config_.tune_on_data ? 0 : config_.data_limit;
    doc["quantizers"].push_back(chosen);
    for (const auto& node : resolved_["candidates"]) doc["quantizers"].push_back(YAML::Clone(node));
    add_calibration(doc);
    doc["measure"]["latency"]["warmup"] = 5;
    doc["measure"]["latency"]["iterations"] = config_.final_latency_iterations;
    doc["measure"]["latency"]["batch_sizes"].push_back(1);
    doc["measure"]["latency"]["threads"] = 1;
    doc["measure"]["latency"]["dataset_sentences"] = config_.final_latency_sentences;
    doc["measure"]["layer_error"]["enabled"] = false;
    // Run in the autotune process, which has already run every one of these plugins: a child per
    // row would restart the whole tuning run (measure.isolate re-executes this command line).
    doc["measure"]["isolate"] = false;
    doc["seed"] = config_.seed;
    return "# Written by `qexp run` of the autotune experiment '" + config_.name + "' (trial " +
           std::to_string(t.index) + "). Run it as it is:\n#   qexp run chosen_recipe.yaml\n" + to_yaml_text(doc);
  }

  int final_evaluation(const fs::path& recipe_file, const plugin_registry& plugins) {
    spdlog::info("final evaluation: {} on {} sentences of {}", recipe_file.string(), heldout_sentences_,
                 config_.data_path.string());
    results::autotune_final& final = section().final.emplace();
    final.config = recipe_file.string();
    final.results_dir = (folder_.dir() / "final").string();
    int rc = 0;
    try {
      const loaded_experiment e = load_experiment(recipe_file, {});
      e.kind->validate(e.resolved, e.source, plugins);
      run_request request = request_;
      request.results_dir = folder_.dir() / "final";
      rc = e.kind->run(e.resolved, e.source, request);
      const auto evaluated = json::parse(read_regular_file(folder_.dir() / "final" / "results.json",
                                                           "final evaluation results"))
                                 .get<results::document>();
      std::vector<results::autotune_final_row> rows;
      for (const auto& r : evaluated.results) {
        results::autotune_final_row row{r.label, r.status, r.accuracy, r.size, std::nullopt};
        if (r.latency && !r.latency->probe.empty()) row.latency_p50_ms = r.latency->probe[0].p50_ms;
        if (r.label == "autotuned" && r.accuracy) {
          const double value = metric_of(*r.accuracy);
          final.metric = value;
          final.meets_constraint = value <= config_.constraint_max;
        }
        rows.push_back(std::move(row));
      }
      final.rows = rows;
    } catch (const std::exception& e) {
      final.error = error_message(e);
      spdlog::error("final evaluation: {}", error_message(e));
      rc = static_cast<int>(exit_code::runtime_failure);
    }
    folder_.write();
    return rc;
  }

  const autotune_config& config_;
  const YAML::Node& resolved_;
  const config_source& source_;
  const run_request& request_;
  results_folder folder_;
  std::optional<evaluation_data> tuning_;
  std::optional<batched_evaluation> eval_;
  at::Tensor fp32_logits_, fp32_probs_;
  saved_stages fp32_saved_;
  double fp32_pass_seconds_ = 0, fp32_model_bytes_ = 0, fp32_ms_ = 0;
  std::vector<quantized_model> prepared_;
  std::vector<tuned_site> sites_;
  std::map<std::string, double> fp32_site_ms_;
  std::map<std::string, double> harms_;
  std::map<std::string, results::accuracy_section> resumed_;
  std::map<std::string, std::size_t> measured_;  // recipe -> its first trial in this run
  std::vector<trial_result> trials_;
  std::size_t chosen_ = 0;
  fs::path log_path_;
  fs::path heldout_file_;
  fs::path tuning_file_;  // executor local or slurm: the tuning sentences, for the trials' configs  // with tuning.from data: the final evaluation's sentences
  std::size_t heldout_sentences_ = 0;
};

const experiment_kind_registration autotune_kind({
    "autotune",
    "accuracy-aware tuning: the smallest (or fastest) per-site mix of candidate schemes that stays within a "
    "constraint of fp32 on tuning sentences, then evaluated on the data",
    autotune_schema,
    [](const YAML::Node& resolved, const config_source& source) { autotune_config_from(resolved, source); },
    [](const YAML::Node& resolved, const config_source& source, const plugin_registry& plugins) {
      const autotune_config c = autotune_config_from(resolved, source);
      if (!c.tune_on_data && fs::absolute(c.calibration.data_path) == fs::absolute(c.data_path))
        throw config_error(location_of(source, "calibration.data") + ": the tuning sentences come from " +
                           c.calibration.data_path.string() +
                           ", which is the final evaluation file (data.path); expected another file, e.g. "
                           "sst2/train.tsv");
      return validate_recipes(c.candidates, c.model_path, c.data_path, c.calibration, source, plugins);
    },
    [](const YAML::Node& resolved, const config_source& source, const run_request& request) {
      if (!request.plugins) throw error("run_autotune: no plugin registry");
      const autotune_config c = autotune_config_from(resolved, source);
      autotune_run run(c, resolved, source, request);
      return run.run();
    },
});

}  // namespace
}  // namespace qexp

// The `sensitivity` experiment kind: which sites of a scheme hurt the model.
//
// The scheme is prepared once on the whole model, with every calibrating plugin fed the fp32
// model's inputs (calibration mode float), which is exactly what quantizing one site alone means.
// Then, for each site the scheme takes, the model with only that site quantized (one_at_a_time)
// and/or with every site but that one quantized (all_but_one) is measured against fp32 on the
// evaluation sentences. Each such model differs from an already measured one (fp32, or the whole
// scheme) only from the site's stage on, so it runs only those stages, from the hidden states that
// measurement saved (distilbert_classifier::forward_saving_stages / forward_from).
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <optional>

#include "calibration_data.h"
#include "experiment.h"
#include "measurement.h"
#include "ptq_config.h"
#include "results_folder.h"
#include "results_report.h"
#include "site_variants.h"
#include "qexp/errors.h"
#include "qexp/text.h"
#include "qexp/threads.h"

namespace qexp {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct sensitivity_config : experiment_basics {
  quantizer_entry scheme;
  calibration_settings calibration;
  bool one_at_a_time = true, all_but_one = false;
  int batch_size = 1;
  int threads = 1;
  layer_error_settings layer_error;
};

schema_node sensitivity_schema() {
  auto fields = common_experiment_fields("sensitivity");
  fields.insert(fields.end(), {
      {"model", model_section_schema()},
      {"data", data_section_schema()},
      {"scheme", recipe_entry_schema("").is_required()},
      {"calibration", calibration_section_schema(false)},
      {"sensitivity",
       schema_node::map_of({
           {"mode", schema_node::choice_of({"one_at_a_time", "all_but_one", "both"},
                                           "one_at_a_time: each site quantized alone, the rest fp32 (how much it "
                                           "hurts); all_but_one: every site quantized but this one (how much keeping "
                                           "it fp32 recovers); both")
                        .with_default("one_at_a_time")},
           {"batch_size", schema_node::of(value_kind::integer,
                                          "sentences per forward pass; 1 runs each sentence alone, as ptq's accuracy "
                                          "does by default")
                              .at_least(1)
                              .with_default(1)},
           {"threads", schema_node::of(value_kind::integer, "intra-op threads for every forward pass")
                           .at_least(1)
                           .at_most(max_compute_threads)
                           .with_default(2)},
       })},
      {"measure", schema_node::map_of({{"layer_error", layer_error_section_schema()}})},
      {"output", output_section_schema()},
      {"seed", seed_field()},
  });
  return schema_node::map_of(std::move(fields));
}

sensitivity_config sensitivity_config_from(const YAML::Node& r, const config_source& source) {
  sensitivity_config c;
  static_cast<experiment_basics&>(c) = experiment_basics_from(r, source);
  c.scheme = quantizer_from(r["scheme"], source, "scheme");
  c.calibration = calibration_from(r["calibration"], source);
  c.calibration.mode = calibration_mode::float_inputs;
  const std::string mode = r["sensitivity"]["mode"].as<std::string>();
  c.one_at_a_time = mode != "all_but_one";
  c.all_but_one = mode != "one_at_a_time";
  c.batch_size = r["sensitivity"]["batch_size"].as<int>();
  c.threads = r["sensitivity"]["threads"].as<int>();
  c.layer_error = layer_error_from(r["measure"]["layer_error"]);
  return c;
}

// The harm a site does, for the ranking: its KL when quantized alone; with all_but_one only, how
// much KL remains when it alone stays fp32 (the less remains, the more it mattered).
double harm(const results::sensitivity_site& row) {
  if (row.one_at_a_time && row.one_at_a_time->mean_kl_vs_fp32) return *row.one_at_a_time->mean_kl_vs_fp32;
  if (row.all_but_one && row.all_but_one->mean_kl_vs_fp32) return -*row.all_but_one->mean_kl_vs_fp32;
  return -1e300;  // failed sites last
}

int run_sensitivity(const sensitivity_config& config, const YAML::Node& resolved, const run_request& request) {
  if (!request.plugins) throw error("run_sensitivity: no plugin registry");
  c10::InferenceMode inference;
  const plugin_registry& plugins = *request.plugins;
  results_folder folder("sensitivity", config.name, config.description, config.source_file, resolved,
                        config.output_dir, request);
  results::document& doc = folder.doc();
  const int original_threads = compute_threads();
  set_compute_threads(config.threads);
  evaluation_data d = load_evaluation_data(config.model_path, config.data_path, config.data_limit, config.max_length);
  doc.model = model_section_of(d);
  doc.data = data_section_of(d);
  const batched_evaluation eval(d, static_cast<std::size_t>(config.batch_size));
  const std::int64_t stages = d.fp32.config().n_layers + 2;  // embeddings, blocks, head

  // fp32, keeping every stage's input.
  saved_stages fp32_saved;
  auto start = std::chrono::steady_clock::now();
  const at::Tensor fp32_logits = eval.logits(d.fp32, &fp32_saved, "fp32");
  const double full_pass_seconds = seconds_since(start);
  const at::Tensor fp32_probs = probabilities(fp32_logits);
  results::scheme_result base;
  base.label = base.plugin = "fp32";
  base.is_baseline = true;
  base.status = "ok";
  base.accuracy = compare_predictions(fp32_probs, fp32_probs, d.data.labels, config.seed);
  folder.append(base);

  // The whole scheme, prepared once.
  const recipe& scheme = config.scheme.scheme;
  spdlog::info("scheme: {}", config.scheme.label);
  const auto assignment = assign_sites(scheme, d.fp32.sites(), plugins);
  std::optional<calibration_set> calibration;
  if (recipe_wants_calibration(scheme, assignment, plugins))
    calibration = load_calibration_set(config.calibration, d.tokenizer, config.max_length);
  quantized_model whole = apply_recipe(d.fp32, scheme, plugins, calibration ? &*calibration : nullptr, config.seed);
  results::scheme_result whole_row;
  whole_row.label = config.scheme.label;
  whole_row.plugin = scheme.rules.size() == 1 ? scheme.rules[0].plugin : std::string("recipe");
  whole_row.status = "running";
  whole_row.sites_quantized = static_cast<std::int64_t>(whole.sites.size());
  whole_row.prepare_seconds = whole.prepare_seconds;
  whole_row.calibration_seconds = whole.calibration_seconds;
  const std::size_t whole_index = folder.append(whole_row);
  saved_stages whole_saved;
  start = std::chrono::steady_clock::now();
  const at::Tensor whole_logits =
      eval.logits(whole.model, config.all_but_one ? &whole_saved : nullptr, config.scheme.label);
  const double whole_pass_seconds = seconds_since(start);
  int failures = 0;
  try {
    whole_row.accuracy = variant_accuracy(whole_logits, fp32_logits, fp32_probs, d.data.labels, config.seed);
    whole_row.status = "ok";
  } catch (const std::exception& e) {
    whole_row.status = "failed";
    whole_row.error = error_message(e);
    ++failures;
  }
  std::vector<std::string> not_finite;
  const std::vector<results::layer_error_entry> site_errors =
      config.layer_error.enabled ? layer_errors(d, whole.model, whole.sites, config.layer_error, &not_finite)
                                 : std::vector<results::layer_error_entry>();
  whole_row.layer_error = site_errors;
  doc.results[whole_index] = whole_row;

  results::sensitivity_section section;
  section.scheme = config.scheme.label;
  if (config.one_at_a_time) section.modes.push_back("one_at_a_time");
  if (config.all_but_one) section.modes.push_back("all_but_one");
  section.ranked_by = config.one_at_a_time ? "one_at_a_time.mean_kl_vs_fp32, highest first"
                                           : "all_but_one.mean_kl_vs_fp32, lowest first";
  section.calibration_mode = "float";
  section.batch_size = config.batch_size;
  section.threads = config.threads;
  results::sensitivity_section& sensitivity = doc.sensitivity.emplace(std::move(section));
  folder.write();

  // Each site, from its stage on.
  double site_seconds = 0;
  std::int64_t stages_run = 0, passes = 0;
  std::vector<results::sensitivity_site> rows;
  for (std::size_t i = 0; i < whole.sites.size(); ++i) {
    const site_record& s = whole.sites[i];
    const std::int64_t stage = d.fp32.stage_of(s.site);
    results::sensitivity_site row;
    row.site = s.site, row.kind = to_string(s.kind), row.stage = stage, row.plugin = s.plugin;
    try {
      const std::size_t fp32_bytes = float_site_bytes(d.fp32, s.site, s.kind),
                        quantized_bytes = site_bytes(whole.model, s.site, s.kind);
      row.fp32_bytes = static_cast<std::int64_t>(fp32_bytes);
      row.quantized_bytes = static_cast<std::int64_t>(quantized_bytes);
      row.bytes_saved = static_cast<double>(fp32_bytes) - static_cast<double>(quantized_bytes);
      for (const auto& e : site_errors)
        if (e.layer == s.site) row.site_sqnr_db = e.sqnr_db, row.site_nmse = e.nmse;
      const auto measure = [&](std::optional<results::variant_measurement>& into, distilbert_classifier model,
                               const saved_stages& saved) {
        const auto t = std::chrono::steady_clock::now();
        const at::Tensor logits = eval.logits_from(model, saved, stage);
        results::variant_measurement m;
        static_cast<results::accuracy_section&>(m) =
            variant_accuracy(logits, fp32_logits, fp32_probs, d.data.labels, config.seed);
        m.seconds = seconds_since(t);
        site_seconds += *m.seconds;
        stages_run += stages - stage;
        ++passes;
        into = std::move(m);
      };
      if (config.one_at_a_time)
        measure(row.one_at_a_time, with_site_from(d.fp32, whole.model, s.site, s.kind), fp32_saved);
      if (config.all_but_one) measure(row.all_but_one, with_site_from(whole.model, d.fp32, s.site, s.kind), whole_saved);
      const results::variant_measurement& shown = row.one_at_a_time ? *row.one_at_a_time : *row.all_but_one;
      spdlog::info("[{}/{}] {}: KL {:.3g}, accuracy {:+.2f} points", i + 1, whole.sites.size(), s.site,
                   shown.mean_kl_vs_fp32.value_or(NAN), 100 * shown.accuracy_delta_vs_fp32.value_or(NAN));
    } catch (const std::exception& e) {
      row.error = error_message(e);
      ++failures;
      spdlog::error("{}: {}", s.site, *row.error);
    }
    rows.push_back(row);
    sensitivity.sites = rows;
    folder.write();
  }

  std::stable_sort(rows.begin(), rows.end(),
                   [](const results::sensitivity_site& a, const results::sensitivity_site& b) { return harm(a) > harm(b); });
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i].rank = static_cast<std::int64_t>(i + 1);
  sensitivity.sites = rows;
  // What running from the saved stage inputs saved, against a whole forward pass per variant.
  results::sensitivity_cost cost;
  cost.fp32_pass_seconds = full_pass_seconds;
  cost.scheme_pass_seconds = whole_pass_seconds;
  cost.variants = passes;
  cost.variant_seconds = site_seconds;
  cost.stages_per_pass = stages;
  cost.stages_run = stages_run;
  cost.stages_in_whole_passes = passes * stages;
  cost.whole_passes_estimate_seconds = static_cast<double>(passes) * full_pass_seconds;
  sensitivity.cost = cost;
  set_compute_threads(original_threads);
  folder.finish();
  std::cout << summary_table({json(doc)});
  spdlog::info("experiment '{}' done in {:.1f} s ({} variants in {:.1f} s, {} of {} stages run): {}", config.name,
               folder.elapsed_seconds(), passes, site_seconds, stages_run, passes * stages, folder.dir().string());
  return failures ? static_cast<int>(exit_code::runtime_failure) : 0;
}

const experiment_kind_registration sensitivity_kind({
    "sensitivity",
    "layer sensitivity: each site of a scheme quantized alone (or all but one), ranked by how far it moves the "
    "model from fp32",
    sensitivity_schema,
    [](const YAML::Node& resolved, const config_source& source) { sensitivity_config_from(resolved, source); },
    [](const YAML::Node& resolved, const config_source& source, const plugin_registry& plugins) {
      const sensitivity_config c = sensitivity_config_from(resolved, source);
      return validate_recipes({c.scheme}, c.model_path, c.data_path, c.calibration, source, plugins);
    },
    [](const YAML::Node& resolved, const config_source& source, const run_request& request) {
      return run_sensitivity(sensitivity_config_from(resolved, source), resolved, request);
    },
});

}  // namespace
}  // namespace qexp

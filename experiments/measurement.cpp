#include "measurement.h"

#include <unistd.h>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <set>

#include "accuracy_stats.h"
#include "qexp/errors.h"
#include "qexp/latency_stats.h"
#include "qexp/threads.h"

namespace qexp {
using nlohmann::json;

evaluation_data load_evaluation_data(const std::filesystem::path& model_path, const std::filesystem::path& data_path,
                                     std::int64_t limit, int max_length) {
  evaluation_data d{model_path,
                    data_path,
                    max_length,
                    wordpiece_tokenizer::from_model_folder(model_path),
                    distilbert_classifier::from_folder(model_path),
                    {},
                    {}};
  return with_sentences(d, read_sentence_tsv(data_path, static_cast<std::size_t>(limit)));
}

evaluation_data with_sentences(const evaluation_data& model, labelled_sentences data) {
  evaluation_data d{model.model_path, data.path, model.max_length, model.tokenizer, model.fp32, std::move(data), {}};
  const auto classes = static_cast<std::int64_t>(d.fp32.config().id2label.size());
  for (std::size_t i = 0; i < d.data.size(); ++i)
    if (d.data.labels[i] >= classes)
      throw input_error("dataset " + d.data_path.string() + ":" + std::to_string(d.data.lines[i]) + ": label " +
                        std::to_string(d.data.labels[i]) + " is not a class of the model (" + std::to_string(classes) +
                        " classes: expected 0.." + std::to_string(classes - 1) + ")");
  for (const auto& s : d.data.sentences) d.ids.push_back(d.tokenizer.encode_ids(s, d.max_length));
  return d;
}

results::model_section model_section_of(const evaluation_data& d) {
  const auto& mc = d.fp32.config();
  std::int64_t parameters = 0;
  for (const auto& [name, t] : d.fp32.non_linear_tensors()) parameters += t.numel();
  for (const auto& name : d.fp32.linear_names()) {
    const layer l = d.fp32.float_layer(name);
    parameters += l.weight.numel() + (l.bias.defined() ? l.bias.numel() : 0);
  }
  results::model_section m;
  m.path = d.model_path.string();
  m.dim = mc.dim;
  m.n_layers = mc.n_layers;
  m.linear_layers = static_cast<std::int64_t>(d.fp32.linear_names().size());
  m.parameters = parameters;
  return m;
}

results::data_section data_section_of(const evaluation_data& d) {
  std::size_t tokens = 0;
  for (const auto& row : d.ids) tokens += row.size();
  results::data_section out;
  out.path = d.data_path.string();
  out.sentences = static_cast<std::int64_t>(d.data.size());
  out.max_length = d.max_length;
  out.mean_tokens = d.ids.empty() ? 0.0 : static_cast<double>(tokens) / static_cast<double>(d.ids.size());
  return out;
}

progress::progress(std::string what, std::size_t total) : what_(std::move(what)), total_(total), tty_(isatty(2)) {}

void progress::step(std::size_t done) {
  if (total_ == 0) return;
  if (tty_) {
    const int width = 30;
    const int filled = static_cast<int>(width * done / total_);
    std::cerr << "\r  " << what_ << " [" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
              << done << "/" << total_ << std::flush;
    if (done == total_) std::cerr << "\n";
  } else if (const std::size_t quarter = done * 4 / total_; quarter != last_quarter_) {
    // Steps may be batches: a line whenever a quarter boundary was crossed since the last one.
    last_quarter_ = quarter;
    spdlog::info("  {}: {}/{} sentences", what_, done, total_);
  }
}

at::Tensor predict_probabilities(distilbert_classifier& model, const evaluation_data& d, std::size_t batch_size,
                                 const std::string& what) {
  const std::size_t n = d.ids.size();
  std::vector<at::Tensor> parts;
  progress bar(what, n);
  for (std::size_t begin = 0; begin < n; begin += batch_size) {
    const std::size_t end = std::min(n, begin + batch_size);
    at::Tensor mask;
    auto input = padded_batch(d.ids, begin, end, d.tokenizer.pad_id(), &mask);
    parts.push_back(at::softmax(model.forward(input, mask).to(at::kDouble), 1));
    bar.step(end);
  }
  return at::cat(parts);
}

results::accuracy_section compare_predictions(const at::Tensor& probs, const at::Tensor& baseline_probs,
                         const std::vector<std::int64_t>& label_list, std::uint64_t seed) {
  const auto labels = at::tensor(label_list, at::kLong);
  const auto predicted = probs.argmax(1);
  const auto baseline_predicted = baseline_probs.argmax(1);
  const double accuracy = predicted.eq(labels).to(at::kDouble).mean().item<double>();
  const double baseline_accuracy = baseline_predicted.eq(labels).to(at::kDouble).mean().item<double>();
  // KL(p_fp32 || p_candidate), clamped so a zero probability cannot produce inf.
  const auto p = baseline_probs.clamp_min(1e-12), q = probs.clamp_min(1e-12);
  const double kl = (p * (p.log() - q.log())).sum(1).mean().item<double>();
  const auto right = predicted.eq(labels).contiguous(), baseline_right = baseline_predicted.eq(labels).contiguous();
  const paired_accuracy_stats paired = compare_accuracy(
      std::vector<bool>(baseline_right.data_ptr<bool>(), baseline_right.data_ptr<bool>() + baseline_right.numel()),
      std::vector<bool>(right.data_ptr<bool>(), right.data_ptr<bool>() + right.numel()), seed);
  results::accuracy_section out;
  out.sentences = static_cast<std::int64_t>(label_list.size());
  out.accuracy = accuracy;
  out.accuracy_delta_vs_fp32 = accuracy - baseline_accuracy;
  out.accuracy_delta_ci95 = std::array<double, 2>{paired.ci_low, paired.ci_high};
  out.accuracy_delta_significant = paired.significant();
  out.mcnemar_p = paired.mcnemar_p;
  out.sentences_only_fp32_right = static_cast<std::int64_t>(paired.baseline_only);
  out.sentences_only_this_right = static_cast<std::int64_t>(paired.candidate_only);
  out.agreement_with_fp32 = predicted.eq(baseline_predicted).to(at::kDouble).mean().item<double>();
  out.mean_kl_vs_fp32 = kl;
  out.max_abs_dp_vs_fp32 = (probs - baseline_probs).abs().max().item<double>();
  const auto confidence = std::get<0>(probs.max(1)).contiguous();
  out.expected_calibration_error = expected_calibration_error(
      std::vector<double>(confidence.data_ptr<double>(), confidence.data_ptr<double>() + confidence.numel()),
      std::vector<bool>(right.data_ptr<bool>(), right.data_ptr<bool>() + right.numel()));
  return out;
}

namespace {

// SQNR in dB from summed energies; 300 for an exact match (JSON cannot hold inf), NaN when either
// energy is not finite.
double sqnr_from_energy(double signal, double noise) {
  if (!std::isfinite(signal) || !std::isfinite(noise)) return std::nan("");
  return noise > 0 ? 10.0 * std::log10(signal / noise) : 300.0;
}

}  // namespace

double sqnr_db(const at::Tensor& reference, const at::Tensor& candidate) {
  const auto ref = reference.to(at::kDouble), q = candidate.to(at::kDouble);
  return sqnr_from_energy(ref.pow(2).sum().item<double>(), (ref - q).pow(2).sum().item<double>());
}

std::vector<results::layer_error_entry> layer_errors(const evaluation_data& d, distilbert_classifier& quantized, const std::vector<site_record>& sites,
                      const layer_error_settings& s, std::vector<std::string>* bad_layers) {
  std::set<std::string> selected;
  for (const auto& site : sites)
    if (site.kind == site_kind::linear) selected.insert(site.site);
  std::map<std::string, std::pair<double, double>> energy;  // name -> (signal, noise)
  auto observed = d.fp32;
  observed.set_linear_observer([&](const std::string& name, const at::Tensor& in, const at::Tensor& out) {
    if (!selected.count(name)) return;
    const auto q = quantized.linear(name).forward(in).to(at::kDouble);
    const auto ref = out.to(at::kDouble);
    auto& e = energy[name];
    e.first += ref.pow(2).sum().item<double>();
    e.second += (ref - q).pow(2).sum().item<double>();
  });
  const std::size_t n = std::min(d.ids.size(), static_cast<std::size_t>(s.batches) * s.batch_size);
  for (std::size_t begin = 0; begin < n; begin += s.batch_size) {
    at::Tensor mask;
    auto input = padded_batch(d.ids, begin, std::min(n, begin + s.batch_size), d.tokenizer.pad_id(), &mask);
    observed.forward(input, mask);
  }
  // A quantized table's error is over the whole table: every row can be looked up.
  for (const auto& site : sites) {
    if (site.kind != site_kind::table) continue;
    const auto ref = d.fp32.float_table(site.site).weight.to(at::kDouble);
    const auto q = quantized.table_site(site.site).dequantized_table().to(at::kDouble);
    energy[site.site] = {ref.pow(2).sum().item<double>(), (ref - q).pow(2).sum().item<double>()};
  }
  std::vector<results::layer_error_entry> rows;
  std::vector<std::string> non_finite;
  for (const auto& [name, e] : energy) {
    results::layer_error_entry row;
    row.layer = name;
    if (!std::isfinite(e.first) || !std::isfinite(e.second)) {
      // NaN or inf in the outputs: no SQNR to report (JSON null), and the layer is named.
      row.finite = false;
      non_finite.push_back(name);
    } else {
      row.sqnr_db = sqnr_from_energy(e.first, e.second);
      row.nmse = e.first > 0 ? e.second / e.first : 0.0;
    }
    rows.push_back(std::move(row));
  }
  // Worst first; layers without a number before all others.
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    if (a.sqnr_db.value.has_value() != b.sqnr_db.value.has_value()) return !a.sqnr_db.value.has_value();
    return a.sqnr_db.value && *a.sqnr_db.value < *b.sqnr_db.value;
  });
  if (!non_finite.empty() && bad_layers) *bad_layers = std::move(non_finite);
  return rows;
}

namespace {

// The timing statistics of one model at one setting, added to the setting's entry.
results::latency_entry with_stats(results::latency_entry e, const std::vector<double>& samples,
                                  std::size_t sentences_per_call) {
  const latency_stats s = summarize_latency(samples);
  e.p50_ms = s.p50_ms;
  e.p90_ms = s.p90_ms;
  e.p99_ms = s.p99_ms;
  e.mean_ms = s.mean_ms;
  e.stdev_ms = s.stdev_ms;
  e.throughput_per_s = s.mean_ms > 0 ? 1000.0 * static_cast<double>(sentences_per_call) / s.mean_ms : 0.0;
  e.samples_ms = samples;
  return e;
}

}  // namespace

paired_latency measure_latency(const evaluation_data& d, const latency_settings& s, distilbert_classifier& baseline,
                               distilbert_classifier* other) {
  paired_latency out;
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
        tokenize_ms.push_back(time_ms([&] { encoded = d.tokenizer.encode_batch(texts, d.max_length); }));
      for (int i = 0; i < s.warmup; ++i)
        for (auto* m : models) m->forward(encoded.input_ids, encoded.attention_mask);
      std::vector<std::vector<double>> samples(models.size());
      for (int i = 0; i < s.iterations; ++i)
        for (std::size_t k = 0; k < models.size(); ++k)
          samples[k].push_back(time_ms([&] { models[k]->forward(encoded.input_ids, encoded.attention_mask); }));
      results::latency_entry setting;
      setting.batch_size = batch;
      setting.threads = threads;
      setting.tokens = encoded.input_ids.size(1);
      setting.warmup = s.warmup;
      setting.iterations = s.iterations;
      setting.tokenize_ms = summarize_latency(tokenize_ms).mean_ms;
      auto b = with_stats(setting, samples[0], batch);
      b.speedup_vs_fp32 = 1.0;
      out.baseline.probe.push_back(b);
      if (other) {
        auto c = with_stats(setting, samples[1], batch);
        c.speedup_vs_fp32 = summarize_latency(samples[0]).p50_ms / summarize_latency(samples[1]).p50_ms;
        c.baseline_p50_ms = b.p50_ms;
        out.candidate.probe.push_back(c);
      }
    }
    const std::size_t n = std::min<std::size_t>(d.ids.size(), s.dataset_sentences);
    if (n == 0) continue;
    std::vector<std::vector<double>> samples(models.size());
    std::vector<double> tokenize_ms;
    std::size_t tokens = 0;
    for (std::size_t i = 0; i < std::min<std::size_t>(n, s.warmup); ++i)
      for (auto* m : models) m->forward(at::tensor(d.ids[i], at::kLong).unsqueeze(0));
    for (std::size_t i = 0; i < n; ++i) {
      tokenize_ms.push_back(time_ms([&] { d.tokenizer.encode_ids(d.data.sentences[i], d.max_length); }));
      const auto input = at::tensor(d.ids[i], at::kLong).unsqueeze(0);
      tokens += d.ids[i].size();
      for (std::size_t k = 0; k < models.size(); ++k) samples[k].push_back(time_ms([&] { models[k]->forward(input); }));
    }
    results::latency_entry setting;
    setting.batch_size = 1;
    setting.threads = threads;
    setting.sentences = static_cast<std::int64_t>(n);
    setting.mean_tokens = static_cast<double>(tokens) / static_cast<double>(n);
    setting.tokenize_ms = summarize_latency(tokenize_ms).mean_ms;
    auto b = with_stats(setting, samples[0], 1);
    b.speedup_vs_fp32 = 1.0;
    out.baseline.dataset.push_back(b);
    if (other) {
      auto c = with_stats(setting, samples[1], 1);
      c.speedup_vs_fp32 = summarize_latency(samples[0]).mean_ms / summarize_latency(samples[1]).mean_ms;
      c.baseline_mean_ms = b.mean_ms;
      out.candidate.dataset.push_back(c);
    }
  }
  set_compute_threads(original_threads);
  return out;
}


}  // namespace qexp

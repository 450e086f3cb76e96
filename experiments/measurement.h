// What the experiment kinds measure a model by, written once: the evaluation data, predictions,
// accuracy against the fp32 model (with its paired statistics), per-site output error and paired
// latency. The `ptq`, `sensitivity` and `autotune` drivers all measure through these functions, so
// a number means the same in each of their results.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results.h"
#include "qexp/dataset.h"
#include "qexp/distilbert.h"
#include "qexp/recipe.h"
#include "qexp/tokenizer.h"

namespace qexp {

// The sentence timed at each batch size unless the config names another.
inline constexpr const char* default_probe_text =
    "Texto para teste de performance sobre os benefícios da quantização.";

struct latency_settings {
  bool enabled = true;
  int warmup = 10;
  int iterations = 100;
  std::vector<int> batch_sizes{1, 8};
  std::vector<int> threads{1};
  std::string probe_text = default_probe_text;
  int dataset_sentences = 200;  // dev sentences timed one batch at a time
};

struct accuracy_settings {
  bool enabled = true;
  int batch_size = 1;
};

struct layer_error_settings {
  bool enabled = true;
  int batches = 4;
  int batch_size = 8;
};

// The model and the labelled sentences it is measured on, tokenized once.
struct evaluation_data {
  std::filesystem::path model_path, data_path;
  int max_length = 128;
  wordpiece_tokenizer tokenizer;
  distilbert_classifier fp32;
  labelled_sentences data;
  std::vector<std::vector<std::int64_t>> ids;  // one row per sentence, [CLS] ... [SEP]
};

// Loads the model folder and the first `limit` sentences of the TSV (0: all); input_error when a
// label is not a class of the model.
evaluation_data load_evaluation_data(const std::filesystem::path& model_path, const std::filesystem::path& data_path,
                                     std::int64_t limit, int max_length);
// The same model (shared, not copied) with other sentences, tokenized alike; the same label check.
evaluation_data with_sentences(const evaluation_data& model, labelled_sentences data);
// results.json's "model" and "data" sections.
results::model_section model_section_of(const evaluation_data& d);
results::data_section data_section_of(const evaluation_data& d);

// Progress for long loops: a redrawn bar on a terminal, a few plain lines in a log, in sentences.
class progress {
 public:
  progress(std::string what, std::size_t total);
  void step(std::size_t done);

 private:
  std::string what_;
  std::size_t total_;
  bool tty_;
  std::size_t last_quarter_ = 0;
};

// Softmax probabilities [sentences, classes] (double) of every sentence, in padded batches of
// `batch_size` (1: each sentence alone).
at::Tensor predict_probabilities(distilbert_classifier& model, const evaluation_data& d, std::size_t batch_size,
                                 const std::string& what);

// A model's predictions against the fp32 model's on the same sentences: accuracy, its delta with a
// paired bootstrap interval and McNemar's p (seeded), agreement, mean KL(fp32 || model), max |dp|.
// results.json's "accuracy" section, less the probe sentence.
results::accuracy_section compare_predictions(const at::Tensor& probs, const at::Tensor& baseline_probs,
                                   const std::vector<std::int64_t>& labels, std::uint64_t seed);

// Signal to noise of `candidate` against `reference` in dB (300 when they are equal; NaN when either
// is not finite), over every element.
double sqnr_db(const at::Tensor& reference, const at::Tensor& candidate);

// Each quantized site of `quantized` fed the fp32 model's own input to it (the first
// `s.batches` batches of the data), so the error is the site's alone; tables over their whole
// table. Rows worst first (null SQNR and finite: false when not finite, and then named in
// `non_finite`).
std::vector<results::layer_error_entry> layer_errors(const evaluation_data& d, distilbert_classifier& quantized,
                                const std::vector<site_record>& sites, const layer_error_settings& s,
                                std::vector<std::string>* non_finite);

struct paired_latency {
  results::latency_section baseline, candidate;
};

// Baseline and candidate (may be null) timed alternately on the same inputs, so machine drift hits
// both; the speedup is the ratio of their medians (probe) or of their total times (dataset).
paired_latency measure_latency(const evaluation_data& d, const latency_settings& s, distilbert_classifier& baseline,
                               distilbert_classifier* other);

}  // namespace qexp

// Trains the qexp DistilBERT from scratch on a labelled TSV (SST-2) and writes a Hugging Face
// style model folder: config.json, model.safetensors, vocab.txt, tokenizer_config.json, plus
// metrics.json, train.log and the resolved config (train_config.yaml).
//
// Deterministic: the same config, seed and thread count give the same weights bit for bit (the
// shuffling uses its own seeded generator, initialisation and dropout torch's global one, seeded
// at the start of each run).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qexp/dataset.h"
#include "train_config.h"

namespace qexp {

// The training data: read_sentence_tsv (qexp/dataset.h), plus an input_error when the file has
// no rows after its header. limit > 0 keeps the first `limit` rows.
labelled_sentences read_training_tsv(const std::filesystem::path& path, std::int64_t limit = 0);

struct train_result {
  double best_dev_accuracy = 0;
  std::int64_t best_step = 0;
  double best_epoch = 0;  // fractional when eval_every picked a mid-epoch checkpoint
  std::int64_t steps = 0;
  double seconds = 0;             // training and evaluation, vocabulary building excluded
  std::vector<double> step_losses;  // training loss of every step, in order
  nlohmann::ordered_json metrics;   // what metrics.json holds
};

// Trains and writes the model folder `out_dir` (created; files in it are replaced).
// `resolved` (optional) is saved as train_config.yaml beside the model.
train_result run_training(const train_config& config, const std::filesystem::path& out_dir,
                          const YAML::Node& resolved = YAML::Node());

}  // namespace qexp

// The `train` experiment: its YAML schema and the typed view the trainer works with.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "qexp/config_schema.h"
#include "qexp/distilbert.h"

namespace qexp {

// dim 128, 2 blocks, 4 heads, hidden 512: the tiny model `qexp train` builds unless told otherwise.
distilbert_config train_model_defaults();

struct train_vocab_settings {
  std::filesystem::path file;  // an existing vocab.txt; empty: build one from the training text
  std::int64_t size = 8000;
  std::int64_t min_frequency = 1;
  double continuation_fraction = 0.1;
};

struct train_optimizer_settings {
  std::int64_t epochs = 3;
  std::int64_t max_steps = 0;  // 0: epochs decide; else stop after this many steps
  std::int64_t batch_size = 32;
  double learning_rate = 1e-3;
  double weight_decay = 0.01;
  double warmup_fraction = 0.1;  // of the total steps
  double grad_clip = 1.0;        // max global L2 norm; 0 disables clipping
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
  std::int64_t eval_every = 0;   // steps between dev evaluations besides each epoch's end; 0: epochs only
  std::int64_t log_every = 100;  // steps between progress lines when stderr is not a terminal
  std::int64_t eval_batch_size = 128;
};

struct train_config {
  std::string name, description;
  std::filesystem::path train_path, dev_path;
  std::int64_t max_length = 128;
  std::int64_t train_limit = 0;  // 0: every sentence
  std::int64_t dev_limit = 0;
  train_vocab_settings vocab;
  // The model to train: the fields of the config.json it will have (vocab_size comes from the
  // vocabulary; the defaults are a tiny model, train_model_defaults).
  distilbert_config model = train_model_defaults();
  train_optimizer_settings training;
  std::int64_t threads = 2;
  std::uint64_t seed = 0;
  std::string output_dir;  // the model folder written (--out overrides)
};

schema_node train_schema();
// The typed view of a resolved document (call after resolve_config with train_schema()).
// Throws config_error for combinations the schema cannot check (dim not divisible by n_heads,
// max_length above max_position_embeddings), naming the key.
train_config train_config_from(const YAML::Node& resolved, const config_source& source);

}  // namespace qexp

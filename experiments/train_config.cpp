#include "train_config.h"

#include "experiment.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/threads.h"

namespace qexp {

schema_node train_schema() {
  auto fields = common_experiment_fields("train");
  auto positive = [](const char* help, int def) {
    return schema_node::of(value_kind::integer, help).at_least(1).with_default(def);
  };
  auto fraction = [](const char* help, double def) {
    return schema_node::of(value_kind::number, help).at_least(0).at_most(1).with_default(def);
  };
  fields.insert(fields.end(), {
      {"data", schema_node::map_of({
                   {"train", schema_node::of(value_kind::data_path,
                                             "training TSV (sentence<TAB>label, split on the last tab); also "
                                             "searched in QEXP_DATA_PATH")
                                 .with_default("sst2/train.tsv")
                                 .existing()},
                   {"dev", schema_node::of(value_kind::data_path, "dev TSV, evaluated each epoch")
                               .with_default("sst2/dev.tsv")
                               .existing()},
                   {"max_length", max_length_field()},
                   {"train_limit", sentence_limit_field("training sentences")},
                   {"dev_limit", sentence_limit_field("dev sentences")},
               })},
      {"vocab", schema_node::map_of({
                    {"file", schema_node::of(value_kind::string,
                                             "an existing vocab.txt (relative to this file); empty: build a "
                                             "WordPiece vocabulary from the training text")
                                 .with_default("")},
                    {"size", schema_node::of(value_kind::integer, "entries of the built vocabulary, specials included")
                                 .at_least(16)
                                 .with_default(8000)},
                    {"min_frequency", positive("a word seen fewer times is not added whole", 1)},
                    {"continuation_fraction", fraction("share of the free entries given to ##endings", 0.1)},
                })},
      {"model", schema_node::map_of({
                    {"dim", positive("hidden size", 128)},
                    {"n_layers", positive("transformer blocks", 2)},
                    {"n_heads", positive("attention heads (must divide dim)", 4)},
                    {"hidden_dim", positive("feed-forward size", 512)},
                    {"max_position_embeddings", schema_node::of(value_kind::integer,
                                                                "rows of the position table (>= data.max_length)")
                                                    .at_least(2)
                                                    .at_most(4096)
                                                    .with_default(512)},
                    {"dropout", fraction("dropout on embeddings and feed-forward outputs", 0.1)},
                    {"attention_dropout", fraction("dropout on attention weights", 0.1)},
                    {"seq_classif_dropout", fraction("dropout before the classifier", 0.2)},
                    {"initializer_range", schema_node::of(value_kind::number, "stdev of the normal initialisation")
                                              .at_least(0)
                                              .with_default(0.02)},
                })},
      {"training",
       schema_node::map_of({
           {"epochs", positive("passes over the training data", 3)},
           {"max_steps", schema_node::of(value_kind::integer, "stop after this many optimizer steps (0: epochs decide)")
                             .at_least(0)
                             .with_default(0)},
           {"batch_size", positive("sentences per optimizer step", 32)},
           {"learning_rate", schema_node::of(value_kind::number, "peak AdamW learning rate")
                                 .at_least(0)
                                 .with_default(1e-3)},
           {"weight_decay", schema_node::of(value_kind::number,
                                            "AdamW decoupled weight decay (not on biases and LayerNorms)")
                                .at_least(0)
                                .with_default(0.01)},
           {"warmup_fraction", fraction("share of the steps with a linear warm-up; linear decay to 0 after", 0.1)},
           {"grad_clip", schema_node::of(value_kind::number, "max global gradient L2 norm (0: no clipping)")
                             .at_least(0)
                             .with_default(1.0)},
           {"adam_beta1", fraction("AdamW beta1", 0.9)},
           {"adam_beta2", fraction("AdamW beta2", 0.999)},
           {"adam_eps", schema_node::of(value_kind::number, "AdamW epsilon").at_least(0).with_default(1e-8)},
           {"eval_every", schema_node::of(value_kind::integer,
                                          "also evaluate on dev every N steps (0: at the end of each epoch only)")
                              .at_least(0)
                              .with_default(0)},
           {"log_every", positive("steps between progress lines when the output is not a terminal", 100)},
           {"eval_batch_size", positive("sentences per forward pass on dev", 128)},
       })},
      {"threads", schema_node::of(value_kind::integer,
                                  "intra-op threads; the weights are bit-identical for the same seed and threads")
                      .at_least(1)
                      .at_most(max_compute_threads)
                      .with_default(2)},
      {"seed", schema_node::of(value_kind::integer, "seed of the initialisation, dropout and shuffling")
                   .at_least(0)
                   .wide_integer()
                   .with_default(0)},
      {"output", schema_node::map_of({
                     {"dir", schema_node::of(value_kind::string,
                                             "the model folder to write, relative to the current folder (--out "
                                             "overrides)")
                                 .with_default("runs/train")},
                 })},
  });
  return schema_node::map_of(std::move(fields));
}

train_config train_config_from(const YAML::Node& r, const config_source& source) {
  train_config c;
  c.name = r["name"].as<std::string>();
  c.description = r["description"].as<std::string>();
  const YAML::Node d = r["data"];
  c.train_path = d["train"].as<std::string>();
  c.dev_path = d["dev"].as<std::string>();
  c.max_length = d["max_length"].as<std::int64_t>();
  c.train_limit = d["train_limit"].as<std::int64_t>();
  c.dev_limit = d["dev_limit"].as<std::int64_t>();

  const YAML::Node v = r["vocab"];
  const auto vocab_file = v["file"].as<std::string>();
  if (!vocab_file.empty()) {
    std::filesystem::path p(vocab_file);
    std::error_code ec;
    // Like the schema's paths: a --set value is relative to the current folder, a file value to the file.
    const bool from_command_line = source.overrides.count("vocab.file") > 0;
    if (p.is_relative() && !from_command_line && !source.file.empty())
      p = std::filesystem::absolute(source.file, ec).parent_path() / p;
    c.vocab.file = p.lexically_normal();
    if (const auto problem = regular_file_problem(c.vocab.file); !problem.empty())
      throw config_error(location_of(source, "vocab.file") + ": vocabulary file " + c.vocab.file.string() + ": " +
                         problem);
  }
  c.vocab.size = v["size"].as<std::int64_t>();
  c.vocab.min_frequency = v["min_frequency"].as<std::int64_t>();
  c.vocab.continuation_fraction = v["continuation_fraction"].as<double>();

  const YAML::Node m = r["model"];
  c.model.dim = m["dim"].as<std::int64_t>();
  c.model.n_layers = m["n_layers"].as<std::int64_t>();
  c.model.n_heads = m["n_heads"].as<std::int64_t>();
  c.model.hidden_dim = m["hidden_dim"].as<std::int64_t>();
  c.model.max_position_embeddings = m["max_position_embeddings"].as<std::int64_t>();
  c.model.dropout = m["dropout"].as<double>();
  c.model.attention_dropout = m["attention_dropout"].as<double>();
  c.model.seq_classif_dropout = m["seq_classif_dropout"].as<double>();
  c.model.initializer_range = m["initializer_range"].as<double>();
  if (c.model.dim % c.model.n_heads != 0)
    throw config_error(location_of(source, "model.n_heads") + ": n_heads " + std::to_string(c.model.n_heads) +
                       " must divide dim " + std::to_string(c.model.dim));
  if (c.max_length > c.model.max_position_embeddings)
    throw config_error(location_of(source, "data.max_length") + ": max_length " + std::to_string(c.max_length) +
                       " exceeds model.max_position_embeddings " + std::to_string(c.model.max_position_embeddings));

  const YAML::Node t = r["training"];
  c.training.epochs = t["epochs"].as<std::int64_t>();
  c.training.max_steps = t["max_steps"].as<std::int64_t>();
  c.training.batch_size = t["batch_size"].as<std::int64_t>();
  c.training.learning_rate = t["learning_rate"].as<double>();
  c.training.weight_decay = t["weight_decay"].as<double>();
  c.training.warmup_fraction = t["warmup_fraction"].as<double>();
  c.training.grad_clip = t["grad_clip"].as<double>();
  c.training.adam_beta1 = t["adam_beta1"].as<double>();
  c.training.adam_beta2 = t["adam_beta2"].as<double>();
  c.training.adam_eps = t["adam_eps"].as<double>();
  c.training.eval_every = t["eval_every"].as<std::int64_t>();
  c.training.log_every = t["log_every"].as<std::int64_t>();
  c.training.eval_batch_size = t["eval_batch_size"].as<std::int64_t>();

  c.threads = r["threads"].as<std::int64_t>();
  c.seed = r["seed"].as<std::uint64_t>();
  c.output_dir = r["output"]["dir"].as<std::string>();
  return c;
}

}  // namespace qexp

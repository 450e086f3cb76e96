#include "train_config.h"

#include "experiment.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/settings_section.h"
#include "qexp/threads.h"

namespace qexp {

namespace {

schema_node positive(const char* help) { return schema_node::of(value_kind::integer, help).at_least(1); }
schema_node fraction(const char* help) { return schema_node::of(value_kind::number, help).at_least(0).at_most(1); }
schema_node non_negative(value_kind kind, const char* help) { return schema_node::of(kind, help).at_least(0); }

// Each section's keys, members, checks and help, written once: train_schema and train_config_from
// both use them, and its defaults are the structs' (train_model_defaults for the model).
const settings_section<train_vocab_settings>& vocab_section() {
  using v = train_vocab_settings;
  static const auto section =
      settings_section<v>()
          .field("file", &v::file,
                 schema_node::of(value_kind::string,
                                 "an existing vocab.txt (relative to this file); empty: build a WordPiece vocabulary "
                                 "from the training text"))
          .field("size", &v::size,
                 schema_node::of(value_kind::integer, "entries of the built vocabulary, specials included").at_least(16))
          .field("min_frequency", &v::min_frequency, positive("a word seen fewer times is not added whole"))
          .field("continuation_fraction", &v::continuation_fraction,
                 fraction("share of the free entries given to ##endings"));
  return section;
}

const settings_section<distilbert_config>& model_section() {
  using m = distilbert_config;
  static const auto section =
      settings_section<m>(train_model_defaults())
          .field("dim", &m::dim, positive("hidden size"))
          .field("n_layers", &m::n_layers, positive("transformer blocks"))
          .field("n_heads", &m::n_heads, positive("attention heads (must divide dim)"))
          .field("hidden_dim", &m::hidden_dim, positive("feed-forward size"))
          .field("max_position_embeddings", &m::max_position_embeddings,
                 schema_node::of(value_kind::integer, "rows of the position table (>= data.max_length)")
                     .at_least(2)
                     .at_most(4096))
          .field("dropout", &m::dropout, fraction("dropout on embeddings and feed-forward outputs"))
          .field("attention_dropout", &m::attention_dropout, fraction("dropout on attention weights"))
          .field("seq_classif_dropout", &m::seq_classif_dropout, fraction("dropout before the classifier"))
          .field("initializer_range", &m::initializer_range,
                 non_negative(value_kind::number, "stdev of the normal initialisation"));
  return section;
}

const settings_section<train_optimizer_settings>& optimizer_section() {
  using t = train_optimizer_settings;
  static const auto section =
      settings_section<t>()
          .field("epochs", &t::epochs, positive("passes over the training data"))
          .field("max_steps", &t::max_steps,
                 non_negative(value_kind::integer, "stop after this many optimizer steps (0: epochs decide)"))
          .field("batch_size", &t::batch_size, positive("sentences per optimizer step"))
          .field("learning_rate", &t::learning_rate, non_negative(value_kind::number, "peak AdamW learning rate"))
          .field("weight_decay", &t::weight_decay,
                 non_negative(value_kind::number, "AdamW decoupled weight decay (not on biases and LayerNorms)"))
          .field("warmup_fraction", &t::warmup_fraction,
                 fraction("share of the steps with a linear warm-up; linear decay to 0 after"))
          .field("grad_clip", &t::grad_clip,
                 non_negative(value_kind::number, "max global gradient L2 norm (0: no clipping)"))
          .field("adam_beta1", &t::adam_beta1, fraction("AdamW beta1"))
          .field("adam_beta2", &t::adam_beta2, fraction("AdamW beta2"))
          .field("adam_eps", &t::adam_eps, non_negative(value_kind::number, "AdamW epsilon"))
          .field("eval_every", &t::eval_every,
                 non_negative(value_kind::integer, "also evaluate on dev every N steps (0: at the end of each epoch only)"))
          .field("log_every", &t::log_every, positive("steps between progress lines when the output is not a terminal"))
          .field("eval_batch_size", &t::eval_batch_size, positive("sentences per forward pass on dev"));
  return section;
}

}  // namespace

distilbert_config train_model_defaults() {
  distilbert_config m;
  m.dim = 128;
  m.n_layers = 2;
  m.n_heads = 4;
  m.hidden_dim = 512;
  return m;
}

schema_node train_schema() {
  const train_config defaults;
  auto fields = common_experiment_fields("train");
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
      {"vocab", vocab_section().schema()},
      {"model", model_section().schema()},
      {"training", optimizer_section().schema()},
      {"threads", schema_node::of(value_kind::integer,
                                  "intra-op threads; the weights are bit-identical for the same seed and threads")
                      .at_least(1)
                      .at_most(max_compute_threads)
                      .with_default(defaults.threads)},
      {"seed", schema_node::of(value_kind::integer, "seed of the initialisation, dropout and shuffling")
                   .at_least(0)
                   .wide_integer()
                   .with_default(defaults.seed)},
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

  c.vocab = vocab_section().read(r["vocab"]);
  if (!c.vocab.file.empty()) {
    std::filesystem::path p = c.vocab.file;
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

  c.model = model_section().read(r["model"]);
  if (c.model.dim % c.model.n_heads != 0)
    throw config_error(location_of(source, "model.n_heads") + ": n_heads " + std::to_string(c.model.n_heads) +
                       " must divide dim " + std::to_string(c.model.dim));
  if (c.max_length > c.model.max_position_embeddings)
    throw config_error(location_of(source, "data.max_length") + ": max_length " + std::to_string(c.max_length) +
                       " exceeds model.max_position_embeddings " + std::to_string(c.model.max_position_embeddings));

  c.training = optimizer_section().read(r["training"]);
  c.threads = r["threads"].as<std::int64_t>();
  c.seed = r["seed"].as<std::uint64_t>();
  c.output_dir = r["output"]["dir"].as<std::string>();
  return c;
}

}  // namespace qexp

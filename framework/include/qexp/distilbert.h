// DistilBERT for sequence classification (Hugging Face's DistilBertForSequenceClassification),
// inference only, in libtorch. Checkpoints are Hugging Face model folders: config.json plus
// model.safetensors (preferred) or pytorch_model.bin, with Hugging Face's tensor names.
//
// Every Linear is held behind qexp::packed_linear, and each embedding table behind
// qexp::packed_table, in its own shared_ptr slot (a site), so a quantizer can replace any of
// them, and copies of a model are cheap (tensors are shared) yet independent in their slots:
// `auto q = fp32; q.replace_linear(...)` leaves `fp32` untouched.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "qexp/plugin_api.h"
#include "qexp/site.h"

namespace qexp {

namespace detail {
struct token_rows;  // a batch's tokens with the padding dropped (src/attention.h)
}

// The fields of a Hugging Face DistilBERT config.json that the model uses.
struct distilbert_config {
  std::int64_t dim = 768;
  std::int64_t n_layers = 6;
  std::int64_t n_heads = 12;
  std::int64_t hidden_dim = 3072;
  std::int64_t vocab_size = 30522;
  std::int64_t max_position_embeddings = 512;
  std::int64_t pad_token_id = 0;
  std::string activation = "gelu";  // "gelu" (exact, erf) or "relu"
  bool sinusoidal_pos_embds = false;
  std::vector<std::string> id2label = {"NEGATIVE", "POSITIVE"};
  // Training-only values, kept so that a saved config.json reads like Hugging Face's.
  double dropout = 0.1, attention_dropout = 0.1, seq_classif_dropout = 0.2, qa_dropout = 0.1;
  double initializer_range = 0.02;

  // Reads config.json. Required keys: dim, n_layers, n_heads, hidden_dim, vocab_size,
  // max_position_embeddings. The others take Hugging Face's defaults when absent (pad_token_id
  // 0, activation gelu, sinusoidal_pos_embds false, id2label LABEL_0/LABEL_1). Throws
  // checkpoint_error (config.json is part of a checkpoint) naming the file, the key and the
  // expected versus found type or value.
  static distilbert_config from_json_file(const std::filesystem::path& p);
  // The same checks on an already parsed object; `source` names it in errors.
  static distilbert_config from_json(const nlohmann::json& j, const std::string& source);
  // "distilbert-base" (the SST-2 checkpoint's shape) or "distilbert-tiny" (dim 32, 2 layers,
  // 4 heads, hidden 64: the golden test model's shape). Throws config_error otherwise.
  static distilbert_config preset(const std::string& name);
  static std::vector<std::string> preset_names();
  // A Hugging Face compatible config.json object (sorted keys, as save_pretrained writes them).
  nlohmann::json to_json() const;
  void write_json(const std::filesystem::path& p) const;
  std::int64_t num_labels() const { return static_cast<std::int64_t>(id2label.size()); }
  std::int64_t head_dim() const { return dim / n_heads; }
};

// Reads a torch.save zip checkpoint (pytorch_model.bin) through libtorch's unpickler. The file
// must hold a dict of tensor names to tensors (what save_pretrained writes).
class torch_checkpoint_file : public tensor_reader {
 public:
  static std::shared_ptr<torch_checkpoint_file> open(const std::filesystem::path& path);
  bool has_tensor(const std::string& name) const override;
  at::Tensor tensor(const std::string& name) const override;
  std::vector<std::string> names() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<std::string> order_;
  std::map<std::string, at::Tensor> tensors_;
};

// The tensor_reader for a model folder's weights: model.safetensors if present, else
// pytorch_model.bin. Throws checkpoint_error when neither exists.
std::shared_ptr<tensor_reader> open_model_weights(const std::filesystem::path& dir,
                                                  std::filesystem::path* chosen = nullptr);

// Sinusoidal position table exactly as Hugging Face's create_sinusoidal_embeddings builds it.
at::Tensor sinusoidal_position_embeddings(std::int64_t n_positions, std::int64_t dim);

class distilbert_classifier {
 public:
  using linear_observer =
      std::function<void(const std::string& name, const at::Tensor& in, const at::Tensor& out)>;

  // config.json + model.safetensors (preferred) or pytorch_model.bin. Every tensor the model
  // needs must be present with the right shape; F16/BF16/F64 weights are converted to float32.
  static distilbert_classifier from_folder(const std::filesystem::path& dir);
  // Builds the model from any tensor_reader holding Hugging Face names; `source` names it in
  // errors.
  static distilbert_classifier from_tensors(const distilbert_config& c, const tensor_reader& in,
                                            const std::string& source);
  // Hugging Face's initialisation: Linear and Embedding weights ~ N(0, initializer_range = 0.02),
  // biases 0, the padding row of the word embeddings 0, LayerNorm weight 1 and bias 0
  // (sinusoidal positions when configured). Deterministic for a seed.
  static distilbert_classifier random(const distilbert_config& c, std::uint64_t seed);

  // input_ids, attention_mask: [B, T] integer tensors (mask 1 = token, 0 = padding).
  // Returns logits [B, num_labels] float32. Runs under c10::InferenceMode.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask);
  // Same with an all-ones mask.
  at::Tensor forward(const at::Tensor& input_ids);

  // The forward pass cut between stages (stage_of's numbering): what enters `stage` for one
  // batch. Layer sensitivity saves these once and runs a model whose sites changed only from
  // `stage` on, from the saved input, instead of the whole model.
  struct stage_input {
    std::int64_t stage = 1;                          // 1..n_layers: a block; n_layers + 1: the head
    at::Tensor hidden;                               // [token rows, dim], padding rows dropped
    std::shared_ptr<const detail::token_rows> rows;  // where each sequence's rows are
  };
  // forward(), also returning the input of every stage after the embeddings (n_layers + 1 of
  // them, stage 1 first). The saved tensors are not changed by later calls.
  at::Tensor forward_saving_stages(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   std::vector<stage_input>& saved);
  // The logits from `in.stage` on: forward() of the batch `in` was saved from, when every site
  // before that stage is what it was then.
  at::Tensor forward_from(const stage_input& in);

  const distilbert_config& config() const { return config_; }

  // Every site in model order: the word and position embedding tables, then each Linear with
  // the group of Linears reading the same input (per block: q_lin, k_lin and v_lin share
  // "<block>.attention.qkv"; out_lin, ffn.lin1, ffn.lin2, pre_classifier and classifier each
  // read their own).
  std::vector<site> sites() const;
  // The same list for a model of this config, without building one.
  static std::vector<site> sites_of(const distilbert_config& c);
  // The transformer block a site belongs to: 0 for the embedding tables, 1 + i for block i's
  // Linears, n_layers + 1 for the classification head. Sequential calibration goes stage by stage.
  std::int64_t stage_of(const std::string& site_name) const;

  // Hugging Face module names of every Linear, in model order: per layer q_lin, k_lin, v_lin,
  // out_lin, ffn.lin1, ffn.lin2, then pre_classifier and classifier.
  std::vector<std::string> linear_names() const;
  bool has_linear(const std::string& name) const;
  // The original float weight and bias (never changed by replace_linear).
  layer float_layer(const std::string& name) const;
  // What forward currently uses for `name`. Throws input_error for an unknown name.
  packed_linear& linear(const std::string& name);
  const packed_linear& linear(const std::string& name) const;
  std::shared_ptr<packed_linear> linear_ptr(const std::string& name) const;
  void replace_linear(const std::string& name, std::shared_ptr<packed_linear> l);

  // The embedding tables: "distilbert.embeddings.word_embeddings" and
  // "distilbert.embeddings.position_embeddings".
  std::vector<std::string> table_names() const;
  bool has_table(const std::string& name) const;
  // The original float table (never changed by replace_table).
  table float_table(const std::string& name) const;
  // What forward currently looks rows up in. Throws input_error for an unknown name.
  const packed_table& table_site(const std::string& name) const;
  std::shared_ptr<packed_table> table_ptr(const std::string& name) const;
  void replace_table(const std::string& name, std::shared_ptr<packed_table> t);
  // Called with each Linear's input and output during forward when set (per-layer error
  // analysis); pass an empty function to remove it. While an observer is set, forward does not
  // modify Linear outputs in place, so the observer may keep the tensors it is given.
  void set_linear_observer(linear_observer f);

  // config.json + model.safetensors with Hugging Face names, from the float weights.
  void save_float(const std::filesystem::path& dir) const;
  // The non-Linear tensors (float embeddings, LayerNorms) with Hugging Face names, in model order.
  std::vector<std::pair<std::string, at::Tensor>> non_linear_tensors() const;
  // The tensors that belong to no site (the LayerNorms), with Hugging Face names, in model order.
  std::vector<std::pair<std::string, at::Tensor>> non_site_tensors() const;

 private:
  struct block_norms {
    at::Tensor sa_weight, sa_bias, out_weight, out_bias;
  };

  distilbert_classifier() = default;
  std::size_t index_of(const std::string& name) const;
  std::size_t table_index_of(const std::string& name) const;
  at::Tensor apply_linear(std::size_t index, const at::Tensor& x);
  // forward() after its checks; `saved` (may be null) receives every stage's input.
  at::Tensor run_stages(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                        std::vector<stage_input>* saved);
  at::Tensor run_from(const stage_input& in, std::vector<stage_input>* saved);
  // The last block's out_lin, lin1 and lin2 all say rows_independent(): it may run on [CLS] rows.
  bool last_block_rows_independent() const;
  void build_linears();

  distilbert_config config_;
  at::Tensor word_embeddings_, position_embeddings_, embed_norm_weight_, embed_norm_bias_;
  std::shared_ptr<packed_table> tables_[2];  // word, position: what forward looks up
  std::vector<block_norms> blocks_;
  std::vector<layer> float_layers_;                     // model order, as linear_names()
  std::vector<std::shared_ptr<packed_linear>> linears_;  // same order; what forward runs
  std::shared_ptr<const std::map<std::string, std::size_t>> linear_index_;
  linear_observer observer_;
};

}  // namespace qexp

// The trainable DistilBERT (Hugging Face's DistilBertForSequenceClassification) as a torch::nn
// module. Submodules are named exactly as in Hugging Face, so named_parameters() gives the
// checkpoint's tensor names one for one ("distilbert.transformer.layer.0.attention.q_lin.weight").
// The inference model (qexp/distilbert.h) loads what this one saves; tests check that both give
// the same logits in eval mode.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qexp/distilbert.h"

namespace qexp {

struct trainable_embeddings_impl : torch::nn::Module {
  explicit trainable_embeddings_impl(const distilbert_config& c);
  torch::Tensor forward(const torch::Tensor& input_ids);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE_IMPL(trainable_embeddings, trainable_embeddings_impl);

struct trainable_attention_impl : torch::nn::Module {
  explicit trainable_attention_impl(const distilbert_config& c);
  // x [B, T, dim]; key_is_padding [B, 1, 1, T] bool (true: masked), or undefined for none.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_is_padding);

  std::int64_t n_heads, dim;
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear q_lin{nullptr}, k_lin{nullptr}, v_lin{nullptr}, out_lin{nullptr};
};
TORCH_MODULE_IMPL(trainable_attention, trainable_attention_impl);

struct trainable_ffn_impl : torch::nn::Module {
  explicit trainable_ffn_impl(const distilbert_config& c);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear lin1{nullptr}, lin2{nullptr};
  bool gelu = true;
};
TORCH_MODULE_IMPL(trainable_ffn, trainable_ffn_impl);

struct trainable_block_impl : torch::nn::Module {
  explicit trainable_block_impl(const distilbert_config& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_is_padding);

  trainable_attention attention{nullptr};
  torch::nn::LayerNorm sa_layer_norm{nullptr};
  trainable_ffn ffn{nullptr};
  torch::nn::LayerNorm output_layer_norm{nullptr};
};
TORCH_MODULE_IMPL(trainable_block, trainable_block_impl);

struct trainable_transformer_impl : torch::nn::Module {
  explicit trainable_transformer_impl(const distilbert_config& c);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& key_is_padding);

  torch::nn::ModuleList layer{nullptr};  // of trainable_block
};
TORCH_MODULE_IMPL(trainable_transformer, trainable_transformer_impl);

struct trainable_encoder_impl : torch::nn::Module {
  explicit trainable_encoder_impl(const distilbert_config& c);
  // Hidden states [B, T, dim].
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

  trainable_embeddings embeddings{nullptr};
  trainable_transformer transformer{nullptr};
};
TORCH_MODULE_IMPL(trainable_encoder, trainable_encoder_impl);

struct trainable_distilbert_impl : torch::nn::Module {
  // Hugging Face's initialisation from `c.initializer_range`, drawn from torch's global generator
  // (seed it with torch::manual_seed first).
  explicit trainable_distilbert_impl(const distilbert_config& c);
  // input_ids, attention_mask [B, T] int64 -> logits [B, num_labels].
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

  // (Hugging Face name, parameter) in Hugging Face's state_dict order.
  std::vector<std::pair<std::string, torch::Tensor>> hf_tensors() const;
  // Parameters AdamW decays (Linear and embedding weights) and those it does not (biases, LayerNorms).
  std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> decay_groups() const;

  distilbert_config config;
  trainable_encoder distilbert{nullptr};
  torch::nn::Linear pre_classifier{nullptr}, classifier{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE_IMPL(trainable_distilbert, trainable_distilbert_impl);

}  // namespace qexp

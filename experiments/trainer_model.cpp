#include "trainer_model.h"

#include <cmath>
#include <limits>

#include "qexp/errors.h"

namespace qexp {
namespace {

constexpr double layer_norm_eps = 1e-12;  // hard-coded in Hugging Face's DistilBERT

torch::nn::LayerNorm make_layer_norm(std::int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(layer_norm_eps));
}

}  // namespace

trainable_embeddings_impl::trainable_embeddings_impl(const distilbert_config& c) {
  if (c.sinusoidal_pos_embds)
    throw config_error("training with sinusoidal_pos_embds is not supported: use learned positions");
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.dim).padding_idx(c.pad_token_id)));
  position_embeddings =
      register_module("position_embeddings", torch::nn::Embedding(c.max_position_embeddings, c.dim));
  layer_norm = register_module("LayerNorm", make_layer_norm(c.dim));
  dropout = register_module("dropout", torch::nn::Dropout(c.dropout));
}

torch::Tensor trainable_embeddings_impl::forward(const torch::Tensor& input_ids) {
  const auto positions = torch::arange(input_ids.size(1), input_ids.options()).unsqueeze(0);
  return dropout(layer_norm(word_embeddings(input_ids) + position_embeddings(positions)));
}

trainable_attention_impl::trainable_attention_impl(const distilbert_config& c) : n_heads(c.n_heads), dim(c.dim) {
  dropout = register_module("dropout", torch::nn::Dropout(c.attention_dropout));
  q_lin = register_module("q_lin", torch::nn::Linear(c.dim, c.dim));
  k_lin = register_module("k_lin", torch::nn::Linear(c.dim, c.dim));
  v_lin = register_module("v_lin", torch::nn::Linear(c.dim, c.dim));
  out_lin = register_module("out_lin", torch::nn::Linear(c.dim, c.dim));
}

torch::Tensor trainable_attention_impl::forward(const torch::Tensor& x, const torch::Tensor& key_is_padding) {
  const auto batch = x.size(0), length = x.size(1), head_dim = dim / n_heads;
  auto heads = [&](const torch::Tensor& t) { return t.view({batch, length, n_heads, head_dim}).transpose(1, 2); };
  const auto q = heads(q_lin(x)) / std::sqrt(static_cast<double>(head_dim));
  const auto k = heads(k_lin(x));
  const auto v = heads(v_lin(x));
  auto scores = torch::matmul(q, k.transpose(2, 3));  // [B, H, T, T]
  // The dtype's lowest value rather than -inf, as Hugging Face does: a row never becomes NaN.
  if (key_is_padding.defined()) scores = scores.masked_fill(key_is_padding, std::numeric_limits<float>::lowest());
  const auto weights = dropout(torch::softmax(scores, -1));
  const auto context = torch::matmul(weights, v).transpose(1, 2).contiguous().view({batch, length, dim});
  return out_lin(context);
}

trainable_ffn_impl::trainable_ffn_impl(const distilbert_config& c) {
  if (c.activation != "gelu" && c.activation != "relu")
    throw config_error("activation '" + c.activation + "' is not supported for training; expected gelu or relu");
  gelu = c.activation == "gelu";
  dropout = register_module("dropout", torch::nn::Dropout(c.dropout));
  lin1 = register_module("lin1", torch::nn::Linear(c.dim, c.hidden_dim));
  lin2 = register_module("lin2", torch::nn::Linear(c.hidden_dim, c.dim));
}

torch::Tensor trainable_ffn_impl::forward(const torch::Tensor& x) {
  const auto h = lin1(x);
  return dropout(lin2(gelu ? torch::gelu(h) : torch::relu(h)));  // exact (erf) GELU
}

trainable_block_impl::trainable_block_impl(const distilbert_config& c) {
  attention = register_module("attention", trainable_attention(c));
  sa_layer_norm = register_module("sa_layer_norm", make_layer_norm(c.dim));
  ffn = register_module("ffn", trainable_ffn(c));
  output_layer_norm = register_module("output_layer_norm", make_layer_norm(c.dim));
}

torch::Tensor trainable_block_impl::forward(const torch::Tensor& x, const torch::Tensor& key_is_padding) {
  const auto sa = sa_layer_norm(attention(x, key_is_padding) + x);
  return output_layer_norm(ffn(sa) + sa);
}

trainable_transformer_impl::trainable_transformer_impl(const distilbert_config& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < c.n_layers; ++i) layer->push_back(trainable_block(c));
}

torch::Tensor trainable_transformer_impl::forward(torch::Tensor x, const torch::Tensor& key_is_padding) {
  for (const auto& block : *layer) x = block->as<trainable_block_impl>()->forward(x, key_is_padding);
  return x;
}

trainable_encoder_impl::trainable_encoder_impl(const distilbert_config& c) {
  embeddings = register_module("embeddings", trainable_embeddings(c));
  transformer = register_module("transformer", trainable_transformer(c));
}

torch::Tensor trainable_encoder_impl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  torch::Tensor key_is_padding;
  // Skipping the mask when a batch has no padding changes nothing but saves the masked_fill.
  if (attention_mask.defined() && !attention_mask.all().item<bool>())
    key_is_padding = (attention_mask == 0).view({attention_mask.size(0), 1, 1, attention_mask.size(1)});
  return transformer(embeddings(input_ids), key_is_padding);
}

trainable_distilbert_impl::trainable_distilbert_impl(const distilbert_config& c) : config(c) {
  if (c.dim % c.n_heads != 0)
    throw config_error("n_heads " + std::to_string(c.n_heads) + " must divide dim " + std::to_string(c.dim));
  distilbert = register_module("distilbert", trainable_encoder(c));
  pre_classifier = register_module("pre_classifier", torch::nn::Linear(c.dim, c.dim));
  classifier = register_module("classifier", torch::nn::Linear(c.dim, c.num_labels()));
  dropout = register_module("dropout", torch::nn::Dropout(c.seq_classif_dropout));

  // Hugging Face's _init_weights.
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* linear = m->as<torch::nn::LinearImpl>()) {
      linear->weight.normal_(0.0, c.initializer_range);
      linear->bias.zero_();
    } else if (auto* embedding = m->as<torch::nn::EmbeddingImpl>()) {
      embedding->weight.normal_(0.0, c.initializer_range);
      if (embedding->options.padding_idx()) embedding->weight[*embedding->options.padding_idx()].zero_();
    } else if (auto* norm = m->as<torch::nn::LayerNormImpl>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    }
  }
}

torch::Tensor trainable_distilbert_impl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const auto hidden = distilbert(input_ids, attention_mask);
  const auto cls = hidden.select(1, 0);
  return classifier(dropout(torch::relu(pre_classifier(cls))));
}

std::vector<std::pair<std::string, torch::Tensor>> trainable_distilbert_impl::hf_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : named_parameters(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  return out;
}

std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> trainable_distilbert_impl::decay_groups() const {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& item : named_parameters(/*recurse=*/true)) {
    const auto& name = item.key();
    const bool is_norm = name.find("LayerNorm") != std::string::npos || name.find("layer_norm") != std::string::npos;
    const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    (is_norm || is_bias ? no_decay : decay).push_back(item.value());
  }
  return {decay, no_decay};
}

}  // namespace qexp

// DistilBERT for sequence classification, inference only. Mirrors Hugging Face's
// modeling_distilbert.py (transformers 4.29) operation by operation, so logits agree with it to
// float rounding; see docs/model.md for the shapes and the speed choices.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "qexp/distilbert.h"
#include "qexp/errors.h"
#include "qexp/float_linear.h"
#include "qexp/safetensors.h"
#include "qexp/text.h"
#include "attention.h"
#include "transformer_kernels.h"

namespace qexp {
namespace {

// A tensor over the vector's memory, no copy: valid while `v` lives.
at::Tensor long_tensor_view(const std::vector<std::int64_t>& v) {
  return at::from_blob(const_cast<std::int64_t*>(v.data()), {static_cast<std::int64_t>(v.size())}, at::kLong);
}

constexpr double layer_norm_eps = 1e-12;  // hard-coded in Hugging Face's DistilBERT

// The six Linears of a transformer block, in Hugging Face's module order.
constexpr const char* block_linears[] = {"attention.q_lin",  "attention.k_lin", "attention.v_lin",
                                         "attention.out_lin", "ffn.lin1",        "ffn.lin2"};
constexpr std::size_t linears_per_block = 6;
enum block_linear : std::size_t { q_lin, k_lin, v_lin, out_lin, lin1, lin2 };

constexpr const char* table_site_names[] = {"distilbert.embeddings.word_embeddings",
                                            "distilbert.embeddings.position_embeddings"};

std::string block_prefix(std::int64_t i) {
  return "distilbert.transformer.layer." + std::to_string(i) + ".";
}

struct linear_shape {
  std::string name;
  std::int64_t out, in;
};

// Every Linear of the model with its shape, in model order.
std::vector<linear_shape> linear_shapes(const distilbert_config& c) {
  std::vector<linear_shape> shapes;
  for (std::int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = block_prefix(i);
    for (std::size_t j = 0; j < 4; ++j) shapes.push_back({p + block_linears[j], c.dim, c.dim});
    shapes.push_back({p + block_linears[lin1], c.hidden_dim, c.dim});
    shapes.push_back({p + block_linears[lin2], c.dim, c.hidden_dim});
  }
  shapes.push_back({"pre_classifier", c.dim, c.dim});
  shapes.push_back({"classifier", c.num_labels(), c.dim});
  return shapes;
}

// Fetches one tensor by its Hugging Face name, checking presence, shape and dtype.
class checked_reader {
 public:
  checked_reader(const tensor_reader& in, std::string source) : in_(in), source_(std::move(source)) {}

  at::Tensor get(const std::string& name, std::vector<std::int64_t> shape) const {
    if (!in_.has_tensor(name))
      throw checkpoint_error(source_ + ": tensor '" + name + "' is missing; expected shape " +
                             shape_text(shape));
    at::Tensor t = in_.tensor(name);
    if (t.sizes() != at::IntArrayRef(shape))
      throw checkpoint_error(source_ + ": tensor '" + name + "': expected shape " +
                             shape_text(shape) + ", found " + shape_text(t.sizes()));
    if (!at::isFloatingType(t.scalar_type()))
      throw checkpoint_error(source_ + ": tensor '" + name +
                             "': expected a floating-point dtype, found " +
                             c10::toString(t.scalar_type()));
    return t.to(at::kFloat).contiguous();
  }
  bool has(const std::string& name) const { return in_.has_tensor(name); }

 private:
  const tensor_reader& in_;
  std::string source_;
};

}  // namespace

at::Tensor sinusoidal_position_embeddings(std::int64_t n_positions, std::int64_t dim) {
  // Hugging Face: angle[pos, j] = pos / 10000^(2 * (j // 2) / dim); sin on even columns, cos
  // on odd ones. Computed in double like its numpy code, then stored as float32.
  auto table = at::empty({n_positions, dim}, at::kDouble);
  auto* out = table.data_ptr<double>();
  for (std::int64_t pos = 0; pos < n_positions; ++pos)
    for (std::int64_t j = 0; j < dim; ++j) {
      const double angle =
          static_cast<double>(pos) / std::pow(10000.0, 2.0 * static_cast<double>(j / 2) / dim);
      out[pos * dim + j] = (j % 2 == 0) ? std::sin(angle) : std::cos(angle);
    }
  return table.to(at::kFloat);
}

void distilbert_classifier::build_linears() {
  tables_[0] = make_float_table({table_site_names[0], word_embeddings_});
  tables_[1] = make_float_table({table_site_names[1], position_embeddings_});
  auto index = std::make_shared<std::map<std::string, std::size_t>>();
  linears_.clear();
  for (std::size_t i = 0; i < float_layers_.size(); ++i) {
    (*index)[float_layers_[i].name] = i;
    linears_.push_back(std::shared_ptr<packed_linear>(make_float_linear(float_layers_[i])));
  }
  linear_index_ = std::move(index);
}

distilbert_classifier distilbert_classifier::from_tensors(const distilbert_config& c,
                                                          const tensor_reader& in,
                                                          const std::string& source) {
  checked_reader r(in, source);
  distilbert_classifier m;
  m.config_ = c;
  const std::int64_t d = c.dim;
  m.word_embeddings_ = r.get("distilbert.embeddings.word_embeddings.weight", {c.vocab_size, d});
  const std::string position_name = "distilbert.embeddings.position_embeddings.weight";
  if (c.sinusoidal_pos_embds && !r.has(position_name))
    m.position_embeddings_ = sinusoidal_position_embeddings(c.max_position_embeddings, d);
  else
    m.position_embeddings_ = r.get(position_name, {c.max_position_embeddings, d});
  m.embed_norm_weight_ = r.get("distilbert.embeddings.LayerNorm.weight", {d});
  m.embed_norm_bias_ = r.get("distilbert.embeddings.LayerNorm.bias", {d});
  for (std::int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = block_prefix(i);
    m.blocks_.push_back({r.get(p + "sa_layer_norm.weight", {d}), r.get(p + "sa_layer_norm.bias", {d}),
                         r.get(p + "output_layer_norm.weight", {d}),
                         r.get(p + "output_layer_norm.bias", {d})});
  }
  for (const auto& s : linear_shapes(c))
    m.float_layers_.push_back(
        {s.name, r.get(s.name + ".weight", {s.out, s.in}), r.get(s.name + ".bias", {s.out})});
  m.build_linears();
  return m;
}

distilbert_classifier distilbert_classifier::from_folder(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir))
    throw checkpoint_error(dir.string() + ": not a model folder (expected a directory with "
                           "config.json and model.safetensors or pytorch_model.bin)");
  const auto config = distilbert_config::from_json_file(dir / "config.json");
  std::filesystem::path weights_path;
  auto weights = open_model_weights(dir, &weights_path);
  return from_tensors(config, *weights, weights_path.string());
}

distilbert_classifier distilbert_classifier::random(const distilbert_config& c, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double init_std = c.initializer_range;
  auto normal = [&](std::vector<std::int64_t> shape) {
    return at::normal(0.0, init_std, shape, gen, at::TensorOptions().dtype(at::kFloat));
  };
  const auto ones = [](std::int64_t n) { return at::ones({n}, at::kFloat); };
  const auto zeros = [](std::int64_t n) { return at::zeros({n}, at::kFloat); };
  distilbert_classifier m;
  m.config_ = c;
  const std::int64_t d = c.dim;
  m.word_embeddings_ = normal({c.vocab_size, d});
  m.word_embeddings_[c.pad_token_id].zero_();
  m.position_embeddings_ = c.sinusoidal_pos_embds
                               ? sinusoidal_position_embeddings(c.max_position_embeddings, d)
                               : normal({c.max_position_embeddings, d});
  m.embed_norm_weight_ = ones(d);
  m.embed_norm_bias_ = zeros(d);
  for (std::int64_t i = 0; i < c.n_layers; ++i) m.blocks_.push_back({ones(d), zeros(d), ones(d), zeros(d)});
  for (const auto& s : linear_shapes(c))
    m.float_layers_.push_back({s.name, normal({s.out, s.in}), zeros(s.out)});
  m.build_linears();
  return m;
}

at::Tensor distilbert_classifier::apply_linear(std::size_t index, const at::Tensor& x) {
  at::Tensor y = linears_[index]->forward(x);
  if (observer_) observer_(float_layers_[index].name, x, y);
  return y;
}

at::Tensor distilbert_classifier::forward(const at::Tensor& input_ids) {
  return forward(input_ids, at::ones_like(input_ids));
}

at::Tensor distilbert_classifier::forward(const at::Tensor& input_ids,
                                          const at::Tensor& attention_mask) {
  return run_stages(input_ids, attention_mask, nullptr);
}

at::Tensor distilbert_classifier::forward_saving_stages(const at::Tensor& input_ids,
                                                        const at::Tensor& attention_mask,
                                                        std::vector<stage_input>& saved) {
  saved.clear();
  return run_stages(input_ids, attention_mask, &saved);
}

at::Tensor distilbert_classifier::run_stages(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                             std::vector<stage_input>* saved) {
  c10::InferenceMode inference;
  if (input_ids.dim() != 2 || !at::isIntegralType(input_ids.scalar_type(), false))
    throw input_error("DistilBERT input_ids: expected an integer [batch, tokens] tensor, found " +
                      std::string(c10::toString(input_ids.scalar_type())) + " " +
                      shape_text(input_ids.sizes()));
  if (!attention_mask.defined() || attention_mask.sizes() != input_ids.sizes())
    throw input_error("DistilBERT attention_mask: expected shape " + shape_text(input_ids.sizes()) +
                      ", found " +
                      (attention_mask.defined() ? shape_text(attention_mask.sizes()) : "none"));
  const std::int64_t batch = input_ids.size(0), tokens = input_ids.size(1);
  if (batch == 0 || tokens == 0)
    throw input_error("DistilBERT input_ids: expected at least one token, found shape " +
                      shape_text(input_ids.sizes()));
  if (tokens > config_.max_position_embeddings)
    throw input_error("DistilBERT input has " + std::to_string(tokens) +
                      " tokens; the model takes at most max_position_embeddings = " +
                      std::to_string(config_.max_position_embeddings));
  const at::Tensor ids = input_ids.to(at::kLong).contiguous();
  {
    // Plain loops: at::aminmax + item() cost more than the check itself at batch 1.
    const std::int64_t* id = ids.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < ids.numel(); ++i)
      if (id[i] < 0 || id[i] >= config_.vocab_size)
        throw input_error("DistilBERT input_ids: token id " + std::to_string(id[i]) +
                          " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) +
                          ")");
  }
  auto rows = std::make_shared<const detail::token_rows>(
      detail::pack_token_rows(ids, attention_mask.to(at::kLong).contiguous()));
  at::Tensor x = tables_[0]->lookup(long_tensor_view(rows->ids));  // [rows, D]
  detail::add_layer_norm_(x, tables_[1]->lookup(long_tensor_view(rows->positions)), embed_norm_weight_, embed_norm_bias_,
                          layer_norm_eps);
  return run_from(stage_input{1, x, std::move(rows)}, saved);
}

at::Tensor distilbert_classifier::forward_from(const stage_input& in) {
  c10::InferenceMode inference;
  if (!in.rows || !in.hidden.defined() || in.stage < 1 || in.stage > config_.n_layers + 1 ||
      in.hidden.dim() != 2 || in.hidden.size(0) != in.rows->count() || in.hidden.size(1) != config_.dim)
    throw input_error("DistilBERT forward_from: expected a stage_input saved by forward_saving_stages of a model "
                      "of this config (stage 1.." + std::to_string(config_.n_layers + 1) + ", [rows, " +
                      std::to_string(config_.dim) + "] hidden), found stage " + std::to_string(in.stage) +
                      (in.hidden.defined() ? " and hidden " + shape_text(in.hidden.sizes()) : ""));
  return run_from(in, nullptr);
}

at::Tensor distilbert_classifier::run_from(const stage_input& in, std::vector<stage_input>* saved) {
  // Without an observer nobody else holds the Linear outputs, so they are updated in place. The
  // stage's input itself is never written: every block writes into its Linears' outputs.
  const bool in_place = !observer_;
  const detail::token_rows& rows = *in.rows;
  const std::int64_t heads = config_.n_heads;
  at::Tensor x = in.hidden;

  // The classifier reads position 0 of each sequence only, so after the last block's attention
  // (whose keys and values need every row) the rest of that block runs on the [CLS] rows alone,
  // when its three Linears say each output row depends on its own input row only (a per-tensor
  // dynamic activation range would give other numbers on fewer rows). Not while an observer
  // watches (calibration sees every row) or stages are saved (each holds every row).
  const std::vector<std::int64_t> first_rows(rows.start.begin(), rows.start.end() - 1);
  const bool cls_only_last_block = in_place && !saved && rows.count() != rows.sequences() &&
                                   last_block_rows_independent();
  for (std::int64_t b = in.stage - 1; b < config_.n_layers; ++b) {
    if (saved) saved->push_back({b + 1, x, in.rows});
    const std::size_t base = static_cast<std::size_t>(b) * linears_per_block;
    const block_norms& norms = blocks_[b];
    const at::Tensor q = apply_linear(base + q_lin, x).contiguous();
    const at::Tensor k = apply_linear(base + k_lin, x).contiguous();
    const at::Tensor v = apply_linear(base + v_lin, x).contiguous();
    at::Tensor context = detail::fused_attention(q, k, v, rows, heads);
    if (cls_only_last_block && b + 1 == config_.n_layers) {
      const at::Tensor index = long_tensor_view(first_rows);
      context = context.index_select(0, index);
      x = x.index_select(0, index);
    }
    at::Tensor attended = apply_linear(base + out_lin, context);
    if (!in_place) attended = attended.clone();
    detail::add_layer_norm_(attended, x, norms.sa_weight, norms.sa_bias, layer_norm_eps);
    x = attended;

    at::Tensor hidden = apply_linear(base + lin1, x);
    if (!in_place) hidden = hidden.clone();
    if (config_.activation == "gelu")
      detail::gelu_(hidden);  // exact erf GELU
    else
      hidden.relu_();
    at::Tensor ffn_out = apply_linear(base + lin2, hidden);
    if (!in_place) ffn_out = ffn_out.clone();
    detail::add_layer_norm_(ffn_out, x, norms.out_weight, norms.out_bias, layer_norm_eps);
    x = ffn_out;
  }

  if (saved) saved->push_back({config_.n_layers + 1, x, in.rows});
  const std::size_t head = static_cast<std::size_t>(config_.n_layers) * linears_per_block;
  // The [CLS] rows, one per sequence (already all x holds when the last block ran on them alone).
  at::Tensor pooled = x.size(0) == rows.sequences() ? x : x.index_select(0, long_tensor_view(first_rows));
  at::Tensor pre = apply_linear(head, pooled);
  pre = in_place ? pre.relu_() : pre.relu();
  return apply_linear(head + 1, pre);
}

bool distilbert_classifier::last_block_rows_independent() const {
  if (config_.n_layers < 1) return false;
  const std::size_t base = static_cast<std::size_t>(config_.n_layers - 1) * linears_per_block;
  for (const std::size_t i : {base + out_lin, base + lin1, base + lin2})
    if (!linears_[i]->rows_independent()) return false;
  return true;
}

std::vector<site> distilbert_classifier::sites_of(const distilbert_config& c) {
  std::vector<site> out;
  for (const char* t : table_site_names) out.push_back({t, site_kind::table, t});
  for (const auto& l : linear_shapes(c)) {
    // q_lin, k_lin and v_lin all read the block's input: one group, "<block>.attention.qkv".
    std::string group = l.name;
    for (const char* member : {".attention.q_lin", ".attention.k_lin", ".attention.v_lin"}) {
      const std::size_t n = std::strlen(member);
      if (l.name.size() > n && l.name.compare(l.name.size() - n, n, member) == 0)
        group = l.name.substr(0, l.name.size() - 6) + ".qkv";  // drop ".q_lin"
    }
    out.push_back({l.name, site_kind::linear, group});
  }
  return out;
}

std::vector<site> distilbert_classifier::sites() const { return sites_of(config_); }

std::int64_t distilbert_classifier::stage_of(const std::string& site_name) const {
  if (has_table(site_name)) return 0;
  return static_cast<std::int64_t>(index_of(site_name) / linears_per_block) + 1;
}

std::vector<std::string> distilbert_classifier::table_names() const {
  return {table_site_names[0], table_site_names[1]};
}

bool distilbert_classifier::has_table(const std::string& name) const {
  return name == table_site_names[0] || name == table_site_names[1];
}

std::size_t distilbert_classifier::table_index_of(const std::string& name) const {
  for (std::size_t i = 0; i < 2; ++i)
    if (name == table_site_names[i]) return i;
  throw input_error("DistilBERT has no embedding table named '" + name + "' (expected " +
                    table_site_names[0] + " or " + table_site_names[1] + ")");
}

table distilbert_classifier::float_table(const std::string& name) const {
  return {name, table_index_of(name) == 0 ? word_embeddings_ : position_embeddings_};
}

const packed_table& distilbert_classifier::table_site(const std::string& name) const {
  return *tables_[table_index_of(name)];
}

std::shared_ptr<packed_table> distilbert_classifier::table_ptr(const std::string& name) const {
  return tables_[table_index_of(name)];
}

void distilbert_classifier::replace_table(const std::string& name, std::shared_ptr<packed_table> t) {
  if (!t) throw input_error("replace_table('" + name + "'): the new table is null");
  tables_[table_index_of(name)] = std::move(t);
}

std::vector<std::string> distilbert_classifier::linear_names() const {
  std::vector<std::string> names;
  for (const auto& l : float_layers_) names.push_back(l.name);
  return names;
}

bool distilbert_classifier::has_linear(const std::string& name) const {
  return linear_index_ && linear_index_->count(name) != 0;
}

std::size_t distilbert_classifier::index_of(const std::string& name) const {
  auto it = linear_index_->find(name);
  if (it == linear_index_->end())
    throw input_error("DistilBERT has no Linear named '" + name + "' (expected a name such as " +
                      float_layers_.front().name + " or classifier)");
  return it->second;
}

layer distilbert_classifier::float_layer(const std::string& name) const {
  return float_layers_[index_of(name)];
}

packed_linear& distilbert_classifier::linear(const std::string& name) {
  return *linears_[index_of(name)];
}

const packed_linear& distilbert_classifier::linear(const std::string& name) const {
  return *linears_[index_of(name)];
}

std::shared_ptr<packed_linear> distilbert_classifier::linear_ptr(const std::string& name) const {
  return linears_[index_of(name)];
}

void distilbert_classifier::replace_linear(const std::string& name, std::shared_ptr<packed_linear> l) {
  if (!l) throw input_error("replace_linear('" + name + "'): the new Linear is null");
  linears_[index_of(name)] = std::move(l);
}

void distilbert_classifier::set_linear_observer(linear_observer f) { observer_ = std::move(f); }

std::vector<std::pair<std::string, at::Tensor>> distilbert_classifier::non_linear_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out = {
      {"distilbert.embeddings.word_embeddings.weight", word_embeddings_},
      {"distilbert.embeddings.position_embeddings.weight", position_embeddings_},
      {"distilbert.embeddings.LayerNorm.weight", embed_norm_weight_},
      {"distilbert.embeddings.LayerNorm.bias", embed_norm_bias_}};
  for (std::int64_t i = 0; i < config_.n_layers; ++i) {
    const std::string p = block_prefix(i);
    out.emplace_back(p + "sa_layer_norm.weight", blocks_[i].sa_weight);
    out.emplace_back(p + "sa_layer_norm.bias", blocks_[i].sa_bias);
    out.emplace_back(p + "output_layer_norm.weight", blocks_[i].out_weight);
    out.emplace_back(p + "output_layer_norm.bias", blocks_[i].out_bias);
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> distilbert_classifier::non_site_tensors() const {
  auto all = non_linear_tensors();
  all.erase(all.begin(), all.begin() + 2);  // the two embedding tables are sites
  return all;
}

void distilbert_classifier::save_float(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  safetensors_writer out;
  out.set_metadata("format", "pt");
  const auto add_layer = [&out](const layer& l) {
    out.add_tensor(l.name + ".weight", l.weight);
    if (l.bias.defined()) out.add_tensor(l.name + ".bias", l.bias);
  };
  // Hugging Face's state_dict order: embeddings, then per block attention, sa_layer_norm, ffn,
  // output_layer_norm, then the classification head.
  const auto non_linear = non_linear_tensors();
  for (std::size_t i = 0; i < 4; ++i) out.add_tensor(non_linear[i].first, non_linear[i].second);
  for (std::int64_t b = 0; b < config_.n_layers; ++b) {
    const std::size_t base = static_cast<std::size_t>(b) * linears_per_block;
    const std::size_t norms = 4 + static_cast<std::size_t>(b) * 4;
    for (std::size_t j = 0; j < 4; ++j) add_layer(float_layers_[base + j]);
    out.add_tensor(non_linear[norms].first, non_linear[norms].second);
    out.add_tensor(non_linear[norms + 1].first, non_linear[norms + 1].second);
    add_layer(float_layers_[base + lin1]);
    add_layer(float_layers_[base + lin2]);
    out.add_tensor(non_linear[norms + 2].first, non_linear[norms + 2].second);
    out.add_tensor(non_linear[norms + 3].first, non_linear[norms + 3].second);
  }
  const std::size_t head = static_cast<std::size_t>(config_.n_layers) * linears_per_block;
  add_layer(float_layers_[head]);
  add_layer(float_layers_[head + 1]);
  config_.write_json(dir / "config.json");
  out.write(dir / "model.safetensors");
}

}  // namespace qexp

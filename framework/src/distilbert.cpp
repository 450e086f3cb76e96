// DistilBERT for sequence classification, inference only. Mirrors Hugging Face's
// modeling_distilbert.py (transformers 4.29) operation by operation, so logits agree with it to
// float rounding; see docs/model.md for the shapes and the speed choices.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "qexp/distilbert.h"
#include "qexp/errors.h"
#include "qexp/float_linear.h"
#include "qexp/safetensors.h"

namespace qexp {
namespace {

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

std::string shape_text(at::IntArrayRef shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
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

// The attention kernel's register blocking: 4 query rows by 16 floats (one AVX-512 register,
// two AVX2 ones; GCC's generic vectors lower to whatever the clone's ISA has).
constexpr std::int64_t attention_rows = 4, attention_lanes = 16;
typedef float lanes16 __attribute__((vector_size(attention_lanes * sizeof(float))));
static_assert(attention_rows == 4, "multiply_tile unrolls four accumulators");

std::int64_t round_up(std::int64_t n, std::int64_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

// acc[r] = sum over i < count of a[r * a_row_stride + i] * b[i * b_stride .. + 16], for r < 4: the
// register tile both of attention's products run on (scores Q K^T and context P V). Inlined into
// each of attend_one_head's ISA clones.
__attribute__((always_inline)) inline void multiply_tile(const float* a, std::int64_t a_row_stride,
                                                         const float* b, std::int64_t b_stride,
                                                         std::int64_t count, lanes16 (&acc)[4]) {
  lanes16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  for (std::int64_t i = 0; i < count; ++i) {
    lanes16 bi;
    std::memcpy(&bi, b + i * b_stride, sizeof bi);
    a0 += a[i] * bi;
    a1 += a[a_row_stride + i] * bi;
    a2 += a[2 * a_row_stride + i] * bi;
    a3 += a[3 * a_row_stride + i] * bi;
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

// Floats of scratch attend_one_head needs for sequences of up to `tokens` tokens.
std::size_t attention_scratch_floats(std::int64_t tokens, std::int64_t head_dim) {
  const std::int64_t rows = round_up(tokens, attention_rows), keys = round_up(tokens, attention_lanes);
  return static_cast<std::size_t>(rows * head_dim + head_dim * keys +
                                  tokens * round_up(head_dim, attention_lanes) + rows * keys);
}

// Scaled dot-product attention of one (sequence, head) pair: Q, K, V are this head's columns of
// the Linear outputs (rows of `row_stride` floats), the context goes into this head's columns of
// `out`. Q (scaled), K (transposed) and V are first copied into zero-padded scratch tiles, so
// that scores and context are computed 4 rows x 16 lanes at a time with the accumulators in
// registers, and the softmax's exp is a polynomial that vectorises; all without -ffast-math, and
// target_clones picks the widest ISA at load time. Keys marked in `key_is_padding` get
// probability 0, which is what Hugging Face's lowest-value fill gives after the softmax.
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_one_head(
    const float* q, const float* k, const float* v, float* out, std::int64_t tokens,
    std::int64_t head_dim, std::int64_t row_stride, const std::uint8_t* key_is_padding, float scale,
    float* scratch) {
  constexpr std::int64_t R = attention_rows, L = attention_lanes;
  const std::int64_t d = head_dim, rows = round_up(tokens, R), keys = round_up(tokens, L);
  const std::int64_t lanes = round_up(d, L);
  float* qs = scratch;          // [rows][d], Q * scale, padding rows 0
  float* kt = qs + rows * d;    // [d][keys], K transposed, padding keys 0
  float* vs = kt + d * keys;    // [tokens][lanes], padding columns 0
  float* p = vs + tokens * lanes;  // [rows][keys], scores, then probabilities
  for (std::int64_t i = 0; i < tokens; ++i)
    for (std::int64_t c = 0; c < d; ++c) qs[i * d + c] = q[i * row_stride + c] * scale;
  std::fill(qs + tokens * d, qs + rows * d, 0.0f);
  for (std::int64_t c = 0; c < d; ++c) {
    for (std::int64_t j = 0; j < tokens; ++j) kt[c * keys + j] = k[j * row_stride + c];
    std::fill(kt + c * keys + tokens, kt + (c + 1) * keys, 0.0f);
  }
  for (std::int64_t j = 0; j < tokens; ++j) {
    for (std::int64_t c = 0; c < d; ++c) vs[j * lanes + c] = v[j * row_stride + c];
    std::fill(vs + j * lanes + d, vs + (j + 1) * lanes, 0.0f);
  }
  for (std::int64_t i0 = 0; i0 < rows; i0 += R)
    for (std::int64_t j0 = 0; j0 < keys; j0 += L) {
      lanes16 scores[R];
      multiply_tile(qs + i0 * d, d, kt + j0, keys, d, scores);
      for (std::int64_t r = 0; r < R; ++r)
        std::memcpy(p + (i0 + r) * keys + j0, &scores[r], sizeof scores[r]);
    }
  for (std::int64_t i = 0; i < rows; ++i) {
    float* pi = p + i * keys;
    if (i >= tokens) {  // padding rows of the tile: weights 0 for the context step
      std::fill(pi, pi + keys, 0.0f);
      continue;
    }
    float highest = std::numeric_limits<float>::lowest();
    for (std::int64_t j = 0; j < tokens; ++j)
      if (!key_is_padding || !key_is_padding[j]) highest = std::max(highest, pi[j]);
    for (std::int64_t j = 0; j < tokens; ++j) {
      // exp(x) for x = pi[j] - highest <= 0: Cephes' expf (within 1e-7 relative of std::exp).
      // |x| is clamped to 87 on the bits, as a float compare would stop the vectoriser.
      std::int32_t magnitude = __builtin_bit_cast(std::int32_t, pi[j] - highest) & 0x7fffffff;
      magnitude = magnitude > 0x42ae0000 ? 0x42ae0000 : magnitude;
      const float x = __builtin_bit_cast(float, magnitude | static_cast<std::int32_t>(0x80000000u));
      const float t = x * 1.44269504088896341f + 12582912.0f;  // + 1.5 * 2^23 rounds to an integer
      const std::int32_t n = __builtin_bit_cast(std::int32_t, t) - 0x4b400000;
      const float fn = t - 12582912.0f;
      const float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
      float y = 1.9875691500e-4f;
      y = y * r + 1.3981999507e-3f;
      y = y * r + 8.3334519073e-3f;
      y = y * r + 4.1665795894e-2f;
      y = y * r + 1.6666665459e-1f;
      y = y * r + 5.0000001201e-1f;
      y = y * (r * r) + r + 1.0f;
      pi[j] = y * __builtin_bit_cast(float, (n + 127) << 23);
    }
    if (key_is_padding)
      for (std::int64_t j = 0; j < tokens; ++j) pi[j] = key_is_padding[j] ? 0.0f : pi[j];
    float sum = 0.0f;
    for (std::int64_t j = 0; j < tokens; ++j) sum += pi[j];
    // A sequence whose mask is all 0 has no key at all: its context is 0 rather than NaN.
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (std::int64_t j = 0; j < tokens; ++j) pi[j] *= inv;
  }
  for (std::int64_t i0 = 0; i0 < rows; i0 += R)
    for (std::int64_t c0 = 0; c0 < lanes; c0 += L) {
      lanes16 context[R];
      multiply_tile(p + i0 * keys, keys, vs + c0, lanes, tokens, context);
      for (std::int64_t r = 0; r < R && i0 + r < tokens; ++r) {
        float* o = out + (i0 + r) * row_stride + c0;
        if (c0 + L <= d)
          std::memcpy(o, &context[r], sizeof context[r]);
        else
          for (std::int64_t c = 0; c0 + c < d; ++c) o[c] = context[r][c];
      }
    }
}

// The token rows a forward computes, packed: sequence b owns rows [start[b], start[b + 1]) of
// every [rows, D] activation, in position order. A row is kept when its mask is 1, and position
// 0 is always kept because the classifier reads it (a masked position 0 still attends to the
// sequence's real tokens in Hugging Face's model, but is no key). Padding is never computed: a
// padded batch costs what its real tokens cost.
struct token_rows {
  std::vector<std::int64_t> start;         // batch + 1 offsets
  std::vector<std::int64_t> ids, positions;  // per row
  std::vector<std::uint8_t> key_is_padding;  // per row; empty when every row is a key
  std::int64_t count() const { return start.back(); }
  std::int64_t sequences() const { return static_cast<std::int64_t>(start.size()) - 1; }
};

token_rows pack_token_rows(const at::Tensor& ids, const at::Tensor& mask) {
  const std::int64_t batch = ids.size(0), tokens = ids.size(1);
  const std::int64_t* id = ids.data_ptr<std::int64_t>();
  const std::int64_t* m = mask.data_ptr<std::int64_t>();
  token_rows rows;
  rows.start.reserve(static_cast<std::size_t>(batch + 1));
  rows.ids.reserve(static_cast<std::size_t>(batch * tokens));
  rows.positions.reserve(static_cast<std::size_t>(batch * tokens));
  bool masked_position0 = false;
  rows.start.push_back(0);
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t t = 0; t < tokens; ++t) {
      const std::int64_t i = b * tokens + t;
      if (m[i] == 0 && t != 0) continue;
      masked_position0 |= m[i] == 0;
      rows.ids.push_back(id[i]);
      rows.positions.push_back(t);
    }
    rows.start.push_back(static_cast<std::int64_t>(rows.ids.size()));
  }
  if (masked_position0) {
    rows.key_is_padding.assign(rows.ids.size(), 0);
    for (std::int64_t b = 0; b < batch; ++b)
      rows.key_is_padding[static_cast<std::size_t>(rows.start[b])] = m[b * tokens] == 0;
  }
  return rows;
}

// Multi-head attention over packed rows: sequence b's queries, keys and values are rows
// [rows.start[b], rows.start[b + 1]) of q, k and v ([rows, D] float32 contiguous). Returns the
// context, [rows, D].
at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const token_rows& rows, std::int64_t heads) {
  const std::int64_t dim = q.size(1), head_dim = dim / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  at::Tensor context = at::empty_like(q);
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* cp = context.data_ptr<float>();
  const std::uint8_t* pad = rows.key_is_padding.empty() ? nullptr : rows.key_is_padding.data();
  std::int64_t longest = 0;
  for (std::int64_t b = 0; b < rows.sequences(); ++b)
    longest = std::max(longest, rows.start[b + 1] - rows.start[b]);
  at::parallel_for(0, rows.sequences() * heads, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> scratch(attention_scratch_floats(longest, head_dim));
    for (std::int64_t bh = begin; bh < end; ++bh) {
      // Head-major order: parallel_for splits the range statically, and a thread that took the
      // batch's first sequences whole would wait for the one that took its longest.
      const std::int64_t b = bh % rows.sequences(), head = bh / rows.sequences();
      const std::int64_t tokens = rows.start[b + 1] - rows.start[b];
      const std::int64_t offset = rows.start[b] * dim + head * head_dim;
      attend_one_head(qp + offset, kp + offset, vp + offset, cp + offset, tokens, head_dim, dim,
                      pad ? pad + rows.start[b] : nullptr, scale, scratch.data());
    }
  });
  return context;
}

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
  const std::int64_t dim = config_.dim, heads = config_.n_heads;
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
  // Without an observer nobody else holds the Linear outputs, so they are updated in place.
  const bool in_place = !observer_;
  const token_rows rows = pack_token_rows(ids, attention_mask.to(at::kLong).contiguous());
  const auto as_tensor = [](const std::vector<std::int64_t>& v) {
    return at::from_blob(const_cast<std::int64_t*>(v.data()), {static_cast<std::int64_t>(v.size())},
                         at::kLong);
  };

  at::Tensor x = tables_[0]->lookup(as_tensor(rows.ids));  // [rows, D]
  x.add_(tables_[1]->lookup(as_tensor(rows.positions)));
  x = at::layer_norm(x, {dim}, embed_norm_weight_, embed_norm_bias_, layer_norm_eps);

  // The last block runs on every row too, although the classifier reads position 0 only: a
  // Linear with per-tensor dynamic activation ranges would give other numbers on fewer rows, and
  // the plugin ABI does not say which Linears treat rows independently.
  for (std::int64_t b = 0; b < config_.n_layers; ++b) {
    const std::size_t base = static_cast<std::size_t>(b) * linears_per_block;
    const block_norms& norms = blocks_[b];
    const at::Tensor q = apply_linear(base + q_lin, x).contiguous();
    const at::Tensor k = apply_linear(base + k_lin, x).contiguous();
    const at::Tensor v = apply_linear(base + v_lin, x).contiguous();
    const at::Tensor context = fused_attention(q, k, v, rows, heads);
    at::Tensor attended = apply_linear(base + out_lin, context);
    attended = in_place ? attended.add_(x) : attended.add(x);
    x = at::layer_norm(attended, {dim}, norms.sa_weight, norms.sa_bias, layer_norm_eps);

    at::Tensor hidden = apply_linear(base + lin1, x);
    if (config_.activation == "gelu")
      hidden = in_place ? at::gelu_(hidden) : at::gelu(hidden);  // exact erf GELU
    else
      hidden = in_place ? hidden.relu_() : hidden.relu();
    at::Tensor ffn_out = apply_linear(base + lin2, hidden);
    ffn_out = in_place ? ffn_out.add_(x) : ffn_out.add(x);
    x = at::layer_norm(ffn_out, {dim}, norms.out_weight, norms.out_bias, layer_norm_eps);
  }

  const std::size_t head = static_cast<std::size_t>(config_.n_layers) * linears_per_block;
  // The [CLS] rows, one per sequence.
  const std::vector<std::int64_t> first_rows(rows.start.begin(), rows.start.end() - 1);
  at::Tensor pooled = rows.count() == batch ? x : x.index_select(0, as_tensor(first_rows));
  at::Tensor pre = apply_linear(head, pooled);
  pre = in_place ? pre.relu_() : pre.relu();
  return apply_linear(head + 1, pre);
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

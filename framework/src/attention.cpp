// The attention kernel: scores and context on 4x16 register tiles, one ISA clone per target
// (see attention.h and docs/model.md).
#include "attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace qexp::detail {
namespace {

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

}  // namespace

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

}  // namespace qexp::detail

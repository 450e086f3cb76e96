// The attention kernel of distilbert_classifier::forward, internal to libqexp: packed token rows
// (padding never computed) and fused multi-head attention over them. See docs/model.md.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace qexp::detail {

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

// Packs the rows of a [batch, tokens] int64 `ids` and `mask` (both contiguous).
token_rows pack_token_rows(const at::Tensor& ids, const at::Tensor& mask);

// Multi-head attention over packed rows: sequence b's queries, keys and values are rows
// [rows.start[b], rows.start[b + 1]) of q, k and v ([rows, D] float32 contiguous). Returns the
// context, [rows, D].
at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const token_rows& rows, std::int64_t heads);

}  // namespace qexp::detail

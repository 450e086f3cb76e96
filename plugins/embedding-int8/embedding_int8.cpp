#include "embedding_int8.h"

#include <ATen/ATen.h>
#include <c10/util/Half.h>
#include <qexp/errors.h>
#include <qexp/plugin_helpers.h>
#include <qexp/text.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace qexp::embedding_int8 {

const option_spec options[3] = {
    {"bits", option_type::choice, "8",
     "8: one symmetric INT8 scale per row, codes in [-127, 127]; 4: one symmetric INT4 scale per "
     "group of group_size entries of a row, codes in [-7, 7], two codes per byte",
     "8|4"},
    {"group_size", option_type::integer, "32",
     "entries per scale at bits 4 (a divisor of the table's dim, 768 for DistilBERT, or the last "
     "group of each row is shorter); ignored at bits 8",
     nullptr, "8", "1024"},
    {"scale_type", option_type::choice, "float32",
     "how each scale is stored: float32, or float16 (half the scale bytes; a table whose scales "
     "exceed float16's range is refused at prepare)",
     "float32|float16"},
};

const char* const variants[] = {
    "bits=4,group_size=64",
    "bits=4,group_size=8",
    "bits=4,group_size=128,scale_type=float16",
    "bits=4,group_size=1024",  // one group longer than a row
    nullptr,
};

// The host has checked every value against `options` (bits' choices, group_size's range) before
// this runs; bits' choices are numbers, so its canonical text reads as one.
settings parse_settings(const option_values& values) {
  settings s;
  s.bits = static_cast<int>(values.get_int("bits"));
  s.group_size = values.get_int("group_size");
  s.scales = get_choice(values, options, "scale_type", {scale_kind::float32, scale_kind::float16});
  return s;
}

void fill_budget(const settings& s, conformance_budget* out) {
  // Table NMSE measured on Gaussian tables (docs/plugins.md): 8 bits 6.0e-5 whatever the scale
  // type; 4 bits 5.1e-3 at group 8, then about 2.2e-3 more per doubling of the group (the
  // expected squared maximum of a group grows with log(group_size)): 9.4e-3 at 32, 1.95e-2 at
  // 768. Budget: about 3x.
  if (s.bits == 8) {
    out->table_nmse = 2e-4;
    out->bytes_per_entry = 1.0;  // plus one scale per row
  } else {
    const double doublings = std::log2(static_cast<double>(s.group_size)) - 3;  // 0 at group 8
    out->table_nmse = 3 * (5.2e-3 + 2.2e-3 * doublings);
    out->bytes_per_entry = 0.5 + (s.scales == scale_kind::float16 ? 2.0 : 4.0) / static_cast<double>(s.group_size);
  }
}

namespace {

int qmax_of(int bits) { return bits == 8 ? 127 : 7; }

// A 4-bit code is a two's complement nibble: low nibble = even entry, high nibble = odd entry.
inline int decode_nibble(std::uint8_t byte, bool high) {
  const int v = high ? (byte >> 4) : (byte & 0x0F);
  return v >= 8 ? v - 16 : v;
}

class int_table final : public packed_table {
 public:
  // codes: int8 [rows, dim] (8 bits) or uint8 [rows, ceil(dim / 2)] (4 bits);
  // scales: float32 or float16 [rows, groups], groups = 1 at 8 bits, ceil(dim / group_size) at 4.
  int_table(std::string name, int bits, std::int64_t dim, std::int64_t group_size, at::Tensor codes,
            at::Tensor scales)
      : name_(std::move(name)), bits_(bits), dim_(dim), group_size_(group_size), codes_(std::move(codes)),
        scales_(std::move(scales)), rows_(codes_.size(0)) {
    // Scales as float32 once: converting a float16 scale is exact, so lookups read the same values
    // whatever the stored type.
    scales_f32_ = scales_.to(at::kFloat).contiguous();
  }

  at::Tensor lookup(const at::Tensor& ids) override {
    const at::Tensor flat = checked_ids(ids, rows_, "embedding-int8: table '" + name_ + "'");
    const std::int64_t n = flat.numel();
    const std::int64_t* id = flat.data_ptr<std::int64_t>();
    std::vector<std::int64_t> shape(ids.sizes().begin(), ids.sizes().end());
    shape.push_back(dim_);
    at::Tensor out = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
    dequantize_rows(id, n, out.data_ptr<float>());
    return out;
  }

  std::size_t packed_bytes() const override { return codes_.nbytes() + scales_.nbytes(); }

  at::Tensor dequantized_table() const override {
    at::Tensor out = at::empty({rows_, dim_}, at::TensorOptions().dtype(at::kFloat));
    std::vector<std::int64_t> all(static_cast<std::size_t>(rows_));
    for (std::int64_t r = 0; r < rows_; ++r) all[static_cast<std::size_t>(r)] = r;
    dequantize_rows(all.data(), rows_, out.data_ptr<float>());
    return out;
  }

  void save(tensor_writer& out, const std::string& prefix) const override {
    out.add_tensor(prefix + ".codes", codes_);
    out.add_tensor(prefix + ".scales", scales_);
    // [rows, dim]: at 4 bits an odd dim and the next even one pack into the same code bytes.
    out.add_tensor(prefix + ".shape", at::tensor(std::vector<std::int64_t>{rows_, dim_}, at::kLong));
  }

 private:
  // The one dequantization routine: lookup() and dequantized_table() both read through it, so
  // they agree bit for bit.
  void dequantize_rows(const std::int64_t* ids, std::int64_t n, float* out) const {
    const float* scales = scales_f32_.data_ptr<float>();
    const std::int64_t groups = scales_f32_.size(1);
    if (bits_ == 8) {
      const std::int8_t* codes = codes_.data_ptr<std::int8_t>();
      for (std::int64_t i = 0; i < n; ++i) {
        const std::int8_t* row = codes + ids[i] * dim_;
        const float s = scales[ids[i]];
        float* dst = out + i * dim_;
        for (std::int64_t j = 0; j < dim_; ++j) dst[j] = static_cast<float>(row[j]) * s;
      }
      return;
    }
    const std::uint8_t* codes = codes_.data_ptr<std::uint8_t>();
    const std::int64_t row_bytes = codes_.size(1);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint8_t* row = codes + ids[i] * row_bytes;
      const float* s = scales + ids[i] * groups;
      float* dst = out + i * dim_;
      for (std::int64_t g = 0; g < groups; ++g) {
        const float scale = s[g];
        const std::int64_t end = std::min(dim_, (g + 1) * group_size_);
        for (std::int64_t j = g * group_size_; j < end; ++j)
          dst[j] = static_cast<float>(decode_nibble(row[j >> 1], (j & 1) != 0)) * scale;
      }
    }
  }

  std::string name_;
  int bits_;
  std::int64_t dim_;
  std::int64_t group_size_;  // dim at 8 bits (one group per row)
  at::Tensor codes_;
  at::Tensor scales_;      // as stored and saved
  at::Tensor scales_f32_;  // the same values as float32
  std::int64_t rows_;
};

class int_table_quantizer final : public table_quantizer {
 public:
  explicit int_table_quantizer(const settings& s) : settings_(s) {}

  std::unique_ptr<packed_table> prepare(const table& t) override {
    const std::string who = "embedding-int8: table '" + t.name + "'";
    if (!t.weight.defined() || t.weight.dim() != 2)
      throw input_error(who + ": weight must be a 2-D [rows, dim] tensor");
    if (t.weight.scalar_type() != at::kFloat)
      throw input_error(who + ": weight must be float32, got " + std::string(c10::toString(t.weight.scalar_type())));
    const at::Tensor w = t.weight.contiguous();
    const std::int64_t rows = w.size(0), dim = w.size(1);
    const bool four = settings_.bits == 4;
    // At 4 bits a row is cut into groups of group_size entries; when group_size does not divide
    // dim the last group of each row is shorter (the conformance suite's tables are 13 or 100 wide).
    const std::int64_t group = four ? settings_.group_size : std::max<std::int64_t>(dim, 1);
    const std::int64_t groups = four ? (dim + group - 1) / group : 1;
    const float* src = w.data_ptr<float>();
    for (std::int64_t i = 0; i < rows * dim; ++i)
      if (!std::isfinite(src[i]))
        throw input_error(who + ": entry [" + std::to_string(i / dim) + ", " + std::to_string(i % dim) +
                          "] is " + std::to_string(src[i]) + "; a table holding NaN or Inf cannot be quantized");

    const bool half = settings_.scales == scale_kind::float16;
    const float qmax = static_cast<float>(qmax_of(settings_.bits));
    at::Tensor scales = at::empty({rows, groups}, at::TensorOptions().dtype(half ? at::kHalf : at::kFloat));
    const std::int64_t row_bytes = four ? (dim + 1) / 2 : dim;
    at::Tensor codes = at::zeros({rows, row_bytes}, at::TensorOptions().dtype(four ? at::kByte : at::kChar));
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t g = 0; g < groups; ++g) {
        const float* x = src + r * dim + g * group;
        const std::int64_t len = four ? std::min(group, dim - g * group) : dim;
        float m = 0.f;
        for (std::int64_t j = 0; j < len; ++j) m = std::max(m, std::fabs(x[j]));
        // A zero group keeps scale 1: it dequantizes to exact zeros, and nothing divides by 0.
        float s = m > 0.f ? m / qmax : 1.f;
        if (s == 0.f) s = std::numeric_limits<float>::denorm_min();  // subnormal rows: m / qmax underflowed
        if (half) {
          const c10::Half h(s);
          if (std::isinf(static_cast<float>(h)))
            throw input_error(who + ": row " + std::to_string(r) + " holds " + std::to_string(m) +
                              ", beyond what a float16 scale can represent; use scale_type: float32");
          // Quantize with the scale as stored, so that codes * stored scale is what lookups return.
          s = static_cast<float>(h) > 0.f ? static_cast<float>(h) : static_cast<float>(c10::Half(5.9604645e-8f));
          scales.data_ptr<at::Half>()[r * groups + g] = c10::Half(s);
        } else {
          scales.data_ptr<float>()[r * groups + g] = s;
        }
        for (std::int64_t j = 0; j < len; ++j) {
          const float q = std::min(qmax, std::max(-qmax, std::nearbyint(x[j] / s)));
          const int code = static_cast<int>(q);
          if (!four) {
            codes.data_ptr<std::int8_t>()[r * dim + j] = static_cast<std::int8_t>(code);
          } else {
            const std::int64_t col = g * group + j;
            std::uint8_t& byte = codes.data_ptr<std::uint8_t>()[r * row_bytes + (col >> 1)];
            const std::uint8_t nibble = static_cast<std::uint8_t>(code & 0x0F);
            byte = static_cast<std::uint8_t>(byte | ((col & 1) ? (nibble << 4) : nibble));
          }
        }
      }
    }
    return std::make_unique<int_table>(t.name, settings_.bits, dim, four ? group : dim, codes, scales);
  }

  std::unique_ptr<packed_table> load(const tensor_reader& in, const std::string& prefix) const override {
    const std::string who = "embedding-int8: checkpoint table '" + prefix + "'";
    const at::Tensor codes = in.tensor(prefix + ".codes").contiguous();
    const at::Tensor scales = in.tensor(prefix + ".scales").contiguous();
    const at::Tensor shape = in.tensor(prefix + ".shape").contiguous();
    if (shape.scalar_type() != at::kLong || shape.numel() != 2)
      throw checkpoint_error(who + ": '" + prefix + ".shape' must hold two int64 values [rows, dim], got " +
                             c10::toString(shape.scalar_type()) + " " + shape_text(shape.sizes()));
    const std::int64_t rows = shape[0].item<std::int64_t>(), dim = shape[1].item<std::int64_t>();
    const bool four = settings_.bits == 4;
    const std::int64_t group = four ? settings_.group_size : std::max<std::int64_t>(dim, 1);
    const std::int64_t groups = four ? (dim + group - 1) / group : 1;
    const std::int64_t row_bytes = four ? (dim + 1) / 2 : dim;
    const auto want_codes = four ? at::kByte : at::kChar;
    const auto want_scales = settings_.scales == scale_kind::float16 ? at::kHalf : at::kFloat;
    // The options say what the tensors must be; a checkpoint written with other options is refused.
    const std::string options = " for bits " + std::to_string(settings_.bits) +
                                (four ? ", group_size " + std::to_string(group) : std::string()) +
                                " on a table of shape [" + std::to_string(rows) + ", " + std::to_string(dim) +
                                "] (written with other options?)";
    if (rows < 0 || dim < 0 || codes.scalar_type() != want_codes || codes.dim() != 2 || codes.size(0) != rows ||
        codes.size(1) != row_bytes)
      throw checkpoint_error(who + ": '" + prefix + ".codes' is " + c10::toString(codes.scalar_type()) + " " +
                             shape_text(codes.sizes()) + ", expected " + c10::toString(want_codes) + " [" +
                             std::to_string(rows) + ", " + std::to_string(row_bytes) + "]" + options);
    if (scales.scalar_type() != want_scales || scales.dim() != 2 || scales.size(0) != rows ||
        scales.size(1) != groups)
      throw checkpoint_error(who + ": '" + prefix + ".scales' is " + c10::toString(scales.scalar_type()) + " " +
                             shape_text(scales.sizes()) + ", expected " + c10::toString(want_scales) + " [" +
                             std::to_string(rows) + ", " + std::to_string(groups) + "]" + options);
    return std::make_unique<int_table>(prefix, settings_.bits, dim, four ? group : dim, codes, scales);
  }

 private:
  settings settings_;
};

}  // namespace

std::unique_ptr<table_quantizer> make_quantizer(const settings& s) {
  return std::make_unique<int_table_quantizer>(s);
}

}  // namespace qexp::embedding_int8

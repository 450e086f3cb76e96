// qexp's W4A8 matmul for group-wise INT4 Linears: y[m, n] = sum_k a[m, k] * w[n, k], with u8
// activation codes per row (int8_gemm's format: a scale and zero point per row or per tensor, rows
// padded to a multiple of 4) and 4-bit weight codes in groups of `group_size` consecutive input
// channels, each group of each output channel with its own float scale (and zero point):
//   w[n, k] = scale[n, g] * (code[n, k] - zero_point[n, g]),  g = k / group_size.
// Nibbles are unpacked to bytes in registers and multiplied by `vpdpbusd`; each group's s32 sum
// becomes float as the group ends, so the scales are applied once per group, not per weight.
//
// Why a kernel of its own: int8_gemm's one scale per output channel is applied once, after the
// whole K; here the scale changes every group, so the integer sums must be cut at each group's end.
//
// Per output element, with A[m, g] the sum of the group's activation codes (padding codes are 0):
//   t_g = float(sum_{k in g} a[m, k] * code[n, k]) - zero_point[n, g] * A[m, g]    (exact)
//   acc = fma(scale[n, g], t_g, acc)                                   (groups in order)
//   y   = fma(acc - a_zero_point(m) * col_term[n], a_scale(m), bias[n])
// where col_term[n] = sum_g scale[n, g] * sum_{k in g} (code[n, k] - zero_point[n, g]) is fixed
// at pack time. The group sums are integers below 2^24, so t_g is exact; both builds then do the
// same float operations in the same order and agree bit for bit.
//
// Layout (docs/plugins.md, "int4"): panels of 64 output channels; per panel and group of 4 input
// channels, 128 bytes: two 64-byte chunks, chunk c's low nibbles holding channels 32c..32c+15 and
// its high nibbles channels 32c+16..32c+31, each channel's 4 k's adjacent (vpdpbusd's operand
// once masked or shifted). Per panel and group, 64 float scales (and 64 byte zero points when
// asymmetric). K padded to a multiple of 4, N to 64, with code 0.
#pragma once

#include <qexp/int8_gemm.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace qexp::int4_gemm {

using int8_gemm::padded_k;
using int8_gemm::vnni_available;

// The zero point of every group of symmetric weights: codes are the signed value + 8.
constexpr std::uint8_t symmetric_zero_point = 8;

// Group sizes the kernel takes: multiples of 4 (a group ends on a vpdpbusd quad) up to 2048 (a
// group's integer sum, at most 2048 * 255 * 15, must stay exact in float).
bool valid_group_size(std::int64_t group_size);
// ceil(k / group_size): the last group of a row is shorter when group_size does not divide k.
std::int64_t group_count(std::int64_t k, std::int64_t group_size);

// Group-wise INT4 weights as a quantization method produces them (RTN, GPTQ, AWQ) and as a
// checkpoint holds them, row-major:
//   w[n, k] = scales[n, g] * (codes[n, k] - zero_point[n, g])
// codes in [0, 15]; zero_points in [0, 15] per (n, g), or empty for symmetric weights (zero point
// 8 everywhere: codes 1..15 are the values -7..7, code 0 is -8).
struct quantized_weights {
  std::int64_t n = 0, k = 0, group_size = 0;
  std::vector<std::uint8_t> codes;        // [n, k]
  std::vector<float> scales;              // [n, group_count(k, group_size)]
  std::vector<std::uint8_t> zero_points;  // [n, group_count(k, group_size)], or empty

  bool symmetric() const { return zero_points.empty(); }
  std::int64_t groups() const { return group_count(k, group_size); }
  std::int32_t zero_point(std::int64_t row, std::int64_t group) const {
    return symmetric() ? symmetric_zero_point : zero_points[static_cast<std::size_t>(row * groups() + group)];
  }
  // Throws std::invalid_argument when sizes, codes, zero points or scales (finite) are off.
  void check() const;
  // The float weight these codes stand for, [n, k] row-major: what a weight-only Linear multiplies by.
  void dequantize(float* w) const;
};

class packed_weights {
 public:
  packed_weights() = default;
  explicit packed_weights(const quantized_weights& q);  // calls q.check()

  std::int64_t n() const { return n_; }
  std::int64_t k() const { return k_; }
  std::int64_t group_size() const { return group_size_; }
  std::int64_t groups() const { return group_count(k_, group_size_); }
  bool symmetric() const { return !zero_points_; }
  // Bytes of the packed codes, scales, zero points and column terms: half a byte per weight, 4
  // (symmetric) or 5 bytes per channel and group, 4 per channel; n padded to 64, k to 4.
  std::size_t bytes() const;
  // Back to what was packed, bit for bit.
  quantized_weights unpack() const;

  const std::uint8_t* codes() const { return codes_.get(); }         // [panels][k / 4][128]
  const float* scales() const { return scales_.get(); }              // [panels][groups][64]
  const std::uint8_t* zero_points() const { return zero_points_.get(); }  // [panels][groups][64] or null
  const float* column_terms() const { return column_terms_.get(); }  // [panels * 64]

 private:
  std::int64_t n_ = 0, k_ = 0, group_size_ = 0;
  std::shared_ptr<std::uint8_t> codes_, zero_points_;  // 64-byte aligned
  std::shared_ptr<float> scales_, column_terms_;
};

// How sums become outputs (int8_gemm::dequantize_args without the weight scale, which is per group
// here and lives in packed_weights).
struct dequantize_args {
  const float* a_scale = nullptr;              // [1] or [m]
  const std::int32_t* a_zero_point = nullptr;  // [1] or [m]
  bool per_row = false;
  const float* bias = nullptr;  // [n] or null
};

// a: [m, padded_k(k)] u8 codes, zero past k; y: [m, n] float32. The VNNI kernel when `fast` and
// vnni_available(), else the portable one (bit-identical); parallel over panels (ATen's pool).
void multiply(const std::uint8_t* a, std::int64_t m, const packed_weights& w, const dequantize_args& d, float* y,
              bool fast = true);

// Per-token activation codes for multiply(): each row of x [m, k] gets its own u8 scale and zero
// point covering [min(x, 0), max(x, 0)] over its finite values (scale 1, zero point 0 for a row
// of zeros), codes = clamp(round(x / scale) + zero_point, 0, 255), rows of padded_k(k) codes zero
// past k. row_ok[r] = 0 when row r holds a NaN or an Inf (its codes are then meaningless). The
// AVX-512 pass when `fast` and vnni_available(), else portable C++: the same codes.
void quantize_rows(const float* x, std::int64_t m, std::int64_t k, std::uint8_t* codes, float* scales,
                   std::int32_t* zero_points, char* row_ok, bool fast = true);

namespace detail {
// Rows [0, m) of a (row stride lda) times panels [p0, p1), into y (row stride ldy); a_sums[r, g]
// (row stride `groups`) is the sum of row r's codes over group g, as a float. Exposed for the tests.
void multiply_panels_avx512(const std::uint8_t* a, std::int64_t lda, std::int64_t m, const float* a_sums,
                            const packed_weights& w, std::int64_t p0, std::int64_t p1, const dequantize_args& d,
                            std::int64_t row0, float* y, std::int64_t ldy);
void multiply_panels_portable(const std::uint8_t* a, std::int64_t lda, std::int64_t m, const float* a_sums,
                              const packed_weights& w, std::int64_t p0, std::int64_t p1, const dequantize_args& d,
                              std::int64_t row0, float* y, std::int64_t ldy);
// sums[g] = the sum of one row's codes a[0, lda) over group g, as a float.
void group_sums_avx512(const std::uint8_t* a, std::int64_t lda, std::int64_t group_size, float* sums);
// q[j] = clamp(round(x[j] * inv_scale), -zero_point, 255 - zero_point) + zero_point (NaN: 0).
void quantize_row_avx512(const float* x, std::int64_t k, float inv_scale, std::int32_t zero_point, std::uint8_t* q);
}  // namespace detail

}  // namespace qexp::int4_gemm

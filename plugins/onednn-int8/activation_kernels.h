// The per-call passes around the int8 matmul, written with AVX-512 intrinsics: quantizing
// activations and turning the s32 accumulators into float outputs (the range pass before them is
// qexp::int8_gemm::row_range, shared with int4). Only called after cpu_supported() said yes.
#pragma once

#include <cstdint>

namespace qexp::onednn_int8 {

// The activation range of a row or a call, widened by int8_gemm::row_range over finite values.
struct range {
  float min = 0.f;  // both start at 0: the quantized range must hold 0 exactly
  float max = 0.f;
  bool all_finite = true;
};

// q = clamp(round(x * inv_scale) + zero_point, lo, hi); NaN and Inf land on `lo` (their rows are
// replaced by NaN afterwards).
void quantize_u8(const float* x, int64_t n, float inv_scale, int32_t zero_point, int32_t hi, uint8_t* q);
void quantize_s8(const float* x, int64_t n, float inv_scale, int8_t* q);

// In place over one row of n outputs: y = float(acc - zero_point * w_sum) * (x_scale * w_scale) + b.
// `acc` and `y` share memory (s32 in, f32 out). w_scale has n entries; bias may be null.
void dequantize_row(int32_t* acc_in_y_out, int64_t n, int32_t zero_point, const int32_t* w_sum,
                    float x_scale, const float* w_scale, const float* bias);

}  // namespace qexp::onednn_int8

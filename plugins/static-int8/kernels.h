// The per-call passes of the static-int8 plugin, each in two builds with the same arithmetic:
// AVX-512 (called only when the CPU has AVX-512 F/BW/DQ/VL, see fast_kernels_available()) and
// portable C++. The quantize pass gives bit-identical codes in both (one float multiply, round half
// to even, clamp). The matmul itself is qexp's int8_gemm (or oneDNN's, with `kernel: onednn`).
#pragma once

#include <cstdint>

namespace qexp::static_int8 {

// AVX-512 F/BW/DQ/VL present (the quantize and dequantize kernels need no more than that).
bool fast_kernels_available();

// One row of k activations to codes: q[j] = clamp(round(x[j] * factor[j]), lo - zp, hi - zp) + zp,
// with factor[j] = `factor` per channel when non-null (SmoothQuant's 1/s folded into the
// reciprocal of the activation scale), else `scalar`. The clamp happens in float before
// rounding, so large finite values saturate to the right end. Codes are stored as bytes (u8, or
// s8 two's complement). Returns false when the row holds a NaN or an Inf (its codes are then
// meaningless: the caller writes a NaN output row).
struct quantize_args {
  const float* factor;  // [k] or null
  float scalar;
  std::int32_t zero_point, lo, hi;  // u8: zp, 0, 255; s8: 0, -127, 127
};
bool quantize_row(bool fast, const float* x, std::int64_t k, const quantize_args& a, std::uint8_t* q);

// Range of the finite values of x[j] * inv_s[j] (x[j] when inv_s is null) over one row, widening
// [mn, mx] (callers start them at 0). Returns false when the row holds a NaN or an Inf.
bool range_row(bool fast, const float* x, std::int64_t k, const float* inv_s, float& mn, float& mx);

// In place over one row of n s32 accumulators:
// y = float(acc - zero_point * w_sum[n]) * (x_scale * w_scale[n]) + bias[n] (bias may be null).
void dequantize_row(bool fast, std::int32_t* acc_in_y_out, std::int64_t n, std::int32_t zero_point,
                    const std::int32_t* w_sum, float x_scale, const float* w_scale, const float* bias);

}  // namespace qexp::static_int8

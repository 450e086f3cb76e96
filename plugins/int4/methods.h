// How the int4 plugin turns a float weight into group-wise INT4 codes: a `weight_method` per
// `method:` option (rtn, gptq: gptq.cpp, awq: awq.cpp), everything after it
// (packing, the W4A8 or weight-only forward, checkpoints) shared in int4.cpp.
//
// A method gets the calibration hooks the host calls on the quantizer (begin, observe,
// finish_calibration) and, per Linear, returns int4_gemm::quantized_weights: codes in [0, 15],
// a scale (and a zero point unless symmetric) per output channel and group of `group_size`
// input channels, w ~ scale * (code - zero_point). A method that rescales input channels (AWQ:
// W diag(s) quantized, x / s at run time) also returns the factors s; the Linear divides its input
// by them, and its dequantized weight is dequant(W diag(s)) diag(1/s).
#pragma once

#include <qexp/int4_gemm.h>
#include <qexp/plugin_api.h>

#include <memory>
#include <string>
#include <vector>

namespace qexp::int4 {

struct weight_format {
  std::int64_t group_size = 128;
  bool symmetric = false;
};

struct method_result {
  int4_gemm::quantized_weights weights;
  at::Tensor input_scale;  // [in] float32 s (the Linear computes x / s first), or undefined
};

class weight_method {
 public:
  virtual ~weight_method() = default;
  virtual bool wants_calibration() const { return false; }
  virtual void begin(const quantizer_context& /*context*/) {}
  virtual void observe(const std::string& /*site*/, const at::Tensor& /*rows*/) {}
  virtual void finish_calibration(const std::vector<std::string>& /*sites*/) {}
  // l.weight: [out, in] float32 contiguous and finite (checked by the caller).
  virtual method_result quantize(const layer& l, const weight_format& f) = 0;
};

// The options only some methods read.
struct method_options {
  double damp = 0.01;      // gptq: added to diag(H), as a fraction of its mean
  bool act_order = false;  // gptq: columns in descending diag(H)
};

// `name`: the `method` option's value. Throws config_error for a name it does not know.
std::unique_ptr<weight_method> make_method(const std::string& name, const method_options& o = {});
std::unique_ptr<weight_method> make_gptq_method(const method_options& o);
std::unique_ptr<weight_method> make_awq_method();

// GPTQ of w ([n, k] float32 contiguous) against h ([k, k], any float type: X^T X of the inputs, up
// to a factor). Exposed for the tests' reference comparison.
int4_gemm::quantized_weights quantize_gptq(const at::Tensor& w, const at::Tensor& h, const weight_format& f,
                                           const method_options& o);

// The round-to-nearest grid of one group, shared by the methods (GPTQ fits it per group from the
// weights as they stand when it reaches the group; AWQ from the rescaled weights):
// - symmetric: scale = max|w| / 7, codes 1..15 for -7..7 around the zero point 8 (code 0, -8, is
//   never produced: the grid is symmetric, as int8's [-127, 127], and max|w| is exactly on it);
// - asymmetric: [lo, hi] = [min(w, 0), max(w, 0)], scale = (hi - lo) / 15, zero point
//   round(-lo / scale) in [0, 15] (0 is always on the grid).
// An all-zero group (or one whose scale would underflow) gets scale 1 and codes equal to the
// zero point: it dequantizes to exact zeros.
struct group_grid {
  float scale = 1.f;
  std::int32_t zero_point = 0;
};
group_grid fit_grid(const float* w, std::int64_t count, bool symmetric);
// clamp(round(w / scale) + zero_point, 0, 15), round half to even.
std::uint8_t quantize_code(float w, const group_grid& g);
inline float dequantize_code(std::uint8_t code, const group_grid& g) {
  return g.scale * static_cast<float>(code - g.zero_point);
}

// Every group of w ([n, k] float32 contiguous) on its own grid, rounded to nearest: `method: rtn`.
int4_gemm::quantized_weights quantize_rtn(const at::Tensor& w, const weight_format& f);

}  // namespace qexp::int4

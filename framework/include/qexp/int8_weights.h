// The checkpoint layout of symmetric INT8 Linear weights, shared by the INT8 plugins so their
// quantized checkpoints read alike and are validated in one place:
//   <prefix>.weight_int8   int8 [out, in]
//   <prefix>.weight_scale  float32 [1] (per tensor) or [out] (per channel)
//   <prefix>.bias          float32 [out], optional
#pragma once

#include <string>

#include "qexp/plugin_api.h"

namespace qexp {

struct int8_weights {
  at::Tensor weight_int8;  // int8 [out, in], contiguous
  at::Tensor scales;       // float32 [1] or [out], contiguous
  at::Tensor bias;         // float32 [out], contiguous, or undefined
};

// Symmetric s8 in [-127, 127] (never -128, so that negating a weight cannot saturate), one scale
// per output row or one for the whole [out, in] float32 weight; an all-zero row or tensor gets
// scale 1 and stays exactly zero. Returns the codes and scales (no bias); throws
// input_error(non_finite_message) when a largest magnitude is not finite.
int8_weights quantize_symmetric_int8(const at::Tensor& w, bool per_tensor, const std::string& non_finite_message);

void save_int8_weights(tensor_writer& out, const std::string& prefix, const int8_weights& w);

// Reads and checks dtypes and shapes; checkpoint_error names `plugin_id`, the tensor, expected and
// found. `per_tensor` says how many scales to expect.
int8_weights load_int8_weights(const tensor_reader& in, const std::string& prefix, const std::string& plugin_id,
                               bool per_tensor);

// "Int8 [3, 4]": a tensor's dtype and shape for error messages.
std::string describe_tensor(const at::Tensor& t);

}  // namespace qexp

// The float reference Linear: what every experiment's fp32 baseline runs, and the Linear a model
// holds before any quantizer replaces it; and the float embedding table.
#pragma once

#include <memory>
#include <string>

#include "qexp/plugin_api.h"

namespace qexp {

enum class float_backend {
  blas,    // at::addmm, i.e. the BLAS libtorch links (OpenBLAS once installed)
  onednn,  // a oneDNN f32 matmul primitive, weights reordered once into its preferred layout
  qexp,    // qexp's float_gemm (float_gemm.h): AVX-512 where the CPU has it, portable C++ elsewhere
};

const char* to_string(float_backend backend);
// The backend measured fastest on this CPU's kind (see docs/benchmarks.md): qexp where the CPU
// has AVX-512, onednn elsewhere.
float_backend default_float_backend();

std::unique_ptr<packed_linear> make_float_linear(const layer& l,
                                                 float_backend backend = default_float_backend());
// Rebuilds a float Linear saved by the one above ("<prefix>.weight", optional "<prefix>.bias").
std::unique_ptr<packed_linear> load_float_linear(const tensor_reader& in, const std::string& prefix,
                                                 float_backend backend = default_float_backend());

// The float embedding table a model holds before any quantizer replaces it; saves
// "<prefix>.weight", the Hugging Face name of the table.
std::unique_ptr<packed_table> make_float_table(const table& t);

}  // namespace qexp

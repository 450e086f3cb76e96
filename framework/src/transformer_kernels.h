// The elementwise steps of a transformer block between its Linears, written for the rows the
// forward packs (a few dozen rows of 768 at batch 1): libtorch's general ops spend more on
// dispatch, allocation and extra passes than on arithmetic there (12 residual + LayerNorm steps
// took 0.34 ms and 6 GELUs 0.32 ms of a 5 ms INT8 sentence, e2e_bench --profile).
// AVX-512 where the CPU has F/DQ (chosen at run time), libtorch's own ops elsewhere; contiguous
// float32 only (anything else goes to libtorch too).
#pragma once

#include <ATen/core/Tensor.h>

namespace qexp::detail {

// x = LayerNorm(x + residual) over the last dimension, with gamma and beta, in place; residual
// may be undefined (no add). The mean, then the variance around it, then a pass that normalises
// (the row sits in L1); biased variance, eps inside the square root, as libtorch's.
void add_layer_norm_(at::Tensor& x, const at::Tensor& residual, const at::Tensor& gamma, const at::Tensor& beta,
                     double eps);

// x = x * 0.5 * (1 + erf(x / sqrt(2))) in place (the exact-erf GELU of BERT). The AVX-512 build
// evaluates erf as oneDNN's gelu_erf does (Abramowitz & Stegun 7.1.26: absolute error below
// 1.5e-7) with exp from a degree-6 polynomial and scalef.
void gelu_(at::Tensor& x);

}  // namespace qexp::detail

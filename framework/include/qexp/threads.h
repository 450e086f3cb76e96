// One knob for every thread pool a forward pass touches. at::set_num_threads sets libtorch's
// OpenMP pool (which oneDNN shares), but not Debian's pthread OpenBLAS, which otherwise uses every
// core inside a "1 thread" measurement.
#pragma once

namespace qexp {

// The most intra-op threads a config may ask for: far more than any machine qexp runs on has
// cores, far fewer than would bring one to a halt.
constexpr int max_compute_threads = 256;

void set_compute_threads(int threads);
int compute_threads();

}  // namespace qexp

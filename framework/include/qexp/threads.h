// One knob for every thread pool a forward pass touches. at::set_num_threads sets libtorch's
// OpenMP pool (which oneDNN shares), but not Debian's pthread OpenBLAS, which otherwise uses every
// core inside a "1 thread" measurement.
#pragma once

namespace qexp {

void set_compute_threads(int threads);
int compute_threads();

}  // namespace qexp

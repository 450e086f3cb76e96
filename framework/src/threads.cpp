#include "qexp/threads.h"

#include <dlfcn.h>

#include <ATen/Parallel.h>

namespace qexp {

void set_compute_threads(int threads) {
  at::set_num_threads(threads);
  // Looked up at run time: the BLAS behind libtorch is chosen by Debian's alternatives, and the
  // reference BLAS has no such function.
  using set_fn = void (*)(int);
  if (auto openblas_set = reinterpret_cast<set_fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    openblas_set(threads);
}

int compute_threads() { return at::get_num_threads(); }

}  // namespace qexp

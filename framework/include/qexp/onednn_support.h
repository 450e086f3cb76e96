// What the oneDNN-backed INT8 plugins share: one CPU engine per process, and whether oneDNN 2.6's
// fast INT8 matmul (brg:avx512_core_vnni) can run here. Plugins that include this header link
// DNNL::dnnl themselves.
#pragma once

#include <dnnl.hpp>

namespace qexp {

dnnl::engine& onednn_cpu_engine();

// True when the CPU has AVX-512 (F, BW, DQ, VL) and VNNI and oneDNN is not limited below
// avx512_core_vnni (ONEDNN_MAX_CPU_ISA); otherwise false with *reason set to a static string.
bool onednn_int8_vnni_available(const char** reason);

}  // namespace qexp

#include "qexp/onednn_support.h"

namespace qexp {

dnnl::engine& onednn_cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

bool onednn_int8_vnni_available(const char** reason) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl")) {
    if (reason) *reason = "this CPU lacks AVX-512 (F, BW, DQ, VL)";
    return false;
  }
  if (!__builtin_cpu_supports("avx512vnni")) {
    if (reason) *reason = "this CPU lacks AVX-512 VNNI, which the int8 brgemm kernel needs";
    return false;
  }
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto vnni = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_vnni);
  if ((isa & vnni) != vnni) {
    if (reason) *reason = "oneDNN is limited below avx512_core_vnni (ONEDNN_MAX_CPU_ISA?)";
    return false;
  }
  return true;
}

}  // namespace qexp

// What the oneDNN-backed INT8 plugins share: one CPU engine per process, whether oneDNN 2.6's
// fast INT8 matmul (brg:avx512_core_vnni) can run here, and that matmul over a packed s8 weight.
// Plugins that include this header link DNNL::dnnl themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <dnnl.hpp>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace qexp {

dnnl::engine& onednn_cpu_engine();

// True when the CPU has AVX-512 (F, BW, DQ, VL) and VNNI and oneDNN is not limited below
// avx512_core_vnni (ONEDNN_MAX_CPU_ISA); otherwise false with *reason set to a static string.
bool onednn_int8_vnni_available(const char** reason);

// acc[m, n] = sum_k codes[m, k] * w[n, k] (codes u8 or s8, weights s8, s32 out) on oneDNN's brgemm.
// The weight is reordered once into the blocked layout brgemm asks for. No attributes: runtime
// output scales or zero points send oneDNN 2.6 to gemm:jit, and constant ones make every layer's
// primitive (and JIT kernel) its own, where attribute-free primitives of one shape are shared by
// every layer through oneDNN's primitive cache; callers dequantize the s32 themselves. M is a
// constant of a primitive (a runtime M also means gemm:jit): one per row count, the
// `capacity` most recently used kept (shared pointers, so a call still running keeps its own).
class onednn_s8_matmul {
 public:
  // w: [n, k] row-major s8 in [-127, 127].
  onednn_s8_matmul(const std::int8_t* w, std::int64_t n, std::int64_t k, bool u8_codes, std::size_t capacity = 64);

  // codes: [m, k] row-major; acc: [m, n] row-major. Throws plugin_error when oneDNN has no kernel.
  void multiply(const std::uint8_t* codes, std::int64_t m, std::int32_t* acc);
  // The [n, k] weight, read back from the packed layout.
  void unpack(std::int8_t* w) const;
  std::size_t packed_bytes() const { return weights_md_.get_size(); }

 private:
  struct primitive {
    dnnl::memory::desc src_md, dst_md;
    dnnl::matmul matmul;
  };
  dnnl::matmul::primitive_desc describe(std::int64_t m, const dnnl::memory::desc& weights_md) const;
  std::shared_ptr<const primitive> primitive_for(std::int64_t m);

  std::int64_t n_, k_;
  bool u8_codes_;
  std::size_t capacity_;
  dnnl::memory::desc weights_md_;
  dnnl::memory weights_;
  std::mutex mutex_;
  std::list<std::int64_t> lru_;  // row counts, most recently used first
  std::unordered_map<std::int64_t, std::pair<std::shared_ptr<const primitive>, std::list<std::int64_t>::iterator>>
      by_rows_;
};

}  // namespace qexp

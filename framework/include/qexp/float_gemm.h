// qexp's own float32 matmul for the float Linear: y[m, n] = bias[n] + sum_k a[m, k] * w[n, k].
//
// Why not oneDNN's f32 matmul: at a sentence's few dozen rows a Linear is one pass over its weights
// (a full-size DistilBERT streams 170 MB of fp32 weights per sentence), and oneDNN reads each
// layer's blocked weights as they come, so the memory stalls add to the FMA time instead of hiding
// under it. This kernel reads the weights in the order they are stored and asks the next stretch
// into the cache while it multiplies the current one, as int8_gemm does for INT8.
//
// Layout (docs/plugins.md, "float_gemm"): the weights are cut into panels of 64 output channels;
// a panel stores, for each input channel in turn, its 64 weights (one per output channel): 4
// registers of 16 lanes, multiplied against one activation broadcast to every lane. N is padded to
// a multiple of 64 with zero weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace qexp::float_gemm {

// AVX-512 F and FMA in the CPU and enabled by the OS: the fast kernel can run. Elsewhere the
// portable C++ kernel is used: the same fused multiply-adds in the same order, so the same
// results bit for bit.
bool avx512_available();

class packed_weights {
 public:
  packed_weights() = default;
  // w: [n, k] row-major float32.
  packed_weights(const float* w, std::int64_t n, std::int64_t k);

  std::int64_t n() const { return n_; }
  std::int64_t k() const { return k_; }
  // Bytes the packed panels take (the zero padding included).
  std::size_t bytes() const;
  // Back to [n, k] row-major.
  void unpack(float* w) const;

  const float* panels() const { return panels_.get(); }

 private:
  std::int64_t n_ = 0, k_ = 0;
  std::shared_ptr<float> panels_;  // 64-byte aligned
};

// a: [m, k] float32 with row stride lda; bias: [n] or null; y: [m, n] with row stride ldy. Uses
// the fast kernel when `fast` and avx512_available(), else the portable one; parallel over output
// panels with ATen's thread pool.
void multiply(const float* a, std::int64_t lda, std::int64_t m, const packed_weights& w, const float* bias, float* y,
              std::int64_t ldy, bool fast = true);

namespace detail {
// One kernel call: rows [0, m) of a times panels [p0, p1) of w into y. Exposed for the tests,
// which pit the two against each other.
void multiply_panels_avx512(const float* a, std::int64_t lda, std::int64_t m, const packed_weights& w,
                            std::int64_t p0, std::int64_t p1, const float* bias, float* y, std::int64_t ldy);
void multiply_panels_portable(const float* a, std::int64_t lda, std::int64_t m, const packed_weights& w,
                              std::int64_t p0, std::int64_t p1, const float* bias, float* y, std::int64_t ldy);
}  // namespace detail

}  // namespace qexp::float_gemm

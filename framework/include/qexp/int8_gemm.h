// qexp's own INT8 matmul for quantized Linears: y[m, n] = dequantize(sum_k a[m, k] * w[n, k]), with
// u8 activation codes, s8 weights packed once for the kernel, and the dequantization (zero point,
// activation and weight scales, bias) applied as each output tile leaves the registers, so the
// s32 accumulators are never written to memory.
//
// Why not oneDNN's brgemm: its kernels are JIT-compiled per primitive, i.e. per layer and per
// sequence length once the scales are attributes, and a fused dequantization needs those
// attributes; with them the full model runs 38 distinct kernels per sentence (slower than the
// separate pass they save). This kernel is one piece of code for every shape.
//
// Layout (docs/plugins.md, "int8_gemm"): the weights are cut into panels of 64 output channels;
// a panel stores, for each group of 4 consecutive input channels, 64 x 4 bytes (channel-major,
// the 4 k's of one output channel adjacent), which is the operand `vpdpbusd` multiplies against
// 4 activation bytes broadcast to every lane. K is padded to a multiple of 4 and N to a multiple
// of 64 with zero weights.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace qexp::int8_gemm {

namespace detail {
// Which weights were multiplied right after these last time (a forward multiplies its Linears in
// the same order every time): while a call multiplies its last panels, the first panels of those
// are asked into the cache, so the next Linear does not start on a cold panel. Only ever a hint:
// if those weights are gone, prefetching their old address cannot fault.
struct next_weights {
  std::atomic<const std::int8_t*> panels{nullptr};
  std::atomic<std::int64_t> panel_count{0};
  std::atomic<std::int64_t> panel_bytes{0};
};
// What the kernel prefetches during a thread's last panel: `lines` cache lines from `start`.
struct prefetch_after {
  const char* start = nullptr;
  std::int64_t lines = 0;
};
}  // namespace detail

// AVX-512 F/BW/VL + VNNI in the CPU and enabled by the OS: the fast kernel can run. Elsewhere the
// portable C++ kernel (same results, bit for bit) is used.
bool vnni_available();

// Codes per activation row: `k` rounded up to a multiple of 4. Rows passed to multiply() are this
// long, the bytes past k being 0.
std::int64_t padded_k(std::int64_t k);

class packed_weights {
 public:
  packed_weights() = default;
  // w: [n, k] row-major s8, every value in [-127, 127].
  packed_weights(const std::int8_t* w, std::int64_t n, std::int64_t k);

  std::int64_t n() const { return n_; }
  std::int64_t k() const { return k_; }
  // Bytes the packed panels and the column sums take.
  std::size_t bytes() const;
  // Back to [n, k] row-major.
  void unpack(std::int8_t* w) const;

  const std::int8_t* panels() const { return panels_.get(); }
  // [n] sum over k of w[n, k]: the term a zero point multiplies.
  const std::int32_t* column_sums() const { return sums_.get(); }
  // Shared by copies, like the panels.
  const std::shared_ptr<detail::next_weights>& next_link() const { return next_; }

 private:
  std::int64_t n_ = 0, k_ = 0;
  std::shared_ptr<std::int8_t> panels_;   // 64-byte aligned
  std::shared_ptr<std::int32_t> sums_;
  std::shared_ptr<detail::next_weights> next_ = std::make_shared<detail::next_weights>();
};

// How accumulators become outputs:
//   y[m, n] = fma(float(acc[m, n] - zero_point(m) * column_sum[n]), scale(m) * w_scale[n], bias[n])
// (without bias: the product alone). zero_point and scale are per row when `per_row`.
struct dequantize_args {
  const float* a_scale = nullptr;        // [1] or [m]
  const std::int32_t* a_zero_point = nullptr;  // [1] or [m]
  bool per_row = false;
  const float* w_scale = nullptr;        // [n]
  const float* bias = nullptr;           // [n] or null
};

// a: [m, padded_k(k)] u8 codes (row stride padded_k(k)); y: [m, n] float32, row stride n.
// Uses the fast kernel when `fast` and vnni_available(), else the portable one; parallel over
// output panels with ATen's thread pool.
void multiply(const std::uint8_t* a, std::int64_t m, const packed_weights& w, const dequantize_args& d, float* y,
              bool fast = true);

// The range pass of per-call activation quantization (int4_gemm::quantize_rows, onednn-int8):
// widens [mn, mx] by the finite values of x[0, k); false when x holds a NaN or an Inf. AVX-512
// when `fast` and vnni_available(), else portable C++: the same result.
bool row_range(const float* x, std::int64_t k, float& mn, float& mx, bool fast = true);

namespace detail {
bool row_range_avx512(const float* x, std::int64_t k, float& mn, float& mx);
// One kernel call: rows [0, m) of a (row stride lda) times panels [p0, p1) of w, dequantized
// into y (row stride ldy). Exposed for the tests, which pit the two against each other.
void multiply_panels_avx512(const std::uint8_t* a, std::int64_t lda, std::int64_t m, const packed_weights& w,
                            std::int64_t p0, std::int64_t p1, const dequantize_args& d, std::int64_t row0, float* y,
                            std::int64_t ldy, prefetch_after after = {});
void multiply_panels_portable(const std::uint8_t* a, std::int64_t lda, std::int64_t m, const packed_weights& w,
                              std::int64_t p0, std::int64_t p1, const dequantize_args& d, std::int64_t row0,
                              float* y, std::int64_t ldy);
}  // namespace detail

}  // namespace qexp::int8_gemm

#include "methods.h"

#include <qexp/errors.h>

#include <algorithm>
#include <cmath>

namespace qexp::int4 {

group_grid fit_grid(const float* w, std::int64_t count, bool symmetric) {
  group_grid g;
  if (symmetric) {
    g.zero_point = int4_gemm::symmetric_zero_point;
    float amax = 0.f;
    for (std::int64_t i = 0; i < count; ++i) amax = std::max(amax, std::abs(w[i]));
    const float scale = amax / 7.f;
    if (scale > 0.f && std::isfinite(1.f / scale)) g.scale = scale;
    return g;
  }
  float lo = 0.f, hi = 0.f;
  for (std::int64_t i = 0; i < count; ++i) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  const float scale = (hi - lo) / 15.f;
  if (!(scale > 0.f) || !std::isfinite(1.f / scale)) return g;
  g.scale = scale;
  g.zero_point = static_cast<std::int32_t>(std::clamp(std::nearbyint(-lo / scale), 0.f, 15.f));
  return g;
}

std::uint8_t quantize_code(float w, const group_grid& g) {
  const float q = std::nearbyint(w / g.scale) + static_cast<float>(g.zero_point);
  return static_cast<std::uint8_t>(std::clamp(q, 0.f, 15.f));
}

int4_gemm::quantized_weights quantize_rtn(const at::Tensor& w, const weight_format& f) {
  int4_gemm::quantized_weights q;
  q.n = w.size(0);
  q.k = w.size(1);
  q.group_size = f.group_size;
  const std::int64_t gs = q.groups();
  q.codes.resize(static_cast<std::size_t>(q.n * q.k));
  q.scales.resize(static_cast<std::size_t>(q.n * gs));
  if (!f.symmetric) q.zero_points.resize(q.scales.size());
  const float* p = w.data_ptr<float>();
  for (std::int64_t row = 0; row < q.n; ++row)
    for (std::int64_t g = 0; g < gs; ++g) {
      const std::int64_t begin = g * f.group_size, end = std::min(q.k, begin + f.group_size);
      const float* v = p + row * q.k + begin;
      const group_grid grid = fit_grid(v, end - begin, f.symmetric);
      const auto cell = static_cast<std::size_t>(row * gs + g);
      q.scales[cell] = grid.scale;
      if (!f.symmetric) q.zero_points[cell] = static_cast<std::uint8_t>(grid.zero_point);
      for (std::int64_t j = begin; j < end; ++j)
        q.codes[static_cast<std::size_t>(row * q.k + j)] = quantize_code(v[j - begin], grid);
    }
  return q;
}

namespace {

class rtn_method final : public weight_method {
 public:
  method_result quantize(const layer& l, const weight_format& f) override { return {quantize_rtn(l.weight, f), {}}; }
};

}  // namespace

std::unique_ptr<weight_method> make_method(const std::string& name, const method_options& o) {
  if (name == "rtn") return std::make_unique<rtn_method>();
  if (name == "gptq") return make_gptq_method(o);
  if (name == "awq") return make_awq_method();
  throw config_error("int4: option 'method' is '" + name + "'; expected rtn|gptq|awq");
}

}  // namespace qexp::int4

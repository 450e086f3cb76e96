// Calibration statistics and calibrators of the static-int8 plugin: a histogram of signed values
// that grows with the data, and the four ways of turning it into a fixed activation range
// (minmax, percentile, entropy, mse), plain arithmetic on values; the activation type is the INT8
// plugins' shared enum (qexp/int8_options.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <qexp/int8_options.h>

namespace qexp::static_int8 {

enum class calibrator { minmax, percentile, entropy, mse };

// Counts of signed values in bins of width w, symmetric around 0: bin i in [-H, H) holds
// [i w, (i + 1) w) and is stored at index i + H. The first values fix w = max|x| / bins_per_side;
// when a later value lies beyond H w the histogram grows by whole bins of the same width, and
// when it holds more than 2 bins_per_side per side, pairs of bins merge (w doubles). Both steps
// are exact: no count ever moves between values, so the histogram never depends on batch order
// beyond the width it settles on.
class histogram {
 public:
  histogram() : histogram(2048) {}
  explicit histogram(std::int64_t bins_per_side) : bins_per_side_(bins_per_side) {}

  // Makes room for values with |v| <= max_abs (finite, >= 0). Call before add().
  void cover(double max_abs);
  // One finite value already covered.
  void add(float v) {
    if (width_ == 0) {
      zeros_ += 1;  // only zeros so far: cover() saw nothing larger
      return;
    }
    std::int64_t i = static_cast<std::int64_t>(std::floor(static_cast<double>(v) / width_)) + half_;
    i = i < 0 ? 0 : (i >= 2 * half_ ? 2 * half_ - 1 : i);
    counts_[static_cast<std::size_t>(i)] += 1;
  }
  // Spreads `count` uniformly over [a, b) (a < b, both covered).
  void add_spread(double a, double b, double count);
  // `count` values equal to 0.
  void add_zeros(double count) {
    if (width_ == 0) zeros_ += count;
    else counts_[static_cast<std::size_t>(half_)] += count;
  }

  double width() const { return width_; }
  std::int64_t half() const { return half_; }  // H: bins per side
  // 2H counts after folding in the zeros counted before the width was known.
  std::vector<double> counts() const;
  double total() const;
  bool empty() const { return total() == 0; }

 private:
  std::int64_t bins_per_side_;
  double width_ = 0;
  std::int64_t half_ = 0;
  std::vector<double> counts_;
  double zeros_ = 0;
};

// What calibration saw at one input (one input group): the histogram of finite values and their
// exact extremes.
struct observed_values {
  histogram hist;
  double min = 0, max = 0;  // over finite values; both include 0
  bool any = false;
};

// The fixed per-tensor activation quantization: q = clamp(round(x / scale) + zero_point, lo, hi)
// with [lo, hi] = [0, 255] (u8) or [-127, 127] (s8, zero_point 0).
struct activation_params {
  float scale = 1.f;
  std::int32_t zero_point = 0;
};

// Range [lo, hi] (lo <= 0 <= hi) chosen by a calibrator from what was observed. `percentile` is
// the share of values (in %) the range must hold: for s8 the p-th percentile of |x|, for u8 the
// (100-p)/2-th and (100+p)/2-th percentiles of x.
struct calibration_range {
  double lo = 0, hi = 0;
};
calibration_range calibrate(const observed_values& v, calibrator c, activation_type type, double percentile);

// Scale and zero point covering [lo, hi]: s8 symmetric over max(-lo, hi) / 127, u8 over
// (hi - lo) / 255 with zero_point = round(-lo / scale). An empty or all-zero range gives scale 1.
activation_params params_for(const calibration_range& r, activation_type type);

// Expected squared quantization error (rounding and clipping) of the grid {(q - z) step : q in
// [lo_code, hi_code]} over the histogram, values uniform within each bin. For tests and mse.
double expected_squared_error(const std::vector<double>& counts, double width, std::int64_t half, double step,
                              std::int32_t lo_code, std::int32_t hi_code);

const char* to_string(calibrator c);

}  // namespace qexp::static_int8

#include "calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qexp::static_int8 {

// ---------------------------------------------------------------------------------------------
// histogram

void histogram::cover(double max_abs) {
  if (!(max_abs > 0) || !std::isfinite(max_abs)) return;
  if (width_ == 0) {
    width_ = max_abs / static_cast<double>(bins_per_side_);
    half_ = static_cast<std::int64_t>(std::floor(max_abs / width_)) + 1;
    counts_.assign(static_cast<std::size_t>(2 * half_), 0.0);
    return;
  }
  const std::int64_t needed = static_cast<std::int64_t>(std::floor(max_abs / width_)) + 1;
  if (needed <= half_) return;
  // Grow by whole bins of the same width on both sides (the old bins keep their edges).
  std::vector<double> grown(static_cast<std::size_t>(2 * needed), 0.0);
  std::copy(counts_.begin(), counts_.end(), grown.begin() + (needed - half_));
  counts_.swap(grown);
  half_ = needed;
  // Too many bins: merge pairs. Bin i covers [i w, (i+1) w); with H even, stored index s = i + H
  // goes to s / 2, i.e. [floor(i/2) 2w, (floor(i/2) + 1) 2w): exact, edges stay aligned on 0.
  while (half_ > 2 * bins_per_side_) {
    if (half_ % 2 != 0) {
      std::vector<double> padded(static_cast<std::size_t>(2 * half_ + 2), 0.0);
      std::copy(counts_.begin(), counts_.end(), padded.begin() + 1);
      counts_.swap(padded);
      half_ += 1;
    }
    std::vector<double> merged(static_cast<std::size_t>(half_), 0.0);
    for (std::size_t s = 0; s < counts_.size(); ++s) merged[s / 2] += counts_[s];
    counts_.swap(merged);
    half_ /= 2;
    width_ *= 2;
  }
}

void histogram::add_spread(double a, double b, double count) {
  if (!(b > a) || count == 0 || width_ == 0) {
    if (width_ == 0) zeros_ += count;
    return;
  }
  const std::int64_t first = static_cast<std::int64_t>(std::floor(a / width_));
  const std::int64_t last = static_cast<std::int64_t>(std::floor(b / width_));
  const double per_unit = count / (b - a);
  for (std::int64_t i = first; i <= last; ++i) {
    const double lo = std::max(a, static_cast<double>(i) * width_);
    const double hi = std::min(b, static_cast<double>(i + 1) * width_);
    if (!(hi > lo)) continue;
    std::int64_t s = i + half_;
    s = s < 0 ? 0 : (s >= 2 * half_ ? 2 * half_ - 1 : s);
    counts_[static_cast<std::size_t>(s)] += (hi - lo) * per_unit;
  }
}

std::vector<double> histogram::counts() const {
  std::vector<double> out = counts_;
  if (!out.empty()) out[static_cast<std::size_t>(half_)] += zeros_;  // bin [0, w)
  return out;
}

double histogram::total() const {
  double t = zeros_;
  for (double c : counts_) t += c;
  return t;
}

// ---------------------------------------------------------------------------------------------
// error model

namespace {

// F(x) = integral from 0 to x of (v - Q(v))^2 dv, Q rounding to the grid k * step: odd in x.
double rounding_integral(double x, double step) {
  const double sign = x < 0 ? -1.0 : 1.0;
  x = std::abs(x);
  const double n = std::floor((x + 0.5 * step) / step);
  const double r = x - n * step;  // in [-step/2, step/2)
  return sign * (n * step * step * step / 12.0 + r * r * r / 3.0);
}

// integral over [a, b] of (v - c)^2 dv
double clip_integral(double a, double b, double c) {
  const double ea = a - c, eb = b - c;
  return (eb * eb * eb - ea * ea * ea) / 3.0;
}

// |x| histogram: bin i holds [i w, (i+1) w).
std::vector<double> fold(const std::vector<double>& counts, std::int64_t half) {
  std::vector<double> out(static_cast<std::size_t>(half), 0.0);
  for (std::int64_t i = 0; i < half; ++i)
    out[static_cast<std::size_t>(i)] =
        counts[static_cast<std::size_t>(half + i)] + counts[static_cast<std::size_t>(half - 1 - i)];
  return out;
}

// The value below which `share` (0..1) of the histogram's mass lies, linear within a bin.
double quantile(const std::vector<double>& counts, double width, std::int64_t half, double share) {
  double total = 0;
  for (double c : counts) total += c;
  const double target = share * total;
  double seen = 0;
  for (std::size_t s = 0; s < counts.size(); ++s) {
    if (counts[s] > 0 && seen + counts[s] >= target) {
      const double frac = std::clamp((target - seen) / counts[s], 0.0, 1.0);
      return (static_cast<double>(static_cast<std::int64_t>(s) - half) + frac) * width;
    }
    seen += counts[s];
  }
  return static_cast<double>(half) * width;
}

// Adds eps where `d` is 0 and takes the same mass from the non-zero entries (TensorRT/ORT
// smooth_distribution), eps scaled to the smallest non-zero entry so that none goes negative.
// Returns false when `d` is all zero.
bool smooth(std::vector<double>& d) {
  std::size_t zeros = 0;
  double smallest = std::numeric_limits<double>::infinity();
  for (double v : d) {
    if (v == 0) ++zeros;
    else smallest = std::min(smallest, v);
  }
  const std::size_t nonzeros = d.size() - zeros;
  if (nonzeros == 0) return false;
  const double eps = 1e-4 * smallest;
  const double take = eps * static_cast<double>(zeros) / static_cast<double>(nonzeros);
  for (double& v : d) v = v == 0 ? eps : v - take;
  return true;
}

double kl_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  double sp = 0, sq = 0;
  for (std::size_t i = 0; i < p.size(); ++i) sp += p[i], sq += q[i];
  double kl = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double pi = p[i] / sp, qi = q[i] / sq;
    if (pi > 0) kl += pi * std::log(pi / qi);
  }
  return kl;
}

// Candidates first..last (inclusive) visited with a stride that keeps their number near `limit`;
// the last one is always visited.
template <typename F>
void for_candidates(std::int64_t first, std::int64_t last, std::int64_t limit, F&& f) {
  if (last < first) return;
  const std::int64_t stride = std::max<std::int64_t>(1, (last - first) / limit);
  std::int64_t i = first;
  for (; i < last; i += stride) f(i);
  f(last);
}

// For u8: the asymmetric range a threshold t on |x| gives, within what was seen.
calibration_range clip_to(const observed_values& v, double t) {
  return {std::max(std::min(v.min, 0.0), -t), std::min(std::max(v.max, 0.0), t)};
}

struct grid {
  double step;
  std::int32_t lo_code, hi_code;  // relative to the zero point
};

grid grid_for(const calibration_range& r, activation_type type) {
  const activation_params p = params_for(r, type);
  if (type == activation_type::s8) return {p.scale, -127, 127};
  return {p.scale, -p.zero_point, 255 - p.zero_point};
}

calibration_range entropy_range(const observed_values& v, activation_type type) {
  const std::vector<double> counts = v.hist.counts();
  const std::int64_t half = v.hist.half();
  const double width = v.hist.width();
  const std::vector<double> a = fold(counts, half);
  const double neg = -std::min(v.min, 0.0);
  // Levels the grid puts on [0, t]: 128 for s8; for u8 the share of its 256 on the positive side.
  auto levels = [&](double t) -> std::int64_t {
    if (type == activation_type::s8) return 128;
    const double n = std::min(neg, t);
    return std::clamp<std::int64_t>(std::llround(255.0 * t / (t + n)), 128, 255);
  };
  const std::int64_t first = 128;  // thresholds below 128 bins leave the grid finer than the bins
  if (half <= first) return clip_to(v, std::max(neg, v.max));
  std::vector<double> suffix(static_cast<std::size_t>(half) + 1, 0.0);
  for (std::int64_t i = half - 1; i >= 0; --i)
    suffix[static_cast<std::size_t>(i)] = suffix[static_cast<std::size_t>(i) + 1] + a[static_cast<std::size_t>(i)];

  double best_kl = std::numeric_limits<double>::infinity();
  std::int64_t best = half;
  for_candidates(first, half, 1024, [&](std::int64_t i) {
    const double t = static_cast<double>(i) * width;
    const std::int64_t nq = std::min<std::int64_t>(levels(t), i);
    // Reference: the first i bins, everything beyond them clipped into the last one.
    std::vector<double> p(a.begin(), a.begin() + i);
    p[static_cast<std::size_t>(i - 1)] += suffix[static_cast<std::size_t>(i)];
    // Candidate: the same i bins (outliers left out) merged into nq quantized bins, each spread
    // back evenly over the bins of p that are non-zero.
    std::vector<double> q(static_cast<std::size_t>(i), 0.0);
    const std::int64_t merged = i / nq;
    for (std::int64_t j = 0; j < nq; ++j) {
      const std::int64_t start = j * merged, stop = j == nq - 1 ? i : start + merged;
      double sum = 0;
      std::int64_t nonzero = 0;
      for (std::int64_t k = start; k < stop; ++k) {
        sum += a[static_cast<std::size_t>(k)];
        nonzero += p[static_cast<std::size_t>(k)] != 0;
      }
      if (nonzero == 0) continue;
      for (std::int64_t k = start; k < stop; ++k)
        if (p[static_cast<std::size_t>(k)] != 0) q[static_cast<std::size_t>(k)] = sum / static_cast<double>(nonzero);
    }
    if (!smooth(p) || !smooth(q)) return;
    const double kl = kl_divergence(p, q);
    if (kl < best_kl) best_kl = kl, best = i;
  });
  const double t = std::min(static_cast<double>(best) * width, std::max(neg, v.max));
  return clip_to(v, t);
}

calibration_range mse_range(const observed_values& v, activation_type type) {
  const std::vector<double> counts = v.hist.counts();
  const std::int64_t half = v.hist.half();
  const double width = v.hist.width();
  const double amax = std::max(-std::min(v.min, 0.0), std::max(v.max, 0.0));
  double best_error = std::numeric_limits<double>::infinity();
  double best_t = amax;
  auto consider = [&](double t) {
    const calibration_range r = clip_to(v, t);
    const grid g = grid_for(r, type);
    const double e = expected_squared_error(counts, width, half, g.step, g.lo_code, g.hi_code);
    if (e < best_error) best_error = e, best_t = t;
  };
  for_candidates(1, half, 512, [&](std::int64_t i) { consider(std::min(static_cast<double>(i) * width, amax)); });
  consider(amax);
  return clip_to(v, best_t);
}

}  // namespace

double expected_squared_error(const std::vector<double>& counts, double width, std::int64_t half, double step,
                              std::int32_t lo_code, std::int32_t hi_code) {
  const double lo = static_cast<double>(lo_code) * step, hi = static_cast<double>(hi_code) * step;
  double total = 0;
  for (std::int64_t s = 0; s < 2 * half; ++s) {
    const double c = counts[static_cast<std::size_t>(s)];
    if (c == 0) continue;
    const double a = static_cast<double>(s - half) * width, b = a + width;
    double integral = 0;
    if (a < lo) integral += clip_integral(a, std::min(b, lo), lo);
    if (b > hi) integral += clip_integral(std::max(a, hi), b, hi);
    const double ra = std::max(a, lo), rb = std::min(b, hi);
    if (rb > ra) integral += rounding_integral(rb, step) - rounding_integral(ra, step);
    total += c * integral / width;
  }
  return total;
}

calibration_range calibrate(const observed_values& v, calibrator c, activation_type type, double percentile) {
  if (!v.any) return {};
  const double lo_x = std::min(v.min, 0.0), hi_x = std::max(v.max, 0.0);
  const double amax = std::max(-lo_x, hi_x);
  const calibration_range full = type == activation_type::s8 ? calibration_range{-amax, amax} : calibration_range{lo_x, hi_x};
  if (c == calibrator::minmax || v.hist.width() == 0 || v.hist.empty()) return full;
  switch (c) {
    case calibrator::percentile: {
      if (percentile >= 100) return full;
      const std::vector<double> counts = v.hist.counts();
      const std::int64_t half = v.hist.half();
      const double width = v.hist.width();
      if (type == activation_type::s8) {
        const std::vector<double> a = fold(counts, half);
        // The folded histogram starts at 0: its quantile is at index offset 0, not -half.
        const double t = std::min(quantile(a, width, 0, percentile / 100.0), amax);
        return {-t, t};
      }
      const double tail = (100.0 - percentile) / 200.0;
      const double lo = std::clamp(quantile(counts, width, half, tail), lo_x, 0.0);
      const double hi = std::clamp(quantile(counts, width, half, 1.0 - tail), 0.0, hi_x);
      return {lo, hi};
    }
    case calibrator::entropy: {
      const calibration_range r = entropy_range(v, type);
      if (type == activation_type::s8) {
        const double t = std::max(-r.lo, r.hi);
        return {-t, t};
      }
      return r;
    }
    case calibrator::mse: {
      const calibration_range r = mse_range(v, type);
      if (type == activation_type::s8) {
        const double t = std::max(-r.lo, r.hi);
        return {-t, t};
      }
      return r;
    }
    case calibrator::minmax: break;
  }
  return full;
}

activation_params params_for(const calibration_range& r, activation_type type) {
  activation_params p;
  const double lo = std::min(r.lo, 0.0), hi = std::max(r.hi, 0.0);
  const double span = type == activation_type::s8 ? std::max(-lo, hi) / 127.0 : (hi - lo) / 255.0;
  const float scale = static_cast<float>(span);
  // All-zero (or vanishing) ranges: scale 1 sends every value to code 0, so a zero input computes
  // to the bias and nothing is divided by zero.
  if (!(scale >= 1e-30f) || !std::isfinite(scale) || !std::isfinite(1.f / scale)) return p;
  p.scale = scale;
  if (type == activation_type::u8)
    p.zero_point = static_cast<std::int32_t>(std::clamp(std::nearbyint(-lo / static_cast<double>(scale)), 0.0, 255.0));
  return p;
}

const char* to_string(calibrator c) {
  switch (c) {
    case calibrator::minmax: return "minmax";
    case calibrator::percentile: return "percentile";
    case calibrator::entropy: return "entropy";
    case calibrator::mse: return "mse";
  }
  return "?";
}

}  // namespace qexp::static_int8

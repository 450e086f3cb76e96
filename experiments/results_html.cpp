// report.html: one self-contained page (inline CSS and SVG, no scripts, no network) with the
// summary table and the plots a researcher reads first: accuracy against size and latency (the
// Pareto view), latency distributions per scheme, and per-layer SQNR.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "qexp/version.h"
#include "results_report.h"

namespace qexp {

using nlohmann::json;
using detail::fixed;
using detail::format_ms;
using detail::format_percent;
using detail::format_points;
using detail::html_escape;
using detail::result_row;

namespace {

// Tableau 10: distinguishable, and readable on white. The baseline is always grey.
const char* const palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                               "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#17becf"};
const char* const baseline_colour = "#555555";

std::string num(double v) { return fixed(v, 1); }

std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Cuts at a code point boundary so a label never ends in half a UTF-8 sequence.
std::string shorten(const std::string& s, std::size_t max_chars) {
  if (display_width(s) <= max_chars) return s;
  std::size_t chars = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (chars == max_chars - 1) break;
      ++chars;
    }
  }
  return s.substr(0, i) + "\xE2\x80\xA6";
}

// Width of text at the report's 12 px sans-serif, roughly; enough to keep labels apart.
double text_width(const std::string& s, double font_px = 12) { return display_width(s) * font_px * 0.58; }

struct axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
  int decimals = 0;
  double map(double v, double from, double to) const { return from + (v - lo) / (hi - lo) * (to - from); }
};

axis nice_axis(double min, double max, bool include_zero, double min_span) {
  if (include_zero) min = std::min(min, 0.0);
  if (max - min < min_span) {
    double mid = (max + min) / 2;
    min = min >= 0 ? std::max(0.0, mid - min_span / 2) : mid - min_span / 2;
    max = min + min_span;
  } else if (!include_zero || min < 0) {
    double pad = (max - min) * 0.08;
    // Latencies are never negative: padding must not push the axis below zero.
    min = min >= 0 ? std::max(0.0, min - pad) : min - pad;
    max += pad;
  } else {
    max += (max - min) * 0.08;
  }
  double raw = (max - min) / 5;
  axis a;
  // A span that overflows (values near 1e308) or too small for the values' precision (an accuracy
  // of 6e13: a step of 0.2 no longer changes the value): the two ends as ticks, rather than a step
  // of 0 or inf or a tick loop that never advances.
  if (!(std::isfinite(raw) && raw > 0 && min + raw > min && max - raw < max)) {
    a.lo = min;
    a.hi = max;
    a.ticks = {min, max};
    return a;
  }
  double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  }
  a.lo = std::floor(min / step + 1e-9) * step;
  a.hi = std::ceil(max / step - 1e-9) * step;
  if (a.hi <= a.lo) a.hi = a.lo + step;
  for (double t = a.lo; t <= a.hi + step * 1e-6 && a.ticks.size() < 64; t += step)
    a.ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  a.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  if (std::abs(step / std::pow(10, -a.decimals) - 2.5) < 1e-6) ++a.decimals;
  return a;
}

std::string svg_text(double x, double y, const std::string& text, const std::string& attributes = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" + (attributes.empty() ? "" : " " + attributes) + ">" +
         html_escape(text) + "</text>";
}

// Gridlines, tick labels and axis titles of a plot area.
std::string axes_svg(const axis& x, const axis& y, double left, double right, double top, double bottom,
                     const std::string& x_title, const std::string& y_title) {
  std::string out;
  for (double t : x.ticks) {
    double px = x.map(t, left, right);
    out += "<line class=\"grid\" x1=\"" + num(px) + "\" y1=\"" + num(top) + "\" x2=\"" + num(px) + "\" y2=\"" + num(bottom) + "\"/>";
    out += svg_text(px, bottom + 16, fixed(t, x.decimals), "class=\"tick\" text-anchor=\"middle\"");
  }
  for (double t : y.ticks) {
    double py = y.map(t, bottom, top);
    out += "<line class=\"grid\" x1=\"" + num(left) + "\" y1=\"" + num(py) + "\" x2=\"" + num(right) + "\" y2=\"" + num(py) + "\"/>";
    out += svg_text(left - 6, py + 4, fixed(t, y.decimals), "class=\"tick\" text-anchor=\"end\"");
  }
  out += "<rect class=\"frame\" x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(right - left) + "\" height=\"" +
         num(bottom - top) + "\"/>";
  out += svg_text((left + right) / 2, bottom + 36, x_title, "class=\"axis-title\" text-anchor=\"middle\"");
  if (!y_title.empty()) {
    double cy = (top + bottom) / 2;
    out += "<text class=\"axis-title\" text-anchor=\"middle\" transform=\"translate(" + num(left - 46) + " " + num(cy) +
           ") rotate(-90)\">" + html_escape(y_title) + "</text>";
  }
  return out;
}

std::string svg_open(const std::string& id, double width, double height, const std::string& title) {
  return "<svg id=\"" + html_escape(id) + "\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " +
         num(width) + " " + num(height) + "\" width=\"" + num(width) + "\" height=\"" + num(height) +
         "\" role=\"img\" aria-label=\"" + html_escape(title) + "\">" + "<title>" + html_escape(title) + "</title>" +
         svg_text(12, 22, title, "class=\"plot-title\"");
}

struct rect {
  double x0, y0, x1, y1;
  bool overlaps(const rect& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
};

// ---------------------------------------------------------------------------------------------
// Scatter plot with the Pareto frontier (lower x and higher y are better)

struct scatter_point {
  std::string label, tooltip, colour;
  double x = 0, y = 0;
  bool baseline = false;
};

std::string scatter_svg(const std::string& id, const std::string& title, const std::string& x_title,
                        const std::string& y_title, const std::vector<scatter_point>& points, double x_min_span) {
  const double width = 520, height = 420, left = 70, right = width - 24, top = 40, bottom = height - 86;
  double x_min = 1e300, x_max = -1e300, y_min = 1e300, y_max = -1e300;
  for (const auto& p : points) {
    x_min = std::min(x_min, p.x);
    x_max = std::max(x_max, p.x);
    y_min = std::min(y_min, p.y);
    y_max = std::max(y_max, p.y);
  }
  axis x = nice_axis(x_min, x_max, true, x_min_span);
  // Accuracy differences are small; at least one percentage point of span keeps noise from
  // looking like a cliff.
  axis y = nice_axis(y_min, y_max, false, 1.0);
  std::string out = svg_open(id, width, height, title);
  out += axes_svg(x, y, left, right, top, bottom, x_title, y_title);

  auto px = [&](double v) { return x.map(v, left, right); };
  auto py = [&](double v) { return y.map(v, bottom, top); };

  // Frontier: sweep by x; a point joins when it beats every point left of it on y.
  std::vector<const scatter_point*> sorted;
  for (const auto& p : points) sorted.push_back(&p);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->x != b->x ? a->x < b->x : a->y > b->y; });
  std::vector<const scatter_point*> frontier;
  for (auto* p : sorted) {
    if (frontier.empty() || p->y > frontier.back()->y) frontier.push_back(p);
  }
  if (frontier.size() > 1) {
    std::string d = "M" + num(px(frontier[0]->x)) + "," + num(py(frontier[0]->y));
    for (std::size_t i = 1; i < frontier.size(); ++i) {
      d += " H" + num(px(frontier[i]->x)) + " V" + num(py(frontier[i]->y));
    }
    out += "<path class=\"frontier\" d=\"" + d + "\"/>";
  }

  std::vector<rect> taken;
  for (const auto& p : points) taken.push_back({px(p.x) - 7, py(p.y) - 7, px(p.x) + 7, py(p.y) + 7});
  std::string labels;
  // The baseline is drawn last so that a scheme landing on the same spot cannot hide it.
  std::vector<const scatter_point*> draw_order;
  for (const auto& p : points) draw_order.push_back(&p);
  std::stable_partition(draw_order.begin(), draw_order.end(), [](const scatter_point* p) { return !p->baseline; });
  for (const scatter_point* point : draw_order) {
    const scatter_point& p = *point;
    double cx = px(p.x), cy = py(p.y);
    std::string tip = html_escape(p.tooltip);
    if (p.baseline) {
      out += "<path class=\"marker baseline\" fill=\"" + p.colour + "\" d=\"M" + num(cx) + "," + num(cy - 7.5) + " L" +
             num(cx + 7.5) + "," + num(cy) + " L" + num(cx) + "," + num(cy + 7.5) + " L" + num(cx - 7.5) + "," + num(cy) +
             " Z\"><title>" + tip + "</title></path>";
    } else {
      out += "<circle class=\"marker\" fill=\"" + p.colour + "\" cx=\"" + num(cx) + "\" cy=\"" + num(cy) +
             "\" r=\"6\"><title>" + tip + "</title></circle>";
    }
    std::string text = shorten(p.label, 30);
    double w = text_width(text);
    struct candidate {
      double x, y;
      const char* anchor;
    };
    const candidate candidates[] = {{cx + 10, cy + 4, "start"}, {cx - 10, cy + 4, "end"},   {cx, cy - 11, "middle"},
                                    {cx, cy + 19, "middle"},    {cx + 10, cy - 10, "start"}, {cx - 10, cy - 10, "end"},
                                    {cx + 10, cy + 18, "start"}, {cx - 10, cy + 18, "end"},  {cx, cy - 25, "middle"},
                                    {cx, cy + 33, "middle"}};
    const candidate* chosen = nullptr;
    rect chosen_box{};
    for (const auto& c : candidates) {
      double x0 = std::string(c.anchor) == "start" ? c.x : std::string(c.anchor) == "end" ? c.x - w : c.x - w / 2;
      rect box{x0 - 1, c.y - 11, x0 + w + 1, c.y + 3};
      bool inside = box.x0 >= left && box.x1 <= right && box.y0 >= top && box.y1 <= bottom;
      if (!inside) continue;
      bool clear = std::none_of(taken.begin(), taken.end(), [&](const rect& r) { return r.overlaps(box); });
      if (clear || !chosen) {
        chosen = &c;
        chosen_box = box;
        if (clear) break;
      }
    }
    if (!chosen) {
      chosen = &candidates[cx > (left + right) / 2 ? 1 : 0];
      chosen_box = {cx - w, cy - 11, cx + w, cy + 3};
    }
    taken.push_back(chosen_box);
    labels += svg_text(chosen->x, chosen->y, text, "class=\"point-label\" text-anchor=\"" + std::string(chosen->anchor) + "\"");
  }
  out += labels;

  // Legend under the axis title.
  double ly = height - 22;
  out += "<path class=\"legend-marker baseline\" fill=\"" + std::string(baseline_colour) + "\" d=\"M" + num(left + 6) + "," +
         num(ly - 11) + " l6,6 l-6,6 l-6,-6 Z\"/>";
  out += svg_text(left + 18, ly, "fp32 baseline", "class=\"legend\"");
  out += "<circle class=\"legend-marker\" fill=\"#888\" cx=\"" + num(left + 130) + "\" cy=\"" + num(ly - 4) + "\" r=\"5\"/>";
  out += svg_text(left + 141, ly, "scheme", "class=\"legend\"");
  out += "<line class=\"frontier\" x1=\"" + num(left + 210) + "\" y1=\"" + num(ly - 4) + "\" x2=\"" + num(left + 240) +
         "\" y2=\"" + num(ly - 4) + "\"/>";
  out += svg_text(left + 248, ly, "Pareto frontier", "class=\"legend\"");
  return out + "</svg>";
}

// ---------------------------------------------------------------------------------------------
// Latency distributions: box plot and strip of samples per scheme

struct distribution_row {
  std::string label, colour;
  std::vector<double> samples;  // sorted
  std::optional<double> p50, p99;
};

double quantile(const std::vector<double>& sorted, double q) {
  double pos = q * (sorted.size() - 1);
  auto i = static_cast<std::size_t>(std::floor(pos));
  if (i + 1 >= sorted.size()) return sorted.back();
  return sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]);
}

std::string distribution_svg(const std::string& id, const std::string& title, const std::vector<distribution_row>& rows) {
  const double width = 1100, row_height = 38, top = 44;
  std::size_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, display_width(shorten(r.label, 40)));
  const double left = std::clamp(longest * 7.0 + 24, 100.0, 300.0), right = width - 190;
  const double bottom = top + row_height * rows.size(), height = bottom + 52;
  double lo = 1e300, hi = -1e300;
  for (const auto& r : rows) {
    lo = std::min(lo, r.samples.front());
    hi = std::max(hi, r.samples.back());
  }
  axis x = nice_axis(lo, hi, false, std::max(hi * 0.02, 1e-3));
  axis no_y;
  no_y.lo = 0;
  no_y.hi = 1;
  std::string out = svg_open(id, width, height, title);
  out += axes_svg(x, no_y, left, right, top, bottom, "latency per call, ms", "");
  auto px = [&](double v) { return x.map(v, left, right); };
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    double cy = top + row_height * (i + 0.5);
    if (i % 2 == 1) {
      out += "<rect class=\"band\" x=\"" + num(left) + "\" y=\"" + num(top + row_height * i) + "\" width=\"" +
             num(right - left) + "\" height=\"" + num(row_height) + "\"/>";
    }
    out += svg_text(left - 8, cy + 4, shorten(r.label, 40), "class=\"row-label\" text-anchor=\"end\"");
    // Every sample as a faint dot, thinned to at most 400 so large runs keep the file small.
    std::size_t stride = std::max<std::size_t>(1, (r.samples.size() + 399) / 400);
    out += "<g class=\"samples\" fill=\"" + r.colour + "\">";
    for (std::size_t s = 0; s < r.samples.size(); s += stride) {
      double jitter = std::fmod(s * 0.6180339887, 1.0) * 20 - 10;  // deterministic, evenly spread
      out += "<circle cx=\"" + num(px(r.samples[s])) + "\" cy=\"" + num(cy + jitter) + "\" r=\"1.6\"/>";
    }
    out += "</g>";
    double q1 = quantile(r.samples, 0.25), median = quantile(r.samples, 0.5), q3 = quantile(r.samples, 0.75);
    double iqr = q3 - q1;
    auto low_it = std::lower_bound(r.samples.begin(), r.samples.end(), q1 - 1.5 * iqr);
    auto high_it = std::upper_bound(r.samples.begin(), r.samples.end(), q3 + 1.5 * iqr);
    double whisker_low = low_it == r.samples.end() ? q1 : *low_it;
    double whisker_high = high_it == r.samples.begin() ? q3 : *(high_it - 1);
    std::string tip = r.label + ": median " + fixed(median, 3) + " ms, IQR " + fixed(q1, 3) + " to " + fixed(q3, 3) +
                      " ms, " + std::to_string(r.samples.size()) + " samples";
    out += "<g class=\"whisker\" stroke=\"" + r.colour + "\">";
    out += "<line x1=\"" + num(px(whisker_low)) + "\" y1=\"" + num(cy) + "\" x2=\"" + num(px(q1)) + "\" y2=\"" + num(cy) + "\"/>";
    out += "<line x1=\"" + num(px(q3)) + "\" y1=\"" + num(cy) + "\" x2=\"" + num(px(whisker_high)) + "\" y2=\"" + num(cy) + "\"/>";
    for (double w : {whisker_low, whisker_high}) {
      out += "<line x1=\"" + num(px(w)) + "\" y1=\"" + num(cy - 6) + "\" x2=\"" + num(px(w)) + "\" y2=\"" + num(cy + 6) + "\"/>";
    }
    out += "</g>";
    out += "<rect class=\"box\" stroke=\"" + r.colour + "\" fill=\"" + r.colour + "\" x=\"" + num(px(q1)) + "\" y=\"" +
           num(cy - 9) + "\" width=\"" + num(std::max(1.0, px(q3) - px(q1))) + "\" height=\"18\"><title>" +
           html_escape(tip) + "</title></rect>";
    out += "<line class=\"median\" x1=\"" + num(px(median)) + "\" y1=\"" + num(cy - 11) + "\" x2=\"" + num(px(median)) +
           "\" y2=\"" + num(cy + 11) + "\"/>";
    std::string note = "p50 " + fixed(r.p50.value_or(median), 3) + (r.p99 ? "  p99 " + fixed(*r.p99, 3) : "") + " ms";
    out += svg_text(right + 12, cy + 4, note, "class=\"row-note\"");
  }
  return out + "</svg>";
}

// ---------------------------------------------------------------------------------------------
// Per-layer SQNR: grouped horizontal bars, one group per layer, one bar per scheme

struct layer_series {
  std::string label, colour;
  std::map<std::string, std::pair<double, std::optional<double>>> by_layer;  // sqnr dB, nmse
};

// The prefix every layer name shares ("distilbert.transformer."), dropped on screen so the names
// that differ get the room; a layer index keeps its component ("layer.0.ffn.lin2", not "0.ffn.lin2").
// Only the nested names count ("classifier" sits beside the stack and is shown whole).
std::string layer_name_prefix(const std::vector<std::string>& all_layers) {
  std::vector<std::string> layers;
  for (const auto& l : all_layers) {
    if (std::count(l.begin(), l.end(), '.') >= 2) layers.push_back(l);
  }
  if (layers.size() < 2) return {};
  std::string prefix = layers.front();
  for (const auto& l : layers) {
    std::size_t n = 0;
    while (n < prefix.size() && n < l.size() && prefix[n] == l[n]) ++n;
    prefix.resize(n);
  }
  auto cut_to_previous_dot = [&prefix] {
    auto dot = prefix.size() < 2 ? std::string::npos : prefix.rfind('.', prefix.size() - 2);
    prefix.resize(dot == std::string::npos ? 0 : dot + 1);
  };
  if (!prefix.empty() && prefix.back() != '.') {
    auto dot = prefix.rfind('.');
    prefix.resize(dot == std::string::npos ? 0 : dot + 1);
  }
  auto starts_with_digit = [&prefix](const std::string& l) {
    return l.size() > prefix.size() && std::isdigit(static_cast<unsigned char>(l[prefix.size()]));
  };
  while (!prefix.empty() && std::any_of(layers.begin(), layers.end(), starts_with_digit)) cut_to_previous_dot();
  return prefix;
}

std::string sqnr_svg(const std::string& id, const std::vector<layer_series>& series, std::string* caption) {
  std::set<std::string> names_set;
  for (const auto& s : series) {
    for (const auto& [layer, value] : s.by_layer) names_set.insert(layer);
  }
  std::vector<std::string> layers(names_set.begin(), names_set.end());
  std::string prefix = layer_name_prefix(layers);
  // Model order, roughly: the stack's layers by index, then the heads beside it.
  std::sort(layers.begin(), layers.end(), [&prefix](const std::string& a, const std::string& b) {
    bool a_in = !prefix.empty() && a.rfind(prefix, 0) == 0, b_in = !prefix.empty() && b.rfind(prefix, 0) == 0;
    if (a_in != b_in) return a_in;
    return detail::natural_less(a, b);
  });
  if (!prefix.empty()) *caption = "Layer names starting with \"" + prefix + "\" are shown without it. ";
  auto short_name = [&prefix](const std::string& l) { return l.rfind(prefix, 0) == 0 ? l.substr(prefix.size()) : l; };

  const double width = 1100, legend_height = 26 + 20 * std::ceil(series.size() / 4.0), top = 30 + legend_height;
  const double bar = std::clamp(21.0 / series.size(), 4.0, 9.0), gap = 7, group = bar * series.size() + gap;
  std::size_t longest = 0;
  for (const auto& l : layers) longest = std::max(longest, display_width(shorten(short_name(l), 44)));
  const double left = std::clamp(longest * 6.6 + 20, 110.0, 330.0), right = width - 30;
  const double bottom = top + group * layers.size(), height = bottom + 50;
  double lo = 0, hi = 0;
  for (const auto& s : series) {
    for (const auto& [layer, value] : s.by_layer) {
      lo = std::min(lo, value.first);
      hi = std::max(hi, value.first);
    }
  }
  axis x = nice_axis(lo, hi, true, 10);
  axis no_y;
  std::string out = svg_open(id, width, height, "Per-layer SQNR against fp32 (higher is better)");
  for (std::size_t i = 0; i < series.size(); ++i) {
    double lx = 14 + (i % 4) * 270, ly = 46 + 20 * std::floor(i / 4.0);
    out += "<rect fill=\"" + series[i].colour + "\" x=\"" + num(lx) + "\" y=\"" + num(ly - 10) + "\" width=\"12\" height=\"12\"/>";
    out += svg_text(lx + 18, ly, shorten(series[i].label, 36), "class=\"legend\"");
  }
  for (std::size_t g = 0; g < layers.size(); ++g) {
    if (g % 2 == 1) {
      out += "<rect class=\"band\" x=\"" + num(left) + "\" y=\"" + num(top + group * g) + "\" width=\"" + num(right - left) +
             "\" height=\"" + num(group) + "\"/>";
    }
  }
  out += axes_svg(x, no_y, left, right, top, bottom, "SQNR, dB", "");
  auto px = [&](double v) { return x.map(v, left, right); };
  for (std::size_t g = 0; g < layers.size(); ++g) {
    double gy = top + group * g + gap / 2;
    out += svg_text(left - 8, gy + bar * series.size() / 2 + 4, shorten(short_name(layers[g]), 44),
                    "class=\"row-label\" text-anchor=\"end\"");
    for (std::size_t s = 0; s < series.size(); ++s) {
      auto it = series[s].by_layer.find(layers[g]);
      if (it == series[s].by_layer.end()) continue;
      double v = it->second.first;
      double x0 = std::min(px(0), px(v)), x1 = std::max(px(0), px(v));
      std::string tip = series[s].label + " \xC2\xB7 " + layers[g] + ": " + fixed(v, 2) + " dB" +
                        (it->second.second ? ", NMSE " + fixed(*it->second.second, 6) : "");
      out += "<rect class=\"bar\" fill=\"" + series[s].colour + "\" x=\"" + num(x0) + "\" y=\"" + num(gy + bar * s) +
             "\" width=\"" + num(std::max(0.5, x1 - x0)) + "\" height=\"" + num(bar - 0.6) + "\"><title>" +
             html_escape(tip) + "</title></rect>";
    }
  }
  return out + "</svg>";
}

// ---------------------------------------------------------------------------------------------
// The page

const char* const page_style = R"css(
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1f2328;
       background: #f6f8fa; margin: 0; }
main { max-width: 1140px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 8px; }
.meta { color: #57606a; margin: 2px 0; }
section.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 4px 18px 16px; margin-top: 18px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e5e8eb; text-align: left; vertical-align: top; }
th { background: #f0f3f6; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr.baseline td { background: #f7f7f9; font-weight: 600; }
tr.failed td { background: #fff1f0; }
td.error { color: #a40e26; }
td.layer { white-space: nowrap; }
table.summary { font-size: 13px; }
table.summary th, table.summary td { padding: 5px 8px; }
td.scheme { min-width: 150px; }
.plugin { color: #57606a; font-size: 12px; font-weight: 400; padding-left: 16px; }
.table-wrap { overflow-x: auto; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.warning { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; }
.note { color: #57606a; font-size: 13px; margin: 6px 0; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
svg.plot { background: #fff; max-width: 100%; height: auto; font-family: inherit; }
svg .plot-title { font-size: 14px; font-weight: 600; fill: #1f2328; }
svg .tick, svg .row-note { font-size: 11px; fill: #57606a; }
svg .axis-title, svg .legend, svg .row-label { font-size: 12px; fill: #1f2328; }
svg .point-label { font-size: 12px; fill: #1f2328; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg .grid { stroke: #e8ebef; stroke-width: 1; }
svg .frame { fill: none; stroke: #afb8c1; }
svg .band { fill: #f6f8fa; }
svg .frontier { fill: none; stroke: #8c959f; stroke-width: 1.5; stroke-dasharray: 5 4; }
svg .marker { stroke: #fff; stroke-width: 1.5; }
svg .samples { opacity: 0.35; }
svg .whisker { stroke-width: 1.5; }
svg .box { fill-opacity: 0.22; stroke-width: 1.5; }
svg .median { stroke: #1f2328; stroke-width: 2.5; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #0969da; }
pre { background: #f6f8fa; border: 1px solid #e5e8eb; border-radius: 6px; padding: 10px; overflow-x: auto; font-size: 12px; }
code { font-size: 12.5px; }
footer { color: #57606a; font-size: 12px; margin-top: 32px; }
)css";

std::string cell(const std::string& text, bool numeric = false) {
  return std::string(numeric ? "<td class=\"num\">" : "<td>") + html_escape(text) + "</td>";
}

// The HTML shows ratios with a real multiplication sign.
std::string format_times(const std::optional<double>& v, int decimals) { return detail::format_times(v, decimals, "\xC3\x97"); }

std::string summary_html(const std::vector<result_row>& rows, const std::vector<std::string>& colours,
                         const std::string& layer_prefix) {
  bool several_runs = std::any_of(rows.begin(), rows.end(), [](const result_row& r) { return !r.run_name.empty(); });
  std::set<std::string> settings;
  for (const auto& r : rows) {
    if (r.headline_probe) settings.insert(detail::latency_setting(*r.headline_probe, false));
  }
  // The latency setting goes in the note when every row shares it, which keeps the table narrow.
  bool setting_column = settings.size() > 1;
  std::string out = "<div class=\"table-wrap\"><table class=\"summary\"><thead><tr>";
  if (several_runs) out += "<th>run</th>";
  out += "<th>scheme</th><th class=\"num\">size MB</th><th class=\"num\">ratio</th><th class=\"num\">p50 ms</th>";
  if (setting_column) out += "<th>latency at</th>";
  out += "<th class=\"num\">speedup</th><th class=\"num\">accuracy</th><th class=\"num\">&Delta; pp</th>"
         "<th class=\"num\">agreement</th><th>worst layer</th><th class=\"num\">SQNR dB</th>"
         "</tr></thead><tbody>";
  const int measured_columns = setting_column ? 10 : 9;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    out += std::string("<tr class=\"") + (r.ok ? (r.is_baseline ? "baseline" : "ok") : "failed") + "\">";
    if (several_runs) out += cell(r.run_name);
    // The plugin and its version sit under the label: the label is what the researcher chose.
    out += "<td class=\"scheme\"><span class=\"swatch\" style=\"background:" + colours[i] + "\"></span>" +
           html_escape(r.label) + "<div class=\"plugin\">" + html_escape(r.plugin) +
           (r.plugin_version.empty() ? "" : " " + html_escape(r.plugin_version)) + "</div></td>";
    if (!r.ok) {
      out += "<td class=\"error\" colspan=\"" + std::to_string(measured_columns) + "\">failed: " +
             html_escape(r.error.empty() ? "no error message recorded" : r.error) + "</td></tr>";
      continue;
    }
    out += cell(r.size_bytes ? fixed(*r.size_bytes / 1e6, 2) : "-", true);
    out += cell(format_times(r.size_ratio, 3), true);
    out += cell(format_ms(r.p50_ms), true);
    if (setting_column) out += cell(r.headline_probe ? detail::latency_setting(*r.headline_probe, false) : "-");
    out += cell(format_times(r.speedup, 2), true);
    out += cell(format_percent(r.accuracy), true);
    out += cell(format_delta(r), true);
    out += cell(format_percent(r.agreement), true);
    std::string layer = r.worst_layer.rfind(layer_prefix, 0) == 0 ? r.worst_layer.substr(layer_prefix.size()) : r.worst_layer;
    out += "<td class=\"layer\" title=\"" + html_escape(r.worst_layer) + "\">" + html_escape(layer.empty() ? "-" : layer) + "</td>";
    out += cell(r.worst_sqnr_db ? fixed(*r.worst_sqnr_db, 1) : "-", true);
    out += "</tr>";
  }
  out += "</tbody></table></div>";
  out += "<p class=\"note\">p50 ms: the probe sentence at " +
         (settings.size() == 1 ? html_escape(*settings.begin()) : std::string("the smallest batch and fewest threads measured")) +
         "; speedup is against fp32 in the same run. Size MB: checkpoint file, 10<sup>6</sup> bytes. &Delta; pp: accuracy "
         "change against fp32 in percentage points; agreement: share of predictions equal to fp32's.</p>";
  return out;
}

std::string key_value_table(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::string out = "<table class=\"kv\"><tbody>";
  for (const auto& [k, v] : rows) {
    if (!v.empty()) out += "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>";
  }
  return out + "</tbody></table>";
}

std::string run_details_html(const json& run, const std::vector<result_row>& rows, std::size_t run_index) {
  using detail::number_at;
  using detail::string_at;
  std::string out;
  std::string name = string_at(run, {"experiment", "name"});
  out += "<h3>" + html_escape(name.empty() ? "run " + std::to_string(run_index + 1) : name) + "</h3>";
  std::vector<std::pair<std::string, std::string>> experiment{
      {"description", string_at(run, {"experiment", "description"})},
      {"config", string_at(run, {"experiment", "config_file"})},
      {"results folder", string_at(run, {"experiment", "output_dir"})},
      {"started", string_at(run, {"experiment", "started_at"})},
      {"finished", string_at(run, {"experiment", "finished_at"})},
      {"wall time", number_at(run, {"experiment", "wall_seconds"})
                        ? fixed(*number_at(run, {"experiment", "wall_seconds"}), 1) + " s" : ""}};
  if (const json* env = detail::find(run, {"environment"})) {
    std::string cpu = string_at(*env, {"cpu_model"});
    if (auto n = number_at(*env, {"logical_cpus"})) cpu += " (" + fixed(*n, 0) + " logical CPUs)";
    experiment.push_back({"CPU", cpu});
    std::string isa;
    if (const json* flags = detail::find(*env, {"isa"}); flags && flags->is_object()) {
      for (auto it = flags->begin(); it != flags->end(); ++it) {
        isa += (isa.empty() ? "" : ", ") + it.key() + " " +
               (it.value().is_boolean() ? (it.value().get<bool>() ? "yes" : "no") : it.value().dump());
      }
    }
    experiment.push_back({"ISA", isa});
    for (auto [title, key] : std::vector<std::pair<const char*, const char*>>{
             {"torch threads", "torch_threads"}, {"libtorch", "libtorch"}, {"oneDNN", "onednn"}, {"BLAS", "blas"},
             {"qexp", "qexp_version"},
             {"git commit", "git_commit"}, {"host", "hostname"}, {"OS", "os"}}) {
      experiment.push_back({title, string_at(*env, {key})});
    }
  }
  if (const json* model = detail::find(run, {"model"})) {
    std::string text = string_at(*model, {"path"});
    if (auto v = number_at(*model, {"linear_layers"})) text += "; " + fixed(*v, 0) + " Linear layers";
    if (auto v = number_at(*model, {"parameters"})) text += "; " + fixed(*v / 1e6, 2) + " M parameters";
    experiment.push_back({"model", text});
  }
  if (const json* data = detail::find(run, {"data"})) {
    std::string text = string_at(*data, {"path"});
    if (auto v = number_at(*data, {"sentences"})) text += "; " + fixed(*v, 0) + " sentences";
    if (auto v = number_at(*data, {"max_length"})) text += "; max length " + fixed(*v, 0);
    if (auto v = number_at(*data, {"mean_tokens"})) text += "; " + fixed(*v, 1) + " tokens on average";
    experiment.push_back({"data", text});
  }
  out += key_value_table(experiment);

  std::string latency;
  for (const auto& r : rows) {
    if (r.run_index != run_index) continue;
    for (const char* kind : {"probe", "dataset"}) {
      const json* list = detail::find(*r.result, {"latency", kind});
      if (!list || !list->is_array()) continue;
      bool dataset = std::string(kind) == "dataset";
      for (const auto& e : *list) {
        auto n = [&e](const char* key) { return number_at(e, {key}); };
        latency += "<tr>" + cell(r.label) + cell(kind) + cell(detail::latency_setting(e, dataset)) +
                   cell(dataset ? "-" : fixed(n("warmup"), 0) + " + " + fixed(n("iterations"), 0), true) +
                   cell(format_ms(n("p50_ms")), true) + cell(format_ms(n("p90_ms")), true) +
                   cell(format_ms(n("p99_ms")), true) + cell(format_ms(n("mean_ms")), true) +
                   cell(format_ms(n("stdev_ms")), true) + cell(fixed(n("throughput_per_s"), 1), true) +
                   cell(format_times(n("speedup_vs_fp32"), 2), true) + "</tr>";
      }
    }
  }
  if (!latency.empty()) {
    out += "<details><summary>All latency measurements</summary><table><thead><tr><th>scheme</th><th>input</th>"
           "<th>setting</th><th class=\"num\">warm-up + timed</th><th class=\"num\">p50 ms</th><th class=\"num\">p90 ms</th>"
           "<th class=\"num\">p99 ms</th><th class=\"num\">mean ms</th><th class=\"num\">stdev ms</th>"
           "<th class=\"num\">sequences/s</th><th class=\"num\">speedup</th></tr></thead><tbody>" +
           latency + "</tbody></table></details>";
  }
  std::vector<result_row> mine;
  for (const auto& r : rows) {
    if (r.run_index == run_index && detail::find(*r.result, {"size"})) mine.push_back(r);
  }
  if (!mine.empty()) {
    auto buckets = detail::breakdown_buckets(mine);
    out += "<details><summary>Checkpoint size breakdown</summary><table><thead><tr><th>scheme</th>"
           "<th class=\"num\">file bytes</th><th class=\"num\">ratio</th>";
    for (const auto& b : buckets) out += "<th class=\"num\">" + html_escape(b) + "</th>";
    out += "</tr></thead><tbody>";
    auto bytes = [](const std::optional<double>& v) { return v ? fixed(*v, 0) : std::string("-"); };
    for (const auto& r : mine) {
      out += "<tr>" + cell(r.label) + cell(bytes(r.size_bytes), true) + cell(format_times(r.size_ratio, 3), true);
      for (const auto& b : buckets) out += cell(bytes(number_at(*r.result, {"size", "breakdown", b.c_str()})), true);
      out += "</tr>";
    }
    out += "</tbody></table></details>";
  }
  if (const json* config = detail::find(run, {"experiment", "resolved_config"}); config && !config->is_null()) {
    out += "<details><summary>Resolved configuration</summary><pre>" + html_escape(config->dump(2)) + "</pre></details>";
  }
  return out;
}

struct latency_plot_key {
  int kind;  // 0 probe, 1 dataset
  double batch, threads;
  bool operator<(const latency_plot_key& o) const {
    return std::tie(kind, threads, batch) < std::tie(o.kind, o.threads, o.batch);
  }
};

}  // namespace

std::string report_html(const std::vector<json>& runs) {
  auto rows = detail::collect_rows(runs);
  std::vector<std::string> colours;
  std::size_t next_colour = 0;
  for (const auto& r : rows) colours.push_back(r.is_baseline ? baseline_colour : palette[next_colour++ % std::size(palette)]);

  std::set<std::string> names;
  for (const auto& run : runs) names.insert(detail::string_at(run, {"experiment", "name"}));
  std::string title;
  for (const auto& n : names) title += (title.empty() ? "" : ", ") + (n.empty() ? std::string("unnamed") : n);

  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    // No scripts, no fetches: the page stays inert even if some text escaped escaping.
                    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                    "<title>qexp results: " + html_escape(title) + "</title><style>" + page_style + "</style></head><body><main>";
  out += "<h1>qexp results: " + html_escape(title) + "</h1>";
  for (const auto& run : runs) {
    std::string line;
    for (const auto& part : {detail::string_at(run, {"experiment", "description"}), detail::string_at(run, {"experiment", "started_at"}),
                             detail::string_at(run, {"environment", "cpu_model"})}) {
      if (!part.empty()) line += (line.empty() ? "" : " \xC2\xB7 ") + part;
    }
    if (!line.empty()) out += "<p class=\"meta\">" + html_escape(line) + "</p>";
    if (const json* complete = detail::find(run, {"experiment", "complete"}); complete && *complete == false) {
      out += "<p class=\"warning\">Incomplete run" +
             (detail::string_at(run, {"experiment", "name"}).empty() ? "" : " (" + html_escape(detail::string_at(run, {"experiment", "name"})) + ")") +
             ": results.json was written before the run finished (still running, or interrupted); results may be missing.</p>";
    }
  }

  out += "<section class=\"card\" id=\"summary\"><h2>Summary</h2>";
  std::vector<std::string> all_layers;
  for (const auto& r : rows) {
    if (const json* layers = detail::find(*r.result, {"layer_error"}); layers && layers->is_array()) {
      for (const auto& l : *layers) all_layers.push_back(detail::string_at(l, {"layer"}));
    }
  }
  out += rows.empty() ? "<p>No results.</p>" : summary_html(rows, colours, layer_name_prefix(all_layers));
  out += "</section>";

  // Accuracy against size and latency.
  std::vector<scatter_point> by_size, by_latency;
  std::vector<std::string> missing;
  std::set<std::string> settings;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (!r.ok) continue;
    if (!r.accuracy) {
      missing.push_back(r.display_name() + " (no accuracy)");
      continue;
    }
    scatter_point p;
    p.label = r.display_name();
    p.colour = colours[i];
    p.baseline = r.is_baseline;
    p.y = *r.accuracy * 100;
    if (r.size_bytes) {
      p.x = *r.size_bytes / 1e6;
      p.tooltip = r.display_name() + ": " + fixed(p.x, 2) + " MB, accuracy " + fixed(p.y, 2) + "%";
      by_size.push_back(p);
    } else {
      missing.push_back(r.display_name() + " (no size)");
    }
    if (r.p50_ms) {
      p.x = *r.p50_ms;
      p.tooltip = r.display_name() + ": p50 " + fixed(p.x, 3) + " ms, accuracy " + fixed(p.y, 2) + "%";
      by_latency.push_back(p);
      settings.insert(detail::latency_setting(*r.headline_probe, false));
    } else {
      missing.push_back(r.display_name() + " (no latency)");
    }
  }
  out += "<section class=\"card\" id=\"tradeoff\"><h2>Accuracy against size and latency</h2>";
  if (by_size.empty() && by_latency.empty()) {
    out += "<p class=\"note\">No result has both an accuracy and a size or latency to plot.</p>";
  } else {
    out += "<div class=\"plots\">";
    if (!by_size.empty()) {
      out += scatter_svg("accuracy-vs-size", "Accuracy against checkpoint size", "checkpoint size, MB", "SST-2 dev accuracy, %",
                         by_size, 1.0);
    }
    if (!by_latency.empty()) {
      std::string latency_title = "p50 latency, ms" + (settings.size() == 1 ? " (" + *settings.begin() + ")" : "");
      out += scatter_svg("accuracy-vs-latency", "Accuracy against latency", latency_title, "SST-2 dev accuracy, %",
                         by_latency, 0.1);
    }
    out += "</div>";
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : "; ") + m;
    out += "<p class=\"note\">Not plotted: " + html_escape(list) + ".</p>";
  }
  out += "<p class=\"note\">The diamond is the fp32 baseline; the dashed line joins the schemes no other scheme beats on "
         "both axes. Failed schemes are not plotted.</p></section>";

  // Latency distributions, one plot per input and setting.
  std::map<latency_plot_key, std::vector<distribution_row>> distributions;
  std::map<latency_plot_key, std::string> setting_text;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (!r.ok) continue;
    for (int kind = 0; kind < 2; ++kind) {
      const json* list = detail::find(*r.result, {"latency", kind == 0 ? "probe" : "dataset"});
      if (!list || !list->is_array()) continue;
      for (const auto& e : *list) {
        const json* samples = detail::find(e, {"samples_ms"});
        if (!samples || !samples->is_array()) continue;
        distribution_row d;
        d.label = r.display_name();
        d.colour = colours[i];
        for (const auto& s : *samples) {
          if (s.is_number() && std::isfinite(s.get<double>())) d.samples.push_back(s.get<double>());
        }
        if (d.samples.empty()) continue;
        std::sort(d.samples.begin(), d.samples.end());
        d.p50 = detail::number_at(e, {"p50_ms"});
        d.p99 = detail::number_at(e, {"p99_ms"});
        latency_plot_key key{kind, detail::number_at(e, {"batch_size"}).value_or(0), detail::number_at(e, {"threads"}).value_or(0)};
        distributions[key].push_back(std::move(d));
        setting_text.emplace(key, detail::latency_setting(e, kind == 1));
      }
    }
  }
  out += "<section class=\"card\" id=\"latency\"><h2>Latency distributions</h2>";
  if (distributions.empty()) out += "<p class=\"note\">No latency samples were recorded.</p>";
  for (const auto& [key, list] : distributions) {
    std::string id = std::string(key.kind == 0 ? "latency-probe" : "latency-dataset") + "-b" + fixed(key.batch, 0) + "-t" +
                     fixed(key.threads, 0);
    std::string plot_title = std::string(key.kind == 0 ? "Probe sentence" : "Dataset sentences") + ": " + setting_text[key];
    out += distribution_svg(id, plot_title, list);
  }
  out += "<p class=\"note\">Box: quartiles and median; whiskers: the farthest samples within 1.5 IQR of the box; dots: "
         "every timed call (dataset: one call per sentence, so lengths vary).</p></section>";

  // Per-layer error.
  std::vector<layer_series> series;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const json* layers = r.ok ? detail::find(*r.result, {"layer_error"}) : nullptr;
    if (!layers || !layers->is_array()) continue;
    layer_series s;
    s.label = r.display_name();
    s.colour = colours[i];
    for (const auto& l : *layers) {
      auto sqnr = detail::number_at(l, {"sqnr_db"});
      auto name = detail::string_at(l, {"layer"});
      if (sqnr && !name.empty()) s.by_layer[name] = {*sqnr, detail::number_at(l, {"nmse"})};
    }
    if (!s.by_layer.empty()) series.push_back(std::move(s));
  }
  out += "<section class=\"card\" id=\"layers\"><h2>Per-layer error</h2>";
  if (series.empty()) {
    out += "<p class=\"note\">No per-layer error was recorded.</p>";
  } else {
    std::string caption;
    out += sqnr_svg("layer-sqnr", series, &caption);
    out += "<p class=\"note\">" + html_escape(caption) +
           "SQNR = 10 log<sub>10</sub>(signal power / error power) of each quantized Linear's output against "
           "the fp32 layer's, on dev batches fed through both models; about 6 dB per bit of precision.</p>";
  }
  out += "</section>";

  out += "<section class=\"card\" id=\"runs\"><h2>Runs</h2>";
  for (std::size_t r = 0; r < runs.size(); ++r) out += run_details_html(runs[r], rows, r);
  out += "</section>";
  out += std::string("<footer>Written by qexp ") + version_string() +
         " from results.json (schema " + results_schema_id + "). Plots are inline SVG; the page needs no scripts and "
         "no network.</footer></main></body></html>\n";
  return out;
}

}  // namespace qexp

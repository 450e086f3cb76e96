// Inline SVG plots for report.html: no scripts, fixed sizes, labels kept apart (svg_plots.h).
#include "svg_plots.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "results_report.h"

namespace qexp::plots {

using detail::fixed;
using detail::html_escape;

namespace {


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

double quantile(const std::vector<double>& sorted, double q) {
  double pos = q * (sorted.size() - 1);
  auto i = static_cast<std::size_t>(std::floor(pos));
  if (i + 1 >= sorted.size()) return sorted.back();
  return sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Scatter plot with the Pareto frontier (lower x and higher y are better)


std::string scatter_svg(const std::string& id, const std::string& title, const std::string& x_title,
                        const std::string& y_title, const std::vector<scatter_point>& points, double x_min_span,
                        double y_min_span) {
  const double width = 520, height = 420, left = 70, right = width - 24, top = 40, bottom = height - 86;
  double x_min = 1e300, x_max = -1e300, y_min = 1e300, y_max = -1e300;
  for (const auto& p : points) {
    x_min = std::min(x_min, p.x);
    x_max = std::max(x_max, p.x);
    y_min = std::min(y_min, p.y);
    y_max = std::max(y_max, p.y);
  }
  axis x = nice_axis(x_min, x_max, true, x_min_span);
  // Accuracy differences are small; at least one percentage point of span (the default) keeps
  // noise from looking like a cliff.
  axis y = nice_axis(y_min, y_max, false, y_min_span);
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
    if (text.empty()) continue;
    const candidate* chosen = nullptr;
    rect chosen_box{};
    bool clear_spot = false;
    for (const auto& c : candidates) {
      double x0 = std::string(c.anchor) == "start" ? c.x : std::string(c.anchor) == "end" ? c.x - w : c.x - w / 2;
      rect box{x0 - 1, c.y - 11, x0 + w + 1, c.y + 3};
      bool inside = box.x0 >= left && box.x1 <= right && box.y0 >= top && box.y1 <= bottom;
      if (!inside) continue;
      bool clear = std::none_of(taken.begin(), taken.end(), [&](const rect& r) { return r.overlaps(box); });
      if (clear || !chosen) {
        chosen = &c;
        chosen_box = box;
        clear_spot = clear;
        if (clear) break;
      }
    }
    // Among many points a label that would cover another is left to the tooltip.
    if (!clear_spot && p.optional_label) continue;
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

std::string bar_chart_svg(const std::string& id, const std::string& title, const std::string& x_title,
                          const std::vector<bar_row>& rows) {
  const double width = 1100, row_height = 18, top = 44;
  std::size_t longest = 0, longest_note = 0;
  for (const auto& r : rows) {
    longest = std::max(longest, display_width(shorten(r.label, 48)));
    longest_note = std::max(longest_note, display_width(r.note));
  }
  const double left = std::clamp(longest * 6.6 + 20, 110.0, 360.0);
  const double right = width - std::clamp(longest_note * 6.6 + 16, 30.0, 260.0);
  const double bottom = top + row_height * rows.size(), height = bottom + 50;
  double lo = 0, hi = 0;
  for (const auto& r : rows) {
    lo = std::min({lo, r.value, r.interval ? r.interval->first : 0.0});
    hi = std::max({hi, r.value, r.interval ? r.interval->second : 0.0});
  }
  const axis x = nice_axis(lo, hi, true, 1e-9);
  const axis no_y;
  const auto px = [&](double v) { return x.map(v, left, right); };
  std::string out = svg_open(id, width, height, title);
  for (std::size_t i = 0; i < rows.size(); i += 2)
    out += "<rect class=\"band\" x=\"" + num(left) + "\" y=\"" + num(top + row_height * i) + "\" width=\"" +
           num(right - left) + "\" height=\"" + num(row_height) + "\"/>";
  out += axes_svg(x, no_y, left, right, top, bottom, x_title, "");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const double y = top + row_height * i, mid = y + row_height / 2;
    out += svg_text(left - 8, mid + 4, shorten(r.label, 48), "class=\"row-label\" text-anchor=\"end\"");
    const double x0 = std::min(px(0), px(r.value)), x1 = std::max(px(0), px(r.value));
    out += "<rect class=\"bar\" fill=\"" + (r.colour.empty() ? std::string(palette[0]) : r.colour) + "\" x=\"" +
           num(x0) + "\" y=\"" + num(y + 3) + "\" width=\"" + num(std::max(0.5, x1 - x0)) + "\" height=\"" +
           num(row_height - 6) + "\"><title>" + html_escape(r.tooltip) + "</title></rect>";
    if (r.interval) {
      const double a = px(r.interval->first), b = px(r.interval->second);
      out += "<path class=\"whisker\" stroke=\"#1f2328\" fill=\"none\" d=\"M" + num(a) + " " + num(mid) + "H" + num(b) +
             "M" + num(a) + " " + num(mid - 4) + "V" + num(mid + 4) + "M" + num(b) + " " + num(mid - 4) + "V" +
             num(mid + 4) + "\"/>";
    }
    if (!r.note.empty()) out += svg_text(right + 8, mid + 4, r.note, "class=\"tick\"");
  }
  return out + "</svg>";
}

}  // namespace qexp::plots

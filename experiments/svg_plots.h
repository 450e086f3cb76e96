// The inline SVG plots of report.html, apart from the page that places them: each takes plain
// rows and returns one <svg> element with fixed pixel sizes, labels kept from overlapping, and a
// <title> per mark as its tooltip (the page has no scripts).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qexp::plots {

// Tableau 10: distinguishable, and readable on white. The baseline is always grey.
inline constexpr const char* palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                          "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#17becf"};
inline constexpr const char* baseline_colour = "#555555";

// Scatter plot with the Pareto frontier (lower x and higher y are better).
struct scatter_point {
  std::string label, tooltip, colour;
  double x = 0, y = 0;
  bool baseline = false;
  bool optional_label = false;  // drawn only where it covers no other mark or label
};
std::string scatter_svg(const std::string& id, const std::string& title, const std::string& x_title,
                        const std::string& y_title, const std::vector<scatter_point>& points, double x_min_span,
                        double y_min_span = 1.0);

// Latency distributions: box plot and strip of samples per row.
struct distribution_row {
  std::string label, colour;
  std::vector<double> samples;  // sorted
  std::optional<double> p50, p99;
};
std::string distribution_svg(const std::string& id, const std::string& title, const std::vector<distribution_row>& rows);

// Per-layer SQNR bars, one series per scheme.
struct layer_series {
  std::string label, colour;
  std::map<std::string, std::pair<double, std::optional<double>>> by_layer;  // sqnr dB, nmse
};
// The prefix every nested layer name shares ("distilbert.transformer."), dropped on screen.
std::string layer_name_prefix(const std::vector<std::string>& all_layers);
std::string sqnr_svg(const std::string& id, const std::vector<layer_series>& series, std::string* caption);

// Horizontal bars, one row per entry in the order given (e.g. a ranking), each with an optional
// interval whisker (a 95% confidence interval) and a note written after the row.
struct bar_row {
  std::string label, tooltip, note, colour;
  double value = 0;
  std::optional<std::pair<double, double>> interval;
};
std::string bar_chart_svg(const std::string& id, const std::string& title, const std::string& x_title,
                          const std::vector<bar_row>& rows);

}  // namespace qexp::plots

// layout_chart: checks a chart's numbers and places its parts (title, plot area, axes, ticks,
// legend) in its width x height. Sizes in pixels; text sizes: title 15, labels 12, ticks and
// legend 11.
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "normnet/chart.h"
#include "normnet/error.h"

namespace normnet {

namespace {

constexpr double kTitleSize = 15, kLabelSize = 12, kTickSize = 11, kLegendSize = 11;
constexpr double kLegendRow = 17, kSwatch = 18, kPad = 8;

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
};

void check_values(const Chart& c, const Series& s, const char* what, const std::vector<double>& v,
                  AxisScale scale) {
  for (size_t i = 0; i < v.size(); ++i) {
    check(std::isfinite(v[i]), "chart '", c.name, "', series '", s.name, "': ", what, "[", i, "] is not finite (",
          v[i], ")");
    check(scale != AxisScale::log || v[i] > 0, "chart '", c.name, "', series '", s.name, "': ", what, "[", i,
          "] = ", v[i], " cannot be shown on a log axis (it must be positive)");
  }
}

Ticks axis_ticks(const Axis& a, Range r, double length_px, bool bars) {
  if (r.empty()) r = a.scale == AxisScale::log ? Range{1, 10} : Range{0, 1};
  if (a.scale == AxisScale::log) return log_ticks(r.lo, r.hi);
  if (a.include_zero || bars) r.add(0);
  const int target = std::clamp(static_cast<int>(length_px / 70), 3, 10);
  return linear_ticks(r.lo, r.hi, target, a.integer ? 1.0 : 0.0);
}

}  // namespace

ChartLayout layout_chart(const Chart& c) {
  check(c.width >= 120 && c.height >= 100, "chart '", c.name, "': ", c.width, "x", c.height,
        " pixels is too small (at least 120x100)");
  check(c.width <= 8192 && c.height <= 8192, "chart '", c.name, "': ", c.width, "x", c.height,
        " pixels is too large (at most 8192x8192)");
  const bool categorical = !c.categories.empty();
  check(!categorical || c.x.scale == AxisScale::linear, "chart '", c.name, "': a category axis cannot be a log axis");
  ChartLayout L;
  Range xr, yr;
  bool bars = false;
  size_t next_color = 0;
  for (const Series& s : c.series) {
    check(s.y.size() == s.x.size(), "chart '", c.name, "', series '", s.name, "': ", s.y.size(), " y values for ",
          s.x.size(), " x values");
    check_values(c, s, "x", s.x, c.x.scale);
    check_values(c, s, "y", s.y, c.y.scale);
    for (const Band& b : s.bands) {
      check(b.lo.size() == s.x.size() && b.hi.size() == s.x.size(), "chart '", c.name, "', series '", s.name,
            "': band '", b.name, "' has ", b.lo.size(), " lower and ", b.hi.size(), " upper values for ", s.x.size(),
            " x values");
      check_values(c, s, "band lower", b.lo, c.y.scale);
      check_values(c, s, "band upper", b.hi, c.y.scale);
      for (double v : b.lo) yr.add(v);
      for (double v : b.hi) yr.add(v);
    }
    for (double v : s.x) {
      if (categorical)
        check(v >= 0 && v < static_cast<double>(c.categories.size()) && v == std::floor(v), "chart '", c.name,
              "', series '", s.name, "': x = ", v, " is not a category index (0..", c.categories.size() - 1, ")");
      xr.add(v);
    }
    for (double v : s.y) yr.add(v);
    if (s.style == SeriesStyle::bars) {
      check(categorical, "chart '", c.name, "', series '", s.name, "': bars need a category axis (categories)");
      bars = true;
    }
    std::string color = s.color;
    if (color.empty()) color = chart_palette()[next_color++ % chart_palette().size()];
    L.colors.push_back(color);
  }

  // The legend: one entry per named series and per distinct named band, wrapped in rows.
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 0; i < c.series.size(); ++i) {
    const Series& s = c.series[i];
    if (!s.name.empty()) L.legend.push_back({s.name, L.colors[i], false, {}});
    for (const Band& b : s.bands)
      if (!b.name.empty() && seen.insert({b.name, L.colors[i]}).second)
        L.legend.push_back({b.name, L.colors[i], true, {}});
  }
  const double avail = c.width - 2 * kPad;
  double x = kPad, row = 0;
  for (LegendEntry& e : L.legend) {
    const double w = kSwatch + 6 + text_width(e.text, kLegendSize) + 14;
    if (x > kPad && x + w > kPad + avail) {
      x = kPad;
      row += 1;
    }
    e.box = {x, row * kLegendRow, w, kLegendRow};
    x += w;
  }
  const double legend_h = L.legend.empty() ? 0 : (row + 1) * kLegendRow;
  const double legend_y = c.height - 4 - legend_h;
  for (LegendEntry& e : L.legend) e.box.y += legend_y;
  L.legend_box = {kPad, legend_y, avail, legend_h};

  // Vertical: title, plot, tick labels, axis label, legend.
  const double plot_top = kTitleSize + 18;
  const double xlabel_base = legend_y - 6;
  const double plot_bottom = xlabel_base - kLabelSize - 6 - kTickSize - 8;
  const double plot_h = plot_bottom - plot_top;
  check(plot_h >= 30, "chart '", c.name, "': ", c.height, " pixels high leaves no room for the plot (legend of ",
        L.legend.size(), " entries)");
  L.y_ticks = axis_ticks(c.y, yr, plot_h, bars);
  double tick_w = 0;
  for (const std::string& s : L.y_ticks.labels) tick_w = std::max(tick_w, text_width(s, kTickSize));
  const double plot_left = kPad + kLabelSize + 8 + tick_w + 8;
  const double plot_right = c.width - 18;
  check(plot_right - plot_left >= 30, "chart '", c.name, "': ", c.width, " pixels wide leaves no room for the plot");
  L.plot = {plot_left, plot_top, plot_right - plot_left, plot_h};

  if (categorical) {
    L.x_ticks.range_lo = -0.5;
    L.x_ticks.range_hi = static_cast<double>(c.categories.size()) - 0.5;
    for (size_t i = 0; i < c.categories.size(); ++i) {
      L.x_ticks.values.push_back(static_cast<double>(i));
      L.x_ticks.labels.push_back(c.categories[i]);
    }
  } else {
    L.x_ticks = axis_ticks(c.x, xr, L.plot.w, false);
  }
  L.x = {c.x.scale, L.x_ticks.range_lo, L.x_ticks.range_hi, L.plot.x, L.plot.x + L.plot.w};
  L.y = {c.y.scale, L.y_ticks.range_lo, L.y_ticks.range_hi, L.plot.y + L.plot.h, L.plot.y};
  return L;
}

}  // namespace normnet

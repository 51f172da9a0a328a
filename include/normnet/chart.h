// Charts: one drawing description, rendered as inline SVG text or as a PNG (cairo).
//
// Represents: a chart of one or more series over a numeric x axis (epochs, steps, a learning
// rate on a log axis) or over named categories (bars). A series is a line and/or markers at
// its points, with any number of bands around it: mean with min/max or +-std over seeds, or
// percentile bands (5-95, 25-75) around a median line for a distribution over time. Every
// chart has a title, axis labels with tick values and a legend.
// Requires: finite numbers; on a log axis, positive ones; a band's lo/hi as long as x.
// Ensures: render_svg and render_png draw the same geometry (layout_chart) through one drawing
// routine, so the two outputs differ only in how the backend paints. The SVG is self-contained
// (real <text> elements, no script, no external font or URL).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace normnet {

enum class AxisScale { linear, log };

struct Axis {
  std::string label;
  AxisScale scale = AxisScale::linear;
  bool include_zero = false;  // linear only: stretch the range to contain 0 (bars always do)
  bool integer = false;       // linear only: ticks at whole numbers (epochs, steps)
};

struct Band {  // a shaded area between lo[i] and hi[i] at x[i] of its series
  std::string name;  // shown in the legend when not empty ("min-max", "5-95%")
  std::vector<double> lo, hi;
};

enum class SeriesStyle { line, markers, line_markers, bars };

struct Series {
  std::string name;
  std::vector<double> x, y;   // for a category chart x holds category indices 0..n-1
  std::vector<Band> bands;    // drawn first, widest first, lighter than the line
  SeriesStyle style = SeriesStyle::line;
  std::string color;          // "#rrggbb"; empty: the palette's next colour
};

struct Chart {
  std::string name;   // file name stem of its PNG (letters, digits, '-', '_', '.')
  std::string title;
  Axis x, y;
  std::vector<std::string> categories;  // not empty: a category x axis (bars or markers)
  std::vector<Series> series;
  int width = 640, height = 400;  // pixels
};

// The palette (colour-blind safe), as "#rrggbb"; series without a colour take them in order.
const std::vector<std::string>& chart_palette();

// Tick values of an axis over [lo, hi]: about `target` "nice" values (1, 2, 5 x 10^k steps)
// on a linear axis, powers of ten (with 2 and 5 between when there are few decades) on a log
// axis. The axis range is widened to the outer ticks (`range_lo`, `range_hi`).
struct Ticks {
  std::vector<double> values;
  std::vector<std::string> labels;
  double range_lo = 0, range_hi = 1;
};
Ticks linear_ticks(double lo, double hi, int target = 6, double min_step = 0);
Ticks log_ticks(double lo, double hi);
std::string tick_label(double v);  // short: "0.5", "1e-05", "2000", "1.2e+04"

// Maps data values to pixels along one axis: lo -> px_lo, hi -> px_hi (px_hi < px_lo for y).
struct AxisMap {
  AxisScale scale = AxisScale::linear;
  double lo = 0, hi = 1, px_lo = 0, px_hi = 1;
  double to_px(double v) const;
};

struct Rect {
  double x = 0, y = 0, w = 0, h = 0;
};

struct LegendEntry {
  std::string text, color;
  bool band = false;   // a swatch for a band rather than a line
  Rect box;            // where its swatch and text go
};

// Where everything goes: the plot area, the axes' mappings and ticks, the legend.
struct ChartLayout {
  Rect plot;
  AxisMap x, y;
  Ticks x_ticks, y_ticks;
  std::vector<LegendEntry> legend;
  Rect legend_box;
  std::vector<std::string> colors;  // per series
};
// Throws naming the chart and series when a number is not finite, not positive on a log axis,
// or a band or y has a different length than x.
ChartLayout layout_chart(const Chart& c);

// Width of a text in pixels at `size` as the layout assumes (DejaVu Sans-like metrics).
double text_width(const std::string& s, double size);

std::string render_svg(const Chart& c);               // "<svg ...>...</svg>"
std::vector<uint8_t> render_png(const Chart& c);      // PNG file bytes, width x height, RGB(A)
bool png_rendering_available();                        // false: built without cairo

}  // namespace normnet

// The drawing surface charts are drawn on, with two backends: SVG text and cairo (PNG).
//
// Represents: a width x height pixel area, origin top left, y down. Colours are "#rrggbb"
// with a separate opacity. Text is placed at (x, y) on its baseline with an anchor (start,
// middle, end) and may be rotated by -90 degrees (a vertical axis label).
// Ensures: the chart code (chart_draw.cpp) draws through this interface only, so the SVG and
// the PNG of a chart come from the same calls.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace normnet::report_detail {

using Points = std::vector<std::pair<double, double>>;

struct Stroke {
  std::string color = "#000000";
  double width = 1.0;
  double opacity = 1.0;
  bool dashed = false;
};

struct Fill {
  std::string color = "#000000";
  double opacity = 1.0;
};

enum class Anchor { start, middle, end };

struct TextStyle {
  double size = 12;
  Anchor anchor = Anchor::start;
  bool bold = false;
  bool vertical = false;  // rotated -90 degrees about (x, y)
  std::string color = "#222222";
};

class Canvas {
 public:
  virtual ~Canvas() = default;
  virtual void polyline(const Points& p, const Stroke& s) = 0;
  virtual void polygon(const Points& p, const Fill& f) = 0;
  virtual void rect(double x, double y, double w, double h, const Fill& f) = 0;
  virtual void circle(double x, double y, double r, const Fill& f) = 0;
  virtual void text(double x, double y, const std::string& s, const TextStyle& t) = 0;
  void line(double x1, double y1, double x2, double y2, const Stroke& s) { polyline({{x1, y1}, {x2, y2}}, s); }
};

// "#rrggbb" -> components in [0, 1]; throws naming the colour when malformed.
void parse_color(const std::string& c, double* r, double* g, double* b);

}  // namespace normnet::report_detail

namespace normnet {
struct Chart;
struct ChartLayout;
}  // namespace normnet

namespace normnet::report_detail {
// Draws the chart (background, grid, bands, lines, markers, bars, axes, ticks, labels, title,
// legend) as `layout` places it.
void draw_chart(Canvas& canvas, const Chart& c, const ChartLayout& layout);
// Text escaped for XML/HTML content and attribute values.
std::string xml_escape(const std::string& s);
}  // namespace normnet::report_detail

// draw_chart: paints a laid-out chart on a Canvas (the one drawing routine behind both the SVG
// and the PNG). Order: background, grid, bands, bars, lines, markers, axes, ticks, labels,
// title, legend.
#include <algorithm>
#include <numeric>

#include "normnet/chart.h"
#include "report/canvas.h"

namespace normnet::report_detail {

namespace {

constexpr double kBandOpacity = 0.18;

double band_extent(const Band& b) {
  double s = 0;
  for (size_t i = 0; i < b.lo.size(); ++i) s += b.hi[i] - b.lo[i];
  return s;
}

// Bands widest first, so narrower ones paint over them (and look darker where they overlap).
std::vector<const Band*> bands_widest_first(const Series& s) {
  std::vector<const Band*> out;
  for (const Band& b : s.bands) out.push_back(&b);
  std::stable_sort(out.begin(), out.end(), [](const Band* a, const Band* b) { return band_extent(*a) > band_extent(*b); });
  return out;
}

// Horizontal centre of point i of series `si` (bars of several series sit side by side).
double point_x(const Chart& c, const ChartLayout& L, size_t si, size_t i, double* bar_w) {
  const double x = L.x.to_px(c.series[si].x[i]);
  if (c.series[si].style != SeriesStyle::bars) return x;
  size_t n_bars = 0, k = 0;
  for (size_t j = 0; j < c.series.size(); ++j)
    if (c.series[j].style == SeriesStyle::bars) {
      if (j == si) k = n_bars;
      ++n_bars;
    }
  const double slot = L.plot.w / std::max<size_t>(1, c.categories.size()) * 0.8;
  *bar_w = slot / static_cast<double>(n_bars);
  return x - slot / 2 + (static_cast<double>(k) + 0.5) * *bar_w;
}

}  // namespace

void draw_chart(Canvas& cv, const Chart& c, const ChartLayout& L) {
  const Rect& P = L.plot;
  cv.rect(0, 0, c.width, c.height, {"#ffffff", 1.0});

  // Grid at the ticks.
  const Stroke grid{"#e3e3e3", 1.0, 1.0, false};
  for (double v : L.y_ticks.values) {
    const double y = L.y.to_px(v);
    cv.line(P.x, y, P.x + P.w, y, grid);
  }
  if (c.categories.empty())
    for (double v : L.x_ticks.values) {
      const double x = L.x.to_px(v);
      cv.line(x, P.y, x, P.y + P.h, grid);
    }

  // Bands: shaded areas for lines, whiskers for bars and markers.
  for (size_t si = 0; si < c.series.size(); ++si) {
    const Series& s = c.series[si];
    const std::string& color = L.colors[si];
    for (const Band* b : bands_widest_first(s)) {
      if (s.style == SeriesStyle::line || s.style == SeriesStyle::line_markers) {
        if (s.x.size() >= 2) {
          Points poly;
          for (size_t i = 0; i < s.x.size(); ++i) poly.push_back({L.x.to_px(s.x[i]), L.y.to_px(b->hi[i])});
          for (size_t i = s.x.size(); i-- > 0;) poly.push_back({L.x.to_px(s.x[i]), L.y.to_px(b->lo[i])});
          cv.polygon(poly, {color, kBandOpacity});
          continue;
        }
      }
      for (size_t i = 0; i < s.x.size(); ++i) {
        double bar_w = 8;
        const double x = point_x(c, L, si, i, &bar_w);
        const double cap = std::min(4.0, bar_w / 3);
        const double lo = L.y.to_px(b->lo[i]), hi = L.y.to_px(b->hi[i]);
        const Stroke whisker{s.style == SeriesStyle::bars ? "#333333" : color, 1.2, 0.8, false};
        cv.line(x, lo, x, hi, whisker);
        cv.line(x - cap, lo, x + cap, lo, whisker);
        cv.line(x - cap, hi, x + cap, hi, whisker);
      }
    }
  }

  // Bars (behind whiskers would hide them: whiskers are drawn again on top below).
  const double base = L.y.to_px(c.y.scale == AxisScale::log ? L.y.lo : std::clamp(0.0, L.y.lo, L.y.hi));
  for (size_t si = 0; si < c.series.size(); ++si) {
    const Series& s = c.series[si];
    if (s.style != SeriesStyle::bars) continue;
    for (size_t i = 0; i < s.x.size(); ++i) {
      double bar_w = 8;
      const double x = point_x(c, L, si, i, &bar_w);
      const double y = L.y.to_px(s.y[i]);
      cv.rect(x - bar_w * 0.45, std::min(y, base), bar_w * 0.9, std::abs(base - y), {L.colors[si], 0.85});
    }
    for (const Band* b : bands_widest_first(s))
      for (size_t i = 0; i < s.x.size(); ++i) {
        double bar_w = 8;
        const double x = point_x(c, L, si, i, &bar_w);
        const Stroke whisker{"#333333", 1.2, 1.0, false};
        cv.line(x, L.y.to_px(b->lo[i]), x, L.y.to_px(b->hi[i]), whisker);
      }
  }

  // Lines and markers.
  for (size_t si = 0; si < c.series.size(); ++si) {
    const Series& s = c.series[si];
    const bool line = s.style == SeriesStyle::line || s.style == SeriesStyle::line_markers;
    const bool markers = s.style == SeriesStyle::markers || s.style == SeriesStyle::line_markers ||
                         (s.style == SeriesStyle::line && s.x.size() == 1);
    if (line) {
      Points pts;
      for (size_t i = 0; i < s.x.size(); ++i) pts.push_back({L.x.to_px(s.x[i]), L.y.to_px(s.y[i])});
      cv.polyline(pts, {L.colors[si], 2.0, 1.0, false});
    }
    if (markers)
      for (size_t i = 0; i < s.x.size(); ++i) {
        double bar_w = 8;
        cv.circle(point_x(c, L, si, i, &bar_w), L.y.to_px(s.y[i]), 3.2, {L.colors[si], 1.0});
      }
  }

  // Axes, ticks and their labels.
  const Stroke axis{"#555555", 1.0, 1.0, false};
  cv.line(P.x, P.y + P.h, P.x + P.w, P.y + P.h, axis);
  cv.line(P.x, P.y, P.x, P.y + P.h, axis);
  TextStyle tick{11, Anchor::end, false, false, "#333333"};
  for (size_t i = 0; i < L.y_ticks.values.size(); ++i) {
    const double y = L.y.to_px(L.y_ticks.values[i]);
    cv.line(P.x - 4, y, P.x, y, axis);
    cv.text(P.x - 6, y + 4, L.y_ticks.labels[i], tick);
  }
  tick.anchor = Anchor::middle;
  for (size_t i = 0; i < L.x_ticks.values.size(); ++i) {
    const double x = L.x.to_px(L.x_ticks.values[i]);
    cv.line(x, P.y + P.h, x, P.y + P.h + 4, axis);
    cv.text(x, P.y + P.h + 16, L.x_ticks.labels[i], tick);
  }
  cv.text(P.x + P.w / 2, L.legend_box.y - 6, c.x.label, {12, Anchor::middle, false, false, "#222222"});
  cv.text(8 + 12, P.y + P.h / 2, c.y.label, {12, Anchor::middle, false, true, "#222222"});
  cv.text(c.width / 2.0, 22, c.title, {15, Anchor::middle, true, false, "#111111"});

  // Legend.
  for (const LegendEntry& e : L.legend) {
    const double mid = e.box.y + e.box.h / 2;
    if (e.band) {
      cv.rect(e.box.x, mid - 5, 18, 10, {e.color, kBandOpacity * 1.6});
    } else {
      cv.line(e.box.x, mid, e.box.x + 18, mid, {e.color, 2.5, 1.0, false});
      cv.circle(e.box.x + 9, mid, 3.0, {e.color, 1.0});
    }
    cv.text(e.box.x + 24, mid + 4, e.text, {11, Anchor::start, false, false, "#222222"});
  }
}

}  // namespace normnet::report_detail

// Axis ticks, tick labels, the data-to-pixel mapping, the palette and the text metrics the
// chart layout assumes.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "normnet/chart.h"
#include "normnet/error.h"

namespace normnet {

const std::vector<std::string>& chart_palette() {
  // Okabe and Ito's colour-blind safe colours (yellow left out: too light on white), then grey.
  static const std::vector<std::string> p = {"#0072b2", "#d55e00", "#009e73", "#cc79a7",
                                             "#e69f00", "#56b4e9", "#000000", "#999999"};
  return p;
}

std::string tick_label(double v) {
  if (v == 0) return "0";  // also -0
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

Ticks linear_ticks(double lo, double hi, int target, double min_step) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "linear_ticks: bad range [", lo, ", ", hi, "]");
  if (hi == lo) {  // one value: a range around it
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  target = std::max(target, 2);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 5.0})
    if (m * mag >= raw * 0.999) {
      step = m * mag;
      break;
    }
  if (min_step > 0) step = std::max(step, min_step);
  Ticks t;
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  t.range_lo = first * step;
  t.range_hi = last * step;
  for (double k = first; k <= last + 0.5; k += 1) {
    double v = k * step;
    if (std::abs(v) < step * 1e-9) v = 0;
    t.values.push_back(v);
    t.labels.push_back(tick_label(v));
  }
  return t;
}

Ticks log_ticks(double lo, double hi) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo <= hi, "log_ticks: bad range [", lo, ", ", hi,
        "] (a log axis needs positive values)");
  int d_lo = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
  int d_hi = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  if (d_hi <= d_lo) d_hi = d_lo + 1;
  Ticks t;
  t.range_lo = std::pow(10.0, d_lo);
  t.range_hi = std::pow(10.0, d_hi);
  const bool fine = d_hi - d_lo <= 2;  // few decades: 1, 2, 5 in each
  for (int d = d_lo; d <= d_hi; ++d) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && (!fine || d == d_hi)) continue;
      const double v = m * std::pow(10.0, d);
      t.values.push_back(v);
      t.labels.push_back(tick_label(v));
    }
  }
  return t;
}

double AxisMap::to_px(double v) const {
  double f;
  if (scale == AxisScale::log) f = (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
  else f = (v - lo) / (hi - lo);
  return px_lo + f * (px_hi - px_lo);
}

double text_width(const std::string& s, double size) {
  // Advance widths of DejaVu Sans in em, by class of character; close enough for layout.
  double em = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) == 0x80) continue;  // UTF-8 continuation byte
    if (c >= 0x80) em += 0.65;
    else if (c == ' ' || c == '.' || c == ',' || c == ':' || c == ';' || c == '\'' || c == '!' || c == '|') em += 0.32;
    else if (c == 'i' || c == 'j' || c == 'l') em += 0.28;
    else if (c == 'f' || c == 't' || c == 'r' || c == 'I' || c == '(' || c == ')' || c == '[' || c == ']' ||
             c == '-' || c == '/')
      em += 0.40;
    else if (c == 'm' || c == 'w') em += 0.95;
    else if (c == 'M' || c == 'W') em += 0.99;
    else if (c >= 'A' && c <= 'Z') em += 0.72;
    else if (c == '_' || c == '=' || c == '+' || c == '<' || c == '>' || c == '%' || c == '#') em += 0.84;
    else em += 0.62;
  }
  return em * size;
}

}  // namespace normnet

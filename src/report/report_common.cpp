// Shared pieces of the run and experiment reports (report_common.h).
#include "report/report_common.h"

#include <cmath>
#include <cstdio>

namespace normnet::report_detail {

std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) out += c;
    else if (c >= 'A' && c <= 'Z') out += static_cast<char>(c - 'A' + 'a');
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "chart" : out;
}

std::string fmt(double v) {
  if (std::isnan(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string words(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if (c == '_') c = ' ';
  return out;
}

Series distribution_series(const std::string& name, const std::vector<double>& x,
                           const std::vector<Distribution>& d) {
  Series s;
  s.name = name;
  s.x = x;
  Band minmax{"min-max", {}, {}}, outer{"5-95%", {}, {}}, inner{"25-75%", {}, {}};
  for (const Distribution& v : d) {
    s.y.push_back(v.p50);
    minmax.lo.push_back(v.min);
    minmax.hi.push_back(v.max);
    outer.lo.push_back(v.p5);
    outer.hi.push_back(v.p95);
    inner.lo.push_back(v.p25);
    inner.hi.push_back(v.p75);
  }
  s.bands = {minmax, outer, inner};
  return s;
}

}  // namespace normnet::report_detail

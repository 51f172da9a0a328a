// The SVG backend of Canvas and render_svg: the chart as one self-contained <svg> element
// (shapes and real <text> elements; no script, no external font, image or URL).
#include <cstdio>

#include "normnet/chart.h"
#include "normnet/error.h"
#include "report/canvas.h"

namespace normnet {
namespace report_detail {

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += ' ';
        else out += c;
    }
  }
  return out;
}

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string points_attr(const Points& p) {
  std::string s;
  for (const auto& [x, y] : p) {
    if (!s.empty()) s += ' ';
    s += num(x) + "," + num(y);
  }
  return s;
}

class SvgCanvas : public Canvas {
 public:
  std::string body;

  void polyline(const Points& p, const Stroke& s) override {
    if (p.size() < 2) return;
    body += "<polyline fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"" + num(s.width) + "\"";
    if (s.opacity < 1) body += " stroke-opacity=\"" + num(s.opacity) + "\"";
    if (s.dashed) body += " stroke-dasharray=\"4,3\"";
    body += " stroke-linejoin=\"round\" points=\"" + points_attr(p) + "\"/>\n";
  }
  void polygon(const Points& p, const Fill& f) override {
    if (p.size() < 3) return;
    body += "<polygon fill=\"" + f.color + "\" fill-opacity=\"" + num(f.opacity) + "\" stroke=\"none\" points=\"" +
            points_attr(p) + "\"/>\n";
  }
  void rect(double x, double y, double w, double h, const Fill& f) override {
    body += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(w) + "\" height=\"" + num(h) +
            "\" fill=\"" + f.color + "\"";
    if (f.opacity < 1) body += " fill-opacity=\"" + num(f.opacity) + "\"";
    body += "/>\n";
  }
  void circle(double x, double y, double r, const Fill& f) override {
    body += "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"" + num(r) + "\" fill=\"" + f.color + "\"";
    if (f.opacity < 1) body += " fill-opacity=\"" + num(f.opacity) + "\"";
    body += "/>\n";
  }
  void text(double x, double y, const std::string& s, const TextStyle& t) override {
    const char* anchor = t.anchor == Anchor::start ? "start" : t.anchor == Anchor::middle ? "middle" : "end";
    body += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + num(t.size) + "\" text-anchor=\"" +
            anchor + "\" fill=\"" + t.color + "\"";
    if (t.bold) body += " font-weight=\"bold\"";
    if (t.vertical) body += " transform=\"rotate(-90 " + num(x) + " " + num(y) + ")\"";
    body += ">" + xml_escape(s) + "</text>\n";
  }
};

}  // namespace
}  // namespace report_detail

std::string render_svg(const Chart& c) {
  const ChartLayout layout = layout_chart(c);
  report_detail::SvgCanvas canvas;
  report_detail::draw_chart(canvas, c, layout);
  const std::string w = std::to_string(c.width), h = std::to_string(c.height);
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + w + "\" height=\"" + h + "\" viewBox=\"0 0 " + w +
         " " + h + "\" role=\"img\" aria-label=\"" + report_detail::xml_escape(c.title) +
         "\" font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\">\n<title>" +
         report_detail::xml_escape(c.title) + "</title>\n" + canvas.body + "</svg>\n";
}

}  // namespace normnet

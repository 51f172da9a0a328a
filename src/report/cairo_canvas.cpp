// The cairo backend of Canvas and render_png: the chart painted on an ARGB image surface with
// cairo's text API (DejaVu Sans through fontconfig, fonts-dejavu-core) and encoded as PNG.
// Without cairo (NORMNET_HAVE_CAIRO unset) render_png throws saying what to install.
#include <cmath>
#include <cstdint>
#include <vector>

#include "normnet/chart.h"
#include "normnet/error.h"
#include "report/canvas.h"

#ifdef NORMNET_HAVE_CAIRO
#include <cairo.h>
#endif

namespace normnet {
namespace report_detail {

void parse_color(const std::string& c, double* r, double* g, double* b) {
  auto hex = [&](size_t i) -> int {
    const char ch = c[i];
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    fail("colour '", c, "': expected #rrggbb");
  };
  check(c.size() == 7 && c[0] == '#', "colour '", c, "': expected #rrggbb");
  *r = (hex(1) * 16 + hex(2)) / 255.0;
  *g = (hex(3) * 16 + hex(4)) / 255.0;
  *b = (hex(5) * 16 + hex(6)) / 255.0;
}

#ifdef NORMNET_HAVE_CAIRO
namespace {

class CairoCanvas : public Canvas {
 public:
  explicit CairoCanvas(cairo_t* cr) : cr_(cr) {}

  void polyline(const Points& p, const Stroke& s) override {
    if (p.size() < 2) return;
    path(p);
    source(s.color, s.opacity);
    cairo_set_line_width(cr_, s.width);
    cairo_set_line_join(cr_, CAIRO_LINE_JOIN_ROUND);
    if (s.dashed) {
      const double dash[] = {4.0, 3.0};
      cairo_set_dash(cr_, dash, 2, 0);
    }
    cairo_stroke(cr_);
    cairo_set_dash(cr_, nullptr, 0, 0);
  }
  void polygon(const Points& p, const Fill& f) override {
    if (p.size() < 3) return;
    path(p);
    cairo_close_path(cr_);
    source(f.color, f.opacity);
    cairo_fill(cr_);
  }
  void rect(double x, double y, double w, double h, const Fill& f) override {
    cairo_rectangle(cr_, x, y, w, h);
    source(f.color, f.opacity);
    cairo_fill(cr_);
  }
  void circle(double x, double y, double r, const Fill& f) override {
    cairo_new_path(cr_);
    cairo_arc(cr_, x, y, r, 0, 2 * M_PI);
    source(f.color, f.opacity);
    cairo_fill(cr_);
  }
  void text(double x, double y, const std::string& s, const TextStyle& t) override {
    cairo_select_font_face(cr_, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           t.bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr_, t.size);
    cairo_text_extents_t ext;
    cairo_text_extents(cr_, s.c_str(), &ext);
    const double shift = t.anchor == Anchor::start ? 0 : t.anchor == Anchor::middle ? ext.x_advance / 2 : ext.x_advance;
    cairo_save(cr_);
    cairo_translate(cr_, x, y);
    if (t.vertical) cairo_rotate(cr_, -M_PI / 2);
    cairo_move_to(cr_, -shift, 0);
    source(t.color, 1.0);
    cairo_show_text(cr_, s.c_str());
    cairo_restore(cr_);
  }

 private:
  void path(const Points& p) {
    cairo_new_path(cr_);
    cairo_move_to(cr_, p[0].first, p[0].second);
    for (size_t i = 1; i < p.size(); ++i) cairo_line_to(cr_, p[i].first, p[i].second);
  }
  void source(const std::string& color, double opacity) {
    double r, g, b;
    parse_color(color, &r, &g, &b);
    cairo_set_source_rgba(cr_, r, g, b, opacity);
  }
  cairo_t* cr_;
};

cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  auto* out = static_cast<std::vector<uint8_t>*>(closure);
  out->insert(out->end(), data, data + length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace
#endif
}  // namespace report_detail

bool png_rendering_available() {
#ifdef NORMNET_HAVE_CAIRO
  return true;
#else
  return false;
#endif
}

std::vector<uint8_t> render_png(const Chart& c) {
  const ChartLayout layout = layout_chart(c);
#ifdef NORMNET_HAVE_CAIRO
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, c.width, c.height);
  cairo_t* cr = cairo_create(surface);
  std::vector<uint8_t> bytes;
  cairo_status_t status = cairo_status(cr);
  if (status == CAIRO_STATUS_SUCCESS) {
    report_detail::CairoCanvas canvas(cr);
    try {
      report_detail::draw_chart(canvas, c, layout);
    } catch (...) {
      cairo_destroy(cr);
      cairo_surface_destroy(surface);
      throw;
    }
    cairo_surface_flush(surface);
    status = cairo_surface_write_to_png_stream(surface, report_detail::append_bytes, &bytes);
  }
  cairo_destroy(cr);
  cairo_surface_destroy(surface);
  check(status == CAIRO_STATUS_SUCCESS, "chart '", c.name, "': cairo could not render the PNG (",
        cairo_status_to_string(status), ")");
  return bytes;
#else
  fail("chart '", c.name, "': PNG charts need cairo; this normnet was built without it "
       "(install libcairo2-dev, which scripts/setup does, and rebuild)");
#endif
}

}  // namespace normnet

// render_html and write_report: the report as one self-contained HTML page (inline CSS, inline
// SVG charts, tables; no script, no network) and PNG copies of its charts under charts/.
#include <algorithm>
#include <filesystem>
#include <set>

#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/report.h"
#include "report/canvas.h"

namespace normnet {

namespace {

namespace fs = std::filesystem;
using report_detail::xml_escape;

const char* kStyle = R"(body{font-family:"DejaVu Sans",Verdana,Arial,sans-serif;margin:24px auto;max-width:1340px;color:#222;padding:0 16px}
h1{font-size:24px;margin:0 0 8px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:4px}
h3{font-size:15px;margin:14px 0 6px}p{margin:6px 0;line-height:1.4}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f0f0f0;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:grid;gap:12px;margin:8px 0 16px}figure{margin:0;border:1px solid #e3e3e3;padding:4px;background:#fff}
figure svg{display:block;width:100%;height:auto}figcaption{font-size:12px;color:#555;padding:2px 4px}
figcaption a{color:#0072b2}
)";

bool looks_numeric(const std::string& s) {
  if (s.empty()) return false;
  size_t digits = 0;
  for (char c : s) {
    if (c >= '0' && c <= '9') ++digits;
    else if (c != '.' && c != '-' && c != '+' && c != 'e' && c != 'E' && c != '%' && c != ' ' && c != '\xc2' &&
             c != '\xb1')  // "0.91 ± 0.01"
      return false;
  }
  return digits > 0;
}

std::string table_html(const Table& t, const std::string& id) {
  std::string h;
  if (!t.title.empty()) h += "<h3>" + xml_escape(t.title) + "</h3>\n";
  h += "<table id=\"" + id + "\">\n<thead><tr>";
  for (const std::string& c : t.header) h += "<th>" + xml_escape(c) + "</th>";
  h += "</tr></thead>\n<tbody>\n";
  for (const auto& row : t.rows) {
    h += "<tr>";
    for (const std::string& c : row)
      h += std::string(looks_numeric(c) ? "<td class=\"num\">" : "<td>") + xml_escape(c) + "</td>";
    h += "</tr>\n";
  }
  return h + "</tbody></table>\n";
}

void check_chart_names(const Report& r) {
  std::set<std::string> names;
  for (const Section& s : r.sections)
    for (const Chart& c : s.charts) {
      check(!c.name.empty() && c.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "0123456789-_.") == std::string::npos &&
                c.name[0] != '.',
            "report '", r.title, "': chart name '", c.name,
            "' must be letters, digits, '-', '_' or '.' (not first): it names charts/NAME.png");
      check(names.insert(c.name).second, "report '", r.title, "': two charts are named '", c.name, "'");
    }
}

std::string html_with(const Report& r, bool png_links) {
  check_chart_names(r);
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                  xml_escape(r.title) + "</title>\n<style>\n" + kStyle + "</style>\n</head>\n<body>\n<h1>" +
                  xml_escape(r.title) + "</h1>\n";
  for (const std::string& p : r.paragraphs) h += "<p>" + xml_escape(p) + "</p>\n";
  int table_no = 0;
  for (const Section& s : r.sections) {
    h += "<section>\n<h2>" + xml_escape(s.heading) + "</h2>\n";
    for (const std::string& p : s.paragraphs) h += "<p>" + xml_escape(p) + "</p>\n";
    for (const Table& t : s.tables) h += table_html(t, "table-" + std::to_string(++table_no));
    if (!s.charts.empty()) {
      h += "<div class=\"charts\" style=\"grid-template-columns:repeat(" + std::to_string(std::max(1, s.columns)) +
           ",minmax(0,1fr))\">\n";
      for (const Chart& c : s.charts) {
        h += "<figure id=\"chart-" + c.name + "\">\n" + render_svg(c) + "<figcaption>" + xml_escape(c.title);
        if (png_links) h += " &middot; <a href=\"charts/" + c.name + ".png\">PNG</a>";
        h += "</figcaption>\n</figure>\n";
      }
      h += "</div>\n";
    }
    h += "</section>\n";
  }
  return h + "</body>\n</html>\n";
}

}  // namespace

std::string render_html(const Report& r) { return html_with(r, png_rendering_available()); }

std::string write_report(const Report& r, const std::string& dir) {
  // Everything in memory first: an error leaves the directory as it was.
  const bool png = png_rendering_available();
  const std::string html = html_with(r, png);
  std::vector<std::pair<std::string, std::vector<uint8_t>>> pngs;
  if (png)
    for (const Section& s : r.sections)
      for (const Chart& c : s.charts) pngs.push_back({c.name + ".png", render_png(c)});

  std::error_code ec;
  const fs::path charts = fs::path(dir) / "charts";
  fs::create_directories(charts, ec);
  check(!ec && fs::is_directory(charts), "report: cannot create directory '", charts.string(), "': ", ec.message());
  std::set<std::string> written;
  for (const auto& [name, bytes] : pngs) {
    write_file_atomic((charts / name).string(), bytes.data(), bytes.size());
    written.insert(name);
  }
  const std::string path = (fs::path(dir) / "report.html").string();
  write_file_atomic(path, html);
  // PNGs of charts the report no longer has (an earlier, larger report) would mislead.
  for (const auto& e : fs::directory_iterator(charts, ec)) {
    const std::string n = e.path().filename().string();
    if (e.path().extension() == ".png" && !written.count(n)) fs::remove(e.path(), ec);
  }
  return path;
}

}  // namespace normnet

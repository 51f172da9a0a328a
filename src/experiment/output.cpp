// The files of an experiment directory; see output.h.
#include "experiment/output.h"

#include <cstdio>
#include <filesystem>

#include "normnet/error.h"
#include "normnet/fileio.h"

namespace normnet::experiment {

void ExperimentOutput::curve(const std::string& study, const std::string& variant, int64_t seed,
                             const std::string& x_name, double x, const std::string& metric, double value) {
  curves.push_back({study, variant, seed, x_name, x, metric, value});
}

void ExperimentOutput::cell(const std::string& study, const std::string& table, const std::string& row,
                            const std::string& column, const std::string& value) {
  tables.push_back({study, plain_text(table), plain_text(row), plain_text(column), plain_text(value)});
}

std::string plain_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',') out += ';';
    else if (c == '"' || c == '\n' || c == '\r') out += c == '"' ? '\'' : ' ';
    else out += c;
  }
  return out;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string write_experiment(const ExperimentOutput& out, const std::string& dir) {
  check(!out.curves.empty(), "experiment: no values to write to ", dir);
  // Every file is rendered to text first: a bad field fails before anything is written.
  const std::string curves = curves_csv(out.curves);
  const std::string dists = out.distributions.empty() ? "" : distributions_csv(out.distributions);
  std::string tables, charts, studies;
  if (!out.tables.empty()) {
    tables = csv_line({"study", "table", "row", "column", "value"});
    for (const auto& row : out.tables) tables += csv_line(row);
  }
  if (!out.charts.empty()) {
    charts = csv_line({"study", "metric", "x_name", "title", "x_label", "y_label", "x_scale", "y_scale", "style"});
    for (const ChartOverride& c : out.charts)
      charts += csv_line({c.study, c.metric, c.x_name, plain_text(c.title), plain_text(c.x_label),
                          plain_text(c.y_label), c.x_scale, c.y_scale, c.style});
  }
  if (!out.studies.empty()) {
    studies = csv_line({"study", "title", "description"});
    for (const auto& s : out.studies) studies += csv_line({s.at(0), plain_text(s.at(1)), plain_text(s.at(2))});
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  check(!ec && fs::is_directory(dir), "experiment: cannot create the output directory ", dir,
        ec ? ": " + ec.message() : std::string());
  const fs::path d(dir);
  auto put = [&d](const char* name, const std::string& text) {
    if (text.empty()) fs::remove(d / name);
    else write_file_atomic((d / name).string(), text);
  };
  put("curves.csv", curves);
  put("distributions.csv", dists);
  put("tables.csv", tables);
  put("charts.csv", charts);
  put("studies.csv", studies);
  return rebuild_report(dir);
}

}  // namespace normnet::experiment

// HTML reports of training runs and experiments (docs/report-format.md).
//
// Represents: a report document (sections of text, charts and tables of numbers), the CSV
// files a report is rebuilt from, and the two kinds of directory it is written for: a
// training run (`normnet train --report`: metrics.csv, bn_stats.csv) and an experiment
// (`normnet experiment`: curves.csv and optional distributions.csv, charts.csv, tables.csv,
// studies.csv).
// Ensures: write_report writes DIR/charts/NAME.png for every chart and then DIR/report.html
// (self-contained: inline CSS and SVG, no script, no network), each atomically; everything is
// rendered in memory first, so bad input leaves no new file behind. Readers name
// file:line:column of a malformed field.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "normnet/chart.h"

namespace normnet {

struct Model;

// ---- The document. ---------------------------------------------------------------------------
struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // cells shown as given
};

struct Section {
  std::string heading;
  std::vector<std::string> paragraphs;  // plain text (escaped)
  std::vector<Table> tables;            // shown before the charts
  std::vector<Chart> charts;            // chart names must be unique in the report
  int columns = 2;                      // charts per row
};

struct Report {
  std::string title;
  std::vector<std::string> paragraphs;
  std::vector<Section> sections;
};

std::string render_html(const Report& r);  // the whole page
// Writes DIR/charts/NAME.png for every chart (PNG copies) and DIR/report.html; returns the
// report's path. Creates DIR and DIR/charts when missing.
std::string write_report(const Report& r, const std::string& dir);

// ---- CSV. ------------------------------------------------------------------------------------
// A CSV file: a header line, then rows with as many fields. Plain fields only (no quotes, no
// commas inside a field); blank lines are not allowed. `what` (the path) names it in errors.
struct CsvTable {
  std::string what;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> lines;  // the file line of each row (1-based)
  std::vector<std::vector<int64_t>> starts;  // the 1-based character column of each field

  int column(const std::string& name) const;  // index; throws naming the file and column
  bool has(const std::string& name) const;
  const std::string& text(size_t row, int col) const;
  double number(size_t row, int col) const;     // finite; throws "what:line:column: ..."
  double number_or_nan(size_t row, int col) const;  // empty field -> NaN
  int64_t integer(size_t row, int col) const;
};
CsvTable parse_csv(const std::string& text, const std::string& what,
                   const std::vector<std::string>& required_columns);
CsvTable read_csv(const std::string& path, const std::vector<std::string>& required_columns);
// Joins fields with commas; throws when a field holds a comma, quote or line break.
std::string csv_line(const std::vector<std::string>& fields);
std::string csv_number(double v);  // "%.9g", "" for NaN

// ---- Distributions (bn_stats.csv, distributions.csv). ---------------------------------------
// The distribution of one quantity over channels (or values) at one x.
struct Distribution {
  int64_t count = 0;
  double min = 0, p5 = 0, p25 = 0, p50 = 0, p75 = 0, p95 = 0, max = 0, mean = 0, std = 0;
};
Distribution describe_values(std::vector<double> v);  // percentiles: linear interpolation
extern const std::vector<std::string> kDistributionColumns;  // count,min,p5,...,max,mean,std

// ---- A training run's directory. ------------------------------------------------------------
// One row of bn_stats.csv: at the end of `epoch`, quantity (running_mean, running_var, weight,
// bias) of the BatchNorm-like layer `layer` (kind) described over its channels.
struct BnStatsRow {
  int64_t epoch = 0;
  std::string layer, kind, quantity;
  Distribution d;
};
// Rows for every layer with running_mean and running_var buffers (BatchNorm, GhostBatchNorm,
// BatchRenorm, FrozenBatchNorm2d), in module order; weight and bias when the layer has them.
std::vector<BnStatsRow> bn_stats(Model& m, int64_t epoch);
std::string bn_stats_csv(const std::vector<BnStatsRow>& rows);
std::vector<BnStatsRow> parse_bn_stats(const CsvTable& t);

// metrics.csv and bn_stats.csv of a run directory -> the report (bn_stats.csv optional).
Report run_report(const std::string& dir);

// ---- An experiment's directory. --------------------------------------------------------------
// One value of curves.csv: `metric` of `variant` (seed `seed`) in `study` at x (x_name: epoch,
// step, lr, batch_size, ...). Curves over time and final values over a sweep share the format.
struct CurvePoint {
  std::string study, variant;
  int64_t seed = 0;
  std::string x_name;
  double x = 0;
  std::string metric;
  double value = 0;
};
std::string curves_csv(const std::vector<CurvePoint>& points);
std::vector<CurvePoint> parse_curves(const CsvTable& t);

// One row of distributions.csv: a layer's quantity (e.g. preactivation) over training.
struct DistributionPoint {
  std::string study, variant;
  int64_t seed = 0;
  std::string layer, quantity, x_name;
  double x = 0;
  Distribution d;
};
std::string distributions_csv(const std::vector<DistributionPoint>& points);
std::vector<DistributionPoint> parse_distributions(const CsvTable& t);

// curves.csv (+ optional distributions.csv, charts.csv, tables.csv, studies.csv) -> report.
Report experiment_report(const std::string& dir);

// ---- Either. ---------------------------------------------------------------------------------
enum class ReportKind { run, experiment };
// metrics.csv: a run; curves.csv: an experiment; otherwise throws naming DIR.
ReportKind detect_report_kind(const std::string& dir);
// Builds the report of DIR from its CSV files and writes it; returns report.html's path.
std::string rebuild_report(const std::string& dir);

}  // namespace normnet

// What a study writes (docs/report-format.md, "An experiment"): rows of curves.csv,
// distributions.csv, tables.csv, charts.csv and studies.csv, gathered in memory and written
// together.
//
// Ensures: write_experiment writes every file with write_file_atomic and then rebuilds
// DIR/report.html and DIR/charts/*.png from them (rebuild_report), so the report holds exactly
// the CSVs' numbers. Text fields are made CSV-plain (commas become ';', quotes and line breaks
// are dropped), so an error message can stand in a table.
#pragma once
#include <string>
#include <vector>

#include "normnet/report.h"

namespace normnet::experiment {

struct ChartOverride {  // one row of charts.csv; empty fields keep the default
  std::string study, metric, x_name, title, x_label, y_label, x_scale, y_scale, style;
};

struct ExperimentOutput {
  std::vector<CurvePoint> curves;
  std::vector<DistributionPoint> distributions;
  std::vector<std::vector<std::string>> tables;  // study, table, row, column, value
  std::vector<ChartOverride> charts;
  std::vector<std::vector<std::string>> studies;  // study, title, description

  void curve(const std::string& study, const std::string& variant, int64_t seed,
             const std::string& x_name, double x, const std::string& metric, double value);
  void cell(const std::string& study, const std::string& table, const std::string& row,
            const std::string& column, const std::string& value);
};

std::string plain_text(const std::string& s);  // CSV-plain, see above
// Writes DIR/curves.csv and whichever of the other files have rows, then the report; returns
// report.html's path. Creates DIR.
std::string write_experiment(const ExperimentOutput& out, const std::string& dir);

// "0.8512" style numbers for tables (as the report prints them: %.6g).
std::string number_text(double v);

}  // namespace normnet::experiment

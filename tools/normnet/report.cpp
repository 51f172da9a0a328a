// normnet report DIR: rebuilds DIR/report.html and DIR/charts/*.png from the CSV files of a
// training run (metrics.csv, bn_stats.csv) or an experiment (curves.csv, ...); see
// docs/report-format.md.
#include <cstdio>

#include "common.h"
#include "normnet/report.h"

namespace normnet::cli {

Runner add_report(CLI::App& app) {
  auto* s = app.add_subcommand(
      "report", "Rebuild DIR/report.html and DIR/charts/*.png from the CSV files of a training run "
                "(normnet train --out DIR) or an experiment (docs/report-format.md)");
  static std::string dir;
  s->add_option("DIR", dir, "Run or experiment directory")->required();
  return [] {
    const ReportKind kind = detect_report_kind(dir);
    const std::string path = rebuild_report(dir);
    std::printf("normnet report: %s report written to %s\n", kind == ReportKind::run ? "run" : "experiment",
                path.c_str());
    return 0;
  };
}

}  // namespace normnet::cli

// detect_report_kind and rebuild_report: `normnet report DIR` on a run or experiment directory.
#include <filesystem>

#include "normnet/error.h"
#include "normnet/report.h"

namespace normnet {

namespace fs = std::filesystem;

ReportKind detect_report_kind(const std::string& dir) {
  std::error_code ec;
  check(fs::exists(dir, ec), "report: directory '", dir, "' does not exist");
  check(fs::is_directory(dir, ec), "report: '", dir, "' is not a directory");
  if (fs::is_regular_file(fs::path(dir) / "metrics.csv", ec)) return ReportKind::run;
  if (fs::is_regular_file(fs::path(dir) / "curves.csv", ec)) return ReportKind::experiment;
  fail("report: '", dir, "' holds neither metrics.csv (a training run, normnet train --out) nor curves.csv (an "
       "experiment, normnet experiment); see docs/report-format.md");
}

std::string rebuild_report(const std::string& dir) {
  const ReportKind kind = detect_report_kind(dir);
  const Report r = kind == ReportKind::run ? run_report(dir) : experiment_report(dir);
  return write_report(r, dir);
}

}  // namespace normnet

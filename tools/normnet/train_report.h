// normnet train --report: after every epoch, the BatchNorm statistics of the model appended to
// bn_stats.csv and the run's report (report.html, charts/*.png) rebuilt from the run's files,
// exactly as `normnet report DIR` would (docs/report-format.md).
//
// Requires: `out` is the run directory, where metrics.csv is written before epoch_done.
// Ensures: bn_stats.csv holds one block of rows per epoch the run has completed since it
// reported, in epoch order; after a resume it agrees with the train state (rows after the
// resumed epoch dropped, the resumed epoch's rows recomputed from the model when the run
// resumes at an epoch's end).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "normnet/report.h"
#include "normnet/train.h"

namespace normnet::cli {

class TrainReport {
 public:
  TrainReport(std::string out, Model& m) : out_(std::move(out)), model_(m) {}
  // A run continued from `start`: bn_stats.csv cut to it, then the report rebuilt.
  void resume(const TrainProgress& start);
  // Epoch `epoch` has ended and metrics.csv holds it: records the model's statistics, rebuilds.
  void epoch_done(int64_t epoch);

 private:
  void write();
  std::string out_;
  Model& model_;
  std::vector<BnStatsRow> rows_;
};

// A run reported before (its directory holds bn_stats.csv) keeps reporting when resumed.
bool run_has_report(const std::string& out);

}  // namespace normnet::cli

// normnet train --report (train_report.h).
#include "train_report.h"

#include <cstdio>
#include <filesystem>

#include "normnet/error.h"
#include "normnet/fileio.h"

namespace normnet::cli {

namespace fs = std::filesystem;

bool run_has_report(const std::string& out) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(out) / "bn_stats.csv", ec);
}

void TrainReport::resume(const TrainProgress& start) {
  const std::string path = (fs::path(out_) / "bn_stats.csv").string();
  rows_.clear();
  if (run_has_report(out_)) {
    try {
      std::vector<std::string> cols = {"epoch", "layer", "kind", "quantity"};
      cols.insert(cols.end(), kDistributionColumns.begin(), kDistributionColumns.end());
      for (BnStatsRow& r : parse_bn_stats(read_csv(path, cols)))
        if (r.epoch <= start.epoch) rows_.push_back(std::move(r));
    } catch (const Error& e) {
      std::fprintf(stderr, "normnet train: warning: %s; the BatchNorm statistics start over\n", e.what());
      rows_.clear();
    }
  }
  // At an epoch's end the model is exactly as that epoch left it: its rows can be recomputed
  // (they may be missing when the run was stopped between the train state and bn_stats.csv).
  if (start.epoch > 0 && start.step_in_epoch == 0) {
    std::erase_if(rows_, [&](const BnStatsRow& r) { return r.epoch == start.epoch; });
    for (BnStatsRow& r : bn_stats(model_, start.epoch)) rows_.push_back(std::move(r));
  }
  // Temporaries of charts a killed writer left.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(out_) / "charts", ec))
    if (e.path().filename().string().find(".png.tmp.") != std::string::npos) fs::remove(e.path(), ec);
  if (start.epoch > 0) write();
}

void TrainReport::epoch_done(int64_t epoch) {
  std::erase_if(rows_, [&](const BnStatsRow& r) { return r.epoch >= epoch; });
  for (BnStatsRow& r : bn_stats(model_, epoch)) rows_.push_back(std::move(r));
  write();
}

void TrainReport::write() {
  write_file_atomic((fs::path(out_) / "bn_stats.csv").string(), bn_stats_csv(rows_));
  write_report(run_report(out_), out_);
}

}  // namespace normnet::cli

// run_report: the report of a training run's directory (normnet train --out DIR) from its
// metrics.csv and, when present, bn_stats.csv (docs/report-format.md).
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "normnet/error.h"
#include "normnet/report.h"
#include "report/report_common.h"

namespace normnet {

namespace {

namespace fs = std::filesystem;
using report_detail::fmt;

const std::vector<std::string> kMetricsColumns = {"epoch",   "train_loss",        "train_accuracy", "test_loss",
                                                  "test_accuracy", "seconds", "images_per_second", "lr"};

Series series_of(const std::string& name, const std::vector<double>& x, const std::vector<double>& y,
                 SeriesStyle style = SeriesStyle::line_markers) {
  Series s;
  s.name = name;
  s.style = style;
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isnan(y[i])) {  // seconds and images/s are empty for epochs without wall-clock times
      s.x.push_back(x[i]);
      s.y.push_back(y[i]);
    }
  return s;
}

Chart epoch_chart(const std::string& name, const std::string& title, const std::string& y_label) {
  Chart c;
  c.name = name;
  c.title = title;
  c.x.label = "epoch";
  c.x.integer = true;
  c.y.label = y_label;
  return c;
}

}  // namespace

Report run_report(const std::string& dir) {
  const std::string metrics_path = (fs::path(dir) / "metrics.csv").string();
  const CsvTable m = read_csv(metrics_path, kMetricsColumns);
  check(!m.rows.empty(), metrics_path, ": no epochs (only a header)");
  std::map<std::string, std::vector<double>> col;
  for (const std::string& name : kMetricsColumns) {
    const int c = m.column(name);
    for (size_t i = 0; i < m.rows.size(); ++i)
      col[name].push_back(name == "seconds" || name == "images_per_second" ? m.number_or_nan(i, c) : m.number(i, c));
  }
  const std::vector<double>& epoch = col["epoch"];
  const int epoch_col = m.column("epoch");
  for (size_t i = 0; i < m.rows.size(); ++i) {
    const int64_t e = m.integer(i, epoch_col);
    check(e == static_cast<int64_t>(i) + 1, metrics_path, ":", m.lines[i], ":", m.starts[i][epoch_col], ": epoch ", e,
          ", expected ", i + 1, " (rows are epochs 1, 2, ... in order)");
  }

  Report r;
  r.title = "normnet run: " + fs::path(dir).lexically_normal().filename().string();
  if (r.title == "normnet run: ") r.title = "normnet run: " + dir;
  r.paragraphs.push_back("Training run in '" + dir + "', " + std::to_string(m.rows.size()) +
                         " epochs. Rebuilt from metrics.csv" +
                         (fs::is_regular_file(fs::path(dir) / "bn_stats.csv") ? " and bn_stats.csv" : "") +
                         " by `normnet report` (docs/report-format.md).");

  // Summary: the CSV's own text for every number it holds.
  const size_t last = m.rows.size() - 1;
  size_t best = 0;
  for (size_t i = 1; i < m.rows.size(); ++i)
    if (col["test_accuracy"][i] > col["test_accuracy"][best]) best = i;
  double rate_sum = 0;
  int rate_n = 0;
  for (double v : col["images_per_second"])
    if (!std::isnan(v)) rate_sum += v, ++rate_n;
  Section summary;
  summary.heading = "Summary";
  Table t;
  t.header = {"quantity", "value"};
  t.rows = {{"epochs", m.text(last, epoch_col)},
            {"final test accuracy", m.text(last, m.column("test_accuracy"))},
            {"best test accuracy", m.text(best, m.column("test_accuracy"))},
            {"best epoch", m.text(best, epoch_col)},
            {"final train loss", m.text(last, m.column("train_loss"))},
            {"final test loss", m.text(last, m.column("test_loss"))},
            {"final learning rate", m.text(last, m.column("lr"))},
            {"mean images/s", rate_n ? fmt(rate_sum / rate_n) : ""}};
  summary.tables.push_back(t);
  r.sections.push_back(summary);

  Section curves;
  curves.heading = "Training curves";
  Chart loss = epoch_chart("loss", "Loss", "cross-entropy loss");
  loss.series = {series_of("train", epoch, col["train_loss"]), series_of("test", epoch, col["test_loss"])};
  Chart acc = epoch_chart("accuracy", "Accuracy", "accuracy");
  acc.series = {series_of("train", epoch, col["train_accuracy"]), series_of("test", epoch, col["test_accuracy"])};
  Chart lr = epoch_chart("lr", "Learning rate (at the epoch's end)", "learning rate");
  bool lr_positive = true;
  for (double v : col["lr"]) lr_positive = lr_positive && v > 0;
  if (lr_positive) lr.y.scale = AxisScale::log;
  lr.series = {series_of("lr", epoch, col["lr"])};
  Chart speed = epoch_chart("images-per-second", "Training speed", "images/s");
  speed.y.include_zero = true;
  speed.series = {series_of("images/s", epoch, col["images_per_second"])};
  curves.charts = {loss, acc, lr, speed};
  Table per_epoch;
  per_epoch.title = "Metrics per epoch (metrics.csv)";
  per_epoch.header = m.header;
  per_epoch.rows = m.rows;
  curves.tables.push_back(per_epoch);
  r.sections.push_back(curves);

  // BatchNorm statistics over epochs, one section per layer.
  const std::string bn_path = (fs::path(dir) / "bn_stats.csv").string();
  if (!fs::is_regular_file(bn_path)) return r;
  std::vector<std::string> bn_columns = {"epoch", "layer", "kind", "quantity"};
  bn_columns.insert(bn_columns.end(), kDistributionColumns.begin(), kDistributionColumns.end());
  const CsvTable bt = read_csv(bn_path, bn_columns);
  const std::vector<BnStatsRow> rows = parse_bn_stats(bt);
  std::vector<std::string> layers;
  std::map<std::string, std::string> kinds;
  std::map<std::pair<std::string, std::string>, std::map<int64_t, Distribution>> by;  // (layer, quantity) -> epoch
  for (size_t i = 0; i < rows.size(); ++i) {
    const BnStatsRow& b = rows[i];
    if (!kinds.count(b.layer)) layers.push_back(b.layer);
    kinds[b.layer] = b.kind;
    check(by[{b.layer, b.quantity}].emplace(b.epoch, b.d).second, bn_path, ":", bt.lines[i], ":1: epoch ", b.epoch,
          " of ", b.layer, " ", b.quantity, " appears twice");
  }
  Section overview;
  overview.heading = "BatchNorm statistics";
  overview.paragraphs.push_back(
      "For every BatchNorm-like layer, the distribution over its channels of running_mean, running_var, weight "
      "(gamma) and bias (beta) at the end of each epoch (bn_stats.csv): the median line, the 25-75% and 5-95% "
      "bands and the range.");
  Table final_stats;
  final_stats.title = "At the last recorded epoch";
  final_stats.header = {"layer", "kind", "quantity", "epoch", "channels", "min", "p50", "max", "mean", "std"};
  for (const std::string& layer : layers)
    for (const char* q : {"running_mean", "running_var", "weight", "bias"}) {
      auto it = by.find({layer, q});
      if (it == by.end()) continue;
      const auto& [e, d] = *it->second.rbegin();
      final_stats.rows.push_back({layer, kinds[layer], q, std::to_string(e), std::to_string(d.count), fmt(d.min),
                                  fmt(d.p50), fmt(d.max), fmt(d.mean), fmt(d.std)});
    }
  overview.tables.push_back(final_stats);
  r.sections.push_back(overview);
  std::set<std::string> names;
  for (const std::string& layer : layers) {
    Section s;
    s.heading = layer + " (" + kinds[layer] + ")";
    s.columns = 4;
    for (const char* q : {"running_mean", "running_var", "weight", "bias"}) {
      auto it = by.find({layer, q});
      if (it == by.end()) continue;
      std::vector<double> x;
      std::vector<Distribution> d;
      for (const auto& [e, v] : it->second) {
        x.push_back(static_cast<double>(e));
        d.push_back(v);
      }
      Chart c = epoch_chart("", layer + " " + q, q);
      std::string name = "bn-" + report_detail::slug(layer) + "-" + report_detail::slug(q);
      while (!names.insert(name).second) name += "-x";
      c.name = name;
      c.width = 360;
      c.height = 300;
      c.series = {report_detail::distribution_series("median", x, d)};
      s.charts.push_back(c);
    }
    r.sections.push_back(s);
  }
  return r;
}

}  // namespace normnet

// Distributions over channels (describe_values) and the per-layer BatchNorm statistics of a
// training run (bn_stats.csv, docs/report-format.md).
#include <algorithm>
#include <cmath>

#include "normnet/error.h"
#include "normnet/model.h"
#include "normnet/report.h"

namespace normnet {

const std::vector<std::string> kDistributionColumns = {"count", "min", "p5",  "p25",  "p50",
                                                       "p75",   "p95", "max", "mean", "std"};

Distribution describe_values(std::vector<double> v) {
  check(!v.empty(), "describe_values: no values");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  auto pct = [&](double p) {  // linear interpolation between closest ranks (numpy's default)
    const double pos = p / 100.0 * static_cast<double>(n - 1);
    const size_t i = static_cast<size_t>(std::floor(pos));
    const double f = pos - static_cast<double>(i);
    return i + 1 < n ? v[i] + f * (v[i + 1] - v[i]) : v[i];
  };
  Distribution d;
  d.count = static_cast<int64_t>(n);
  d.min = v.front();
  d.max = v.back();
  d.p5 = pct(5);
  d.p25 = pct(25);
  d.p50 = pct(50);
  d.p75 = pct(75);
  d.p95 = pct(95);
  double sum = 0;
  for (double x : v) sum += x;
  d.mean = sum / static_cast<double>(n);
  double ss = 0;
  for (double x : v) ss += (x - d.mean) * (x - d.mean);
  d.std = std::sqrt(ss / static_cast<double>(n));  // population standard deviation
  return d;
}

namespace {

std::vector<double> values_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::vector<double>(c.data(), c.data() + c.numel());
}

void walk(Module& m, int64_t epoch, std::vector<BnStatsRow>* rows) {
  const Tensor* mean = nullptr;
  const Tensor* var = nullptr;
  for (const Buffer& b : m.own_buffers()) {
    if (b.name == "running_mean" && b.f32) mean = b.f32;
    if (b.name == "running_var" && b.f32) var = b.f32;
  }
  if (mean && var && mean->numel() > 0) {
    const std::string layer = m.path.empty() ? "(root)" : m.path;
    rows->push_back({epoch, layer, m.kind(), "running_mean", describe_values(values_of(*mean))});
    rows->push_back({epoch, layer, m.kind(), "running_var", describe_values(values_of(*var))});
    for (Parameter* p : m.own_parameters())
      if ((p->name == "weight" || p->name == "bias") && p->value.numel() > 0)
        rows->push_back({epoch, layer, m.kind(), p->name, describe_values(values_of(p->value))});
  }
  for (auto& [name, child] : m.children()) walk(*child, epoch, rows);
}

}  // namespace

std::vector<BnStatsRow> bn_stats(Model& m, int64_t epoch) {
  std::vector<BnStatsRow> rows;
  walk(*m.net, epoch, &rows);
  return rows;
}

std::string bn_stats_csv(const std::vector<BnStatsRow>& rows) {
  std::vector<std::string> header = {"epoch", "layer", "kind", "quantity"};
  header.insert(header.end(), kDistributionColumns.begin(), kDistributionColumns.end());
  std::string out = csv_line(header);
  for (const BnStatsRow& r : rows) {
    const Distribution& d = r.d;
    out += csv_line({std::to_string(r.epoch), r.layer, r.kind, r.quantity, std::to_string(d.count),
                     csv_number(d.min), csv_number(d.p5), csv_number(d.p25), csv_number(d.p50), csv_number(d.p75),
                     csv_number(d.p95), csv_number(d.max), csv_number(d.mean), csv_number(d.std)});
  }
  return out;
}

Distribution parse_distribution(const CsvTable& t, size_t row);  // experiment_data.cpp

std::vector<BnStatsRow> parse_bn_stats(const CsvTable& t) {
  const int epoch = t.column("epoch"), layer = t.column("layer"), kind = t.column("kind"),
            quantity = t.column("quantity");
  std::vector<BnStatsRow> rows;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    BnStatsRow r;
    r.epoch = t.integer(i, epoch);
    check(r.epoch >= 1, t.what, ":", t.lines[i], ":", t.starts[i][epoch], ": epoch ", r.epoch,
          " (epochs count from 1)");
    r.layer = t.text(i, layer);
    r.kind = t.text(i, kind);
    r.quantity = t.text(i, quantity);
    r.d = parse_distribution(t, i);
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace normnet

// The experiment files curves.csv and distributions.csv (docs/report-format.md): writers for
// `normnet experiment` and readers for the report.
#include "normnet/error.h"
#include "normnet/report.h"

namespace normnet {

Distribution parse_distribution(const CsvTable& t, size_t row) {
  Distribution d;
  d.count = t.integer(row, t.column("count"));
  check(d.count >= 1, t.what, ":", t.lines[row], ":", t.starts[row][t.column("count")], ": count ", d.count,
        " (at least 1 value)");
  double* fields[] = {&d.min, &d.p5, &d.p25, &d.p50, &d.p75, &d.p95, &d.max, &d.mean, &d.std};
  for (size_t k = 0; k < 9; ++k) *fields[k] = t.number(row, t.column(kDistributionColumns[k + 1]));
  // Order: min <= p5 <= ... <= max; a file that breaks it was not written by normnet.
  const double order[] = {d.min, d.p5, d.p25, d.p50, d.p75, d.p95, d.max};
  for (size_t k = 1; k < 7; ++k)
    check(order[k - 1] <= order[k], t.what, ":", t.lines[row], ":", t.starts[row][t.column(kDistributionColumns[k + 1])],
          ": ", kDistributionColumns[k + 1], " ", order[k], " is below ", kDistributionColumns[k], " ", order[k - 1]);
  return d;
}

namespace {

std::vector<std::string> distribution_fields(const Distribution& d) {
  return {std::to_string(d.count), csv_number(d.min), csv_number(d.p5),  csv_number(d.p25), csv_number(d.p50),
          csv_number(d.p75),       csv_number(d.p95), csv_number(d.max), csv_number(d.mean), csv_number(d.std)};
}

void check_name(const CsvTable& t, size_t row, int col) {
  check(!t.text(row, col).empty(), t.what, ":", t.lines[row], ":", t.starts[row][col], ": ", t.header[col],
        " is empty");
}

}  // namespace

std::string curves_csv(const std::vector<CurvePoint>& points) {
  std::string out = csv_line({"study", "variant", "seed", "x_name", "x", "metric", "value"});
  for (const CurvePoint& p : points)
    out += csv_line({p.study, p.variant, std::to_string(p.seed), p.x_name, csv_number(p.x), p.metric,
                     csv_number(p.value)});
  return out;
}

std::vector<CurvePoint> parse_curves(const CsvTable& t) {
  const int study = t.column("study"), variant = t.column("variant"), seed = t.column("seed"),
            x_name = t.column("x_name"), x = t.column("x"), metric = t.column("metric"), value = t.column("value");
  std::vector<CurvePoint> out;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    for (int c : {study, variant, x_name, metric}) check_name(t, i, c);
    out.push_back({t.text(i, study), t.text(i, variant), t.integer(i, seed), t.text(i, x_name), t.number(i, x),
                   t.text(i, metric), t.number(i, value)});
  }
  return out;
}

std::string distributions_csv(const std::vector<DistributionPoint>& points) {
  std::vector<std::string> header = {"study", "variant", "seed", "layer", "quantity", "x_name", "x"};
  header.insert(header.end(), kDistributionColumns.begin(), kDistributionColumns.end());
  std::string out = csv_line(header);
  for (const DistributionPoint& p : points) {
    std::vector<std::string> f = {p.study, p.variant, std::to_string(p.seed), p.layer, p.quantity, p.x_name,
                                  csv_number(p.x)};
    const auto d = distribution_fields(p.d);
    f.insert(f.end(), d.begin(), d.end());
    out += csv_line(f);
  }
  return out;
}

std::vector<DistributionPoint> parse_distributions(const CsvTable& t) {
  const int study = t.column("study"), variant = t.column("variant"), seed = t.column("seed"),
            layer = t.column("layer"), quantity = t.column("quantity"), x_name = t.column("x_name"),
            x = t.column("x");
  std::vector<DistributionPoint> out;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    for (int c : {study, variant, layer, quantity, x_name}) check_name(t, i, c);
    out.push_back({t.text(i, study), t.text(i, variant), t.integer(i, seed), t.text(i, layer), t.text(i, quantity),
                   t.text(i, x_name), t.number(i, x), parse_distribution(t, i)});
  }
  return out;
}

}  // namespace normnet

// experiment_report: the report of an experiment's directory (normnet experiment) from
// curves.csv and the optional distributions.csv, charts.csv, tables.csv and studies.csv
// (docs/report-format.md). Seeds are aggregated: the line is the mean, the band min-max.
#include <algorithm>
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
using report_detail::slug;
using report_detail::words;

// First-appearance order of keys.
template <class K>
struct Ordered {
  std::vector<K> keys;
  std::set<K> seen;
  void add(const K& k) {
    if (seen.insert(k).second) keys.push_back(k);
  }
};

struct ChartSpec {  // a row of charts.csv; empty fields keep the defaults
  std::string title, x_label, y_label, x_scale, y_scale, style;
};

bool time_like(const std::string& x_name) { return x_name == "epoch" || x_name == "step"; }

SeriesStyle parse_style(const std::string& s, const CsvTable& t, size_t row, int col) {
  if (s == "line") return SeriesStyle::line;
  if (s == "markers") return SeriesStyle::markers;
  if (s == "line_markers") return SeriesStyle::line_markers;
  if (s == "bars") return SeriesStyle::bars;
  fail(t.what, ":", t.lines[row], ":", t.starts[row][col], ": style '", s,
       "' is not one of line, markers, line_markers, bars");
}

void check_scale(const CsvTable& t, size_t row, int col) {
  const std::string& s = t.text(row, col);
  check(s.empty() || s == "linear" || s == "log", t.what, ":", t.lines[row], ":", t.starts[row][col], ": ",
        t.header[col], " '", s, "' is not linear or log");
}

std::string optional_text(const CsvTable& t, size_t row, const char* column) {
  return t.has(column) ? t.text(row, t.column(column)) : std::string();
}

}  // namespace

Report experiment_report(const std::string& dir) {
  const fs::path d(dir);
  const CsvTable ct = read_csv((d / "curves.csv").string(), {"study", "variant", "seed", "x_name", "x", "metric", "value"});
  const std::vector<CurvePoint> curves = parse_curves(ct);
  check(!curves.empty(), (d / "curves.csv").string(), ": no rows (only a header)");

  std::vector<DistributionPoint> dists;
  if (fs::is_regular_file(d / "distributions.csv")) {
    std::vector<std::string> cols = {"study", "variant", "seed", "layer", "quantity", "x_name", "x"};
    cols.insert(cols.end(), kDistributionColumns.begin(), kDistributionColumns.end());
    dists = parse_distributions(read_csv((d / "distributions.csv").string(), cols));
  }
  std::map<std::string, std::pair<std::string, std::string>> study_text;  // title, description
  Ordered<std::string> studies;
  if (fs::is_regular_file(d / "studies.csv")) {
    const CsvTable st = read_csv((d / "studies.csv").string(), {"study", "title"});
    for (size_t i = 0; i < st.rows.size(); ++i) {
      const std::string& s = st.text(i, st.column("study"));
      studies.add(s);
      study_text[s] = {st.text(i, st.column("title")), optional_text(st, i, "description")};
    }
  }
  std::map<std::tuple<std::string, std::string, std::string>, ChartSpec> specs;  // (study, metric, x_name)
  if (fs::is_regular_file(d / "charts.csv")) {
    const CsvTable cs = read_csv((d / "charts.csv").string(), {"study", "metric", "x_name"});
    for (size_t i = 0; i < cs.rows.size(); ++i) {
      ChartSpec s{optional_text(cs, i, "title"), optional_text(cs, i, "x_label"), optional_text(cs, i, "y_label"),
                  optional_text(cs, i, "x_scale"), optional_text(cs, i, "y_scale"), optional_text(cs, i, "style")};
      for (const char* c : {"x_scale", "y_scale"})
        if (cs.has(c)) check_scale(cs, i, cs.column(c));
      if (!s.style.empty()) parse_style(s.style, cs, i, cs.column("style"));
      specs[{cs.text(i, cs.column("study")), cs.text(i, cs.column("metric")), cs.text(i, cs.column("x_name"))}] = s;
    }
  }
  // tables.csv: (study, table) -> rows x columns of text.
  struct TextTable {
    Ordered<std::string> rows, cols;
    std::map<std::pair<std::string, std::string>, std::string> cells;
  };
  std::map<std::string, Ordered<std::string>> table_order;
  std::map<std::pair<std::string, std::string>, TextTable> tables;
  if (fs::is_regular_file(d / "tables.csv")) {
    const CsvTable tt = read_csv((d / "tables.csv").string(), {"study", "table", "row", "column", "value"});
    for (size_t i = 0; i < tt.rows.size(); ++i) {
      const std::string& s = tt.text(i, tt.column("study"));
      const std::string& name = tt.text(i, tt.column("table"));
      studies.add(s);
      table_order[s].add(name);
      TextTable& t = tables[{s, name}];
      t.rows.add(tt.text(i, tt.column("row")));
      t.cols.add(tt.text(i, tt.column("column")));
      t.cells[{tt.text(i, tt.column("row")), tt.text(i, tt.column("column"))}] = tt.text(i, tt.column("value"));
    }
  }
  for (const CurvePoint& p : curves) studies.add(p.study);
  for (const DistributionPoint& p : dists) studies.add(p.study);

  Report r;
  r.title = "normnet experiment: " + fs::path(dir).lexically_normal().filename().string();
  r.paragraphs.push_back("Rebuilt from the CSV files in '" + dir +
                         "' by `normnet report` (docs/report-format.md). Lines are means over seeds; shaded "
                         "bands and whiskers span the seeds' minimum to maximum.");
  std::set<std::string> names;
  auto unique_name = [&names](std::string n) {
    while (!names.insert(n).second) n += "-x";
    return n;
  };

  for (const std::string& study : studies.keys) {
    Section sec;
    auto st = study_text.find(study);
    sec.heading = st != study_text.end() && !st->second.first.empty() ? st->second.first : study;
    if (st != study_text.end() && !st->second.second.empty()) sec.paragraphs.push_back(st->second.second);
    for (const std::string& name : table_order[study].keys) {
      TextTable& tt = tables[{study, name}];
      Table t;
      t.title = name;
      t.header.push_back("");
      for (const std::string& c : tt.cols.keys) t.header.push_back(c);
      for (const std::string& row : tt.rows.keys) {
        std::vector<std::string> cells{row};
        for (const std::string& c : tt.cols.keys) cells.push_back(tt.cells[{row, c}]);
        t.rows.push_back(cells);
      }
      sec.tables.push_back(t);
    }

    // Curves: one chart per (metric, x_name), one series per variant, seeds aggregated.
    Ordered<std::pair<std::string, std::string>> groups;
    for (const CurvePoint& p : curves)
      if (p.study == study) groups.add({p.metric, p.x_name});
    Table finals;
    finals.title = "Values (mean over seeds)";
    finals.header = {"metric", "variant", "x", "mean", "std", "min", "max", "seeds"};
    for (const auto& [metric, x_name] : groups.keys) {
      Ordered<std::string> variants;
      std::map<std::string, std::map<double, std::vector<double>>> values;  // variant -> x -> per seed
      for (const CurvePoint& p : curves)
        if (p.study == study && p.metric == metric && p.x_name == x_name) {
          variants.add(p.variant);
          values[p.variant][p.x].push_back(p.value);
        }
      const ChartSpec spec = specs.count({study, metric, x_name}) ? specs[{study, metric, x_name}] : ChartSpec{};
      Chart c;
      c.name = unique_name(slug(study + "-" + metric + "-" + x_name));
      c.title = !spec.title.empty() ? spec.title : words(metric) + " vs " + words(x_name);
      c.x.label = !spec.x_label.empty() ? spec.x_label : words(x_name);
      c.y.label = !spec.y_label.empty() ? spec.y_label : words(metric);
      const bool log_default = x_name == "lr" || x_name == "learning_rate" || x_name == "batch_size";
      c.x.scale = spec.x_scale == "log" || (spec.x_scale.empty() && log_default) ? AxisScale::log : AxisScale::linear;
      c.y.scale = spec.y_scale == "log" ? AxisScale::log : AxisScale::linear;
      c.x.integer = time_like(x_name);
      SeriesStyle style = time_like(x_name) ? SeriesStyle::line : SeriesStyle::line_markers;
      if (spec.style == "line") style = SeriesStyle::line;
      if (spec.style == "markers") style = SeriesStyle::markers;
      if (spec.style == "line_markers") style = SeriesStyle::line_markers;
      if (spec.style == "bars") style = SeriesStyle::bars;
      std::vector<double> xs;  // bars: the distinct x values are the categories
      if (style == SeriesStyle::bars) {
        std::set<double> all;
        for (const auto& [v, by_x] : values)
          for (const auto& [x, ys] : by_x) all.insert(x);
        xs.assign(all.begin(), all.end());
        for (double x : xs) c.categories.push_back(tick_label(x));
        c.x.scale = AxisScale::linear;
        c.x.integer = false;
      }
      for (const std::string& v : variants.keys) {
        Series s;
        s.name = v;
        s.style = style;
        Band spread{"min-max over seeds", {}, {}};
        bool several = false;
        for (const auto& [x, ys] : values[v]) {
          double sum = 0, lo = ys[0], hi = ys[0];
          for (double y : ys) sum += y, lo = std::min(lo, y), hi = std::max(hi, y);
          const double mean = sum / ys.size();
          double ss = 0;
          for (double y : ys) ss += (y - mean) * (y - mean);
          s.x.push_back(style == SeriesStyle::bars
                            ? static_cast<double>(std::lower_bound(xs.begin(), xs.end(), x) - xs.begin())
                            : x);
          s.y.push_back(mean);
          spread.lo.push_back(lo);
          spread.hi.push_back(hi);
          several = several || ys.size() > 1;
          const bool last = x == values[v].rbegin()->first;
          if (!time_like(x_name) || last)
            finals.rows.push_back({metric, v, fmt(x), fmt(mean), fmt(std::sqrt(ss / ys.size())), fmt(lo), fmt(hi),
                                   std::to_string(ys.size())});
        }
        if (several) s.bands.push_back(spread);
        c.series.push_back(s);
      }
      sec.charts.push_back(c);
    }
    if (!finals.rows.empty()) sec.tables.push_back(finals);

    // Distributions: one chart per (variant, layer, quantity); the lowest seed's run.
    Ordered<std::tuple<std::string, std::string, std::string, std::string>> dgroups;
    std::map<std::tuple<std::string, std::string, std::string, std::string>, int64_t> first_seed;
    for (const DistributionPoint& p : dists)
      if (p.study == study) {
        const auto key = std::make_tuple(p.variant, p.layer, p.quantity, p.x_name);
        dgroups.add(key);
        auto it = first_seed.find(key);
        if (it == first_seed.end() || p.seed < it->second) first_seed[key] = p.seed;
      }
    for (const auto& key : dgroups.keys) {
      const auto& [variant, layer, quantity, x_name] = key;
      std::map<double, Distribution> by_x;
      for (const DistributionPoint& p : dists)
        if (p.study == study && std::make_tuple(p.variant, p.layer, p.quantity, p.x_name) == key &&
            p.seed == first_seed[key])
          by_x[p.x] = p.d;
      std::vector<double> x;
      std::vector<Distribution> dd;
      for (const auto& [xv, dv] : by_x) x.push_back(xv), dd.push_back(dv);
      Chart c;
      c.name = unique_name(slug(study + "-" + variant + "-" + layer + "-" + quantity));
      c.title = variant + ": " + layer + " " + words(quantity);
      c.x.label = words(x_name);
      c.x.integer = time_like(x_name);
      c.y.label = words(quantity);
      c.width = 420;
      c.height = 320;
      c.series = {report_detail::distribution_series("median (seed " + std::to_string(first_seed[key]) + ")", x, dd)};
      sec.charts.push_back(c);
    }
    if (!dgroups.keys.empty()) sec.columns = 3;
    r.sections.push_back(sec);
  }
  return r;
}

}  // namespace normnet

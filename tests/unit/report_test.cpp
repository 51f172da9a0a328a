// Charts and reports (include/normnet/chart.h, report.h): tick values, linear and log axes,
// the data-to-pixel mapping, legends, bands and bars; the SVG is well-formed XML holding the
// title, labels, ticks and legend as text; the PNG decodes at its size with the series'
// colours where the lines are; CSV readers name file:line:column; bn_stats over a model;
// reports written from run and experiment directories, and none on bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "normnet/chart.h"
#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/image.h"
#include "normnet/model.h"
#include "normnet/report.h"

namespace normnet {
namespace {

namespace fs = std::filesystem;

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The step between ticks is 1, 2 or 5 times a power of ten.
bool nice_step(double step) {
  const double mag = std::pow(10.0, std::floor(std::log10(step) + 1e-9));
  const double m = step / mag;
  return std::abs(m - 1) < 1e-6 || std::abs(m - 2) < 1e-6 || std::abs(m - 5) < 1e-6;
}

TEST(Ticks, LinearCoverTheRangeWithNiceEvenSteps) {
  const std::vector<std::pair<double, double>> ranges = {
      {0, 1}, {0.13, 0.97}, {-3.2, 7.9}, {1, 10}, {1, 2}, {0.8812, 0.8931}, {1e-4, 3e-4}, {-50, -49}, {0, 12345}};
  for (const auto& [lo, hi] : ranges) {
    const Ticks t = linear_ticks(lo, hi, 6);
    ASSERT_GE(t.values.size(), 3u) << lo << ".." << hi;
    EXPECT_LE(t.values.size(), 13u) << lo << ".." << hi;
    EXPECT_LE(t.range_lo, lo);
    EXPECT_GE(t.range_hi, hi);
    EXPECT_EQ(t.values.front(), t.range_lo);
    EXPECT_EQ(t.values.back(), t.range_hi);
    const double step = t.values[1] - t.values[0];
    EXPECT_TRUE(nice_step(step)) << "step " << step << " for " << lo << ".." << hi;
    for (size_t i = 1; i < t.values.size(); ++i)
      EXPECT_NEAR(t.values[i] - t.values[i - 1], step, step * 1e-9) << lo << ".." << hi;
    ASSERT_EQ(t.labels.size(), t.values.size());
    // Labels are distinct and short.
    EXPECT_EQ(std::set<std::string>(t.labels.begin(), t.labels.end()).size(), t.labels.size()) << lo << ".." << hi;
    for (const std::string& l : t.labels) EXPECT_LE(l.size(), 9u) << l;
  }
}

TEST(Ticks, LinearSingleValueAndIntegerSteps) {
  const Ticks one = linear_ticks(0.5, 0.5, 6);
  EXPECT_LT(one.range_lo, 0.5);
  EXPECT_GT(one.range_hi, 0.5);
  const Ticks epochs = linear_ticks(1, 3, 10, 1.0);
  for (double v : epochs.values) EXPECT_EQ(v, std::floor(v));
  EXPECT_EQ(linear_ticks(0, 1, 5).labels[1], "0.2");
  EXPECT_EQ(linear_ticks(-1, 1, 4).labels[1], "-0.5");
  EXPECT_NE(error_of([] { linear_ticks(2, 1); }), "(no error)");
}

TEST(Ticks, LogAxisUsesPowersOfTen) {
  const Ticks t = log_ticks(0.003, 3);
  EXPECT_DOUBLE_EQ(t.range_lo, 0.001);
  EXPECT_DOUBLE_EQ(t.range_hi, 10);
  ASSERT_EQ(t.values.size(), 5u);  // four decades: 1e-3 .. 1e1, no 2 and 5
  for (size_t i = 0; i < t.values.size(); ++i) EXPECT_NEAR(std::log10(t.values[i]), -3.0 + i, 1e-12);
  EXPECT_EQ(t.labels[0], "0.001");
  const Ticks few = log_ticks(1, 50);  // two decades: 1, 2, 5, 10, 20, 50, 100
  EXPECT_EQ(few.values, (std::vector<double>{1, 2, 5, 10, 20, 50, 100}));
  EXPECT_NE(error_of([] { log_ticks(0, 1); }).find("positive"), std::string::npos);
}

TEST(AxisMap, LinearAndLogMapping) {
  const AxisMap lin{AxisScale::linear, 0, 10, 100, 300};
  EXPECT_DOUBLE_EQ(lin.to_px(0), 100);
  EXPECT_DOUBLE_EQ(lin.to_px(10), 300);
  EXPECT_DOUBLE_EQ(lin.to_px(2.5), 150);
  const AxisMap y{AxisScale::linear, 0, 1, 400, 50};  // y grows upwards
  EXPECT_DOUBLE_EQ(y.to_px(1), 50);
  EXPECT_DOUBLE_EQ(y.to_px(0.5), 225);
  const AxisMap lg{AxisScale::log, 0.001, 10, 0, 400};
  EXPECT_NEAR(lg.to_px(0.01), 100, 1e-9);
  EXPECT_NEAR(lg.to_px(1), 300, 1e-9);
  EXPECT_NEAR(lg.to_px(std::sqrt(10.0) * 0.1), 250, 1e-9);  // half a decade
}

Chart sample_chart() {
  Chart c;
  c.name = "sample";
  c.title = "Test accuracy <BN & no BN>";
  c.x.label = "epoch";
  c.x.integer = true;
  c.y.label = "accuracy";
  Series bn;
  bn.name = "with BN";
  bn.x = {1, 2, 3, 4};
  bn.y = {0.80, 0.85, 0.87, 0.88};
  bn.bands = {{"min-max over seeds", {0.78, 0.84, 0.86, 0.87}, {0.82, 0.86, 0.88, 0.89}}};
  Series nobn;
  nobn.name = "without BN";
  nobn.x = {1, 2, 3, 4};
  nobn.y = {0.60, 0.70, 0.75, 0.78};
  nobn.bands = {{"min-max over seeds", {0.55, 0.68, 0.74, 0.77}, {0.65, 0.72, 0.76, 0.79}}};
  c.series = {bn, nobn};
  return c;
}

TEST(Layout, DataMapsInsideThePlotAndTheLegendBelowIt) {
  const Chart c = sample_chart();
  const ChartLayout L = layout_chart(c);
  EXPECT_GT(L.plot.w, 300);
  EXPECT_GT(L.plot.h, 200);
  EXPECT_LE(L.plot.x + L.plot.w, c.width);
  EXPECT_DOUBLE_EQ(L.x.to_px(L.x_ticks.range_lo), L.plot.x);
  EXPECT_DOUBLE_EQ(L.x.to_px(L.x_ticks.range_hi), L.plot.x + L.plot.w);
  EXPECT_DOUBLE_EQ(L.y.to_px(L.y_ticks.range_lo), L.plot.y + L.plot.h);
  EXPECT_DOUBLE_EQ(L.y.to_px(L.y_ticks.range_hi), L.plot.y);
  for (const Series& s : c.series)
    for (size_t i = 0; i < s.x.size(); ++i)
      for (double v : {s.y[i], s.bands[0].lo[i], s.bands[0].hi[i]}) {
        const double px = L.x.to_px(s.x[i]), py = L.y.to_px(v);
        EXPECT_GE(px, L.plot.x);
        EXPECT_LE(px, L.plot.x + L.plot.w);
        EXPECT_GE(py, L.plot.y);
        EXPECT_LE(py, L.plot.y + L.plot.h);
      }
  // Ticks on whole epochs only.
  for (double v : L.x_ticks.values) EXPECT_EQ(v, std::floor(v));
  // Two series and one band name per colour: 4 entries, side by side, inside the chart, below the plot.
  ASSERT_EQ(L.legend.size(), 4u);
  EXPECT_EQ(L.legend[0].text, "with BN");
  EXPECT_FALSE(L.legend[0].band);
  EXPECT_TRUE(L.legend[1].band);
  EXPECT_EQ(L.legend[0].color, L.legend[1].color);
  EXPECT_NE(L.legend[0].color, L.legend[2].color);
  for (size_t i = 0; i < L.legend.size(); ++i) {
    const Rect& b = L.legend[i].box;
    EXPECT_GE(b.x, 0);
    EXPECT_LE(b.x + b.w, c.width);
    EXPECT_GT(b.y, L.plot.y + L.plot.h + 20);  // below the tick labels and the axis label
    EXPECT_LE(b.y + b.h, c.height);
    for (size_t j = 0; j < i; ++j) {
      const Rect& o = L.legend[j].box;
      const bool apart = b.x >= o.x + o.w || o.x >= b.x + b.w || b.y >= o.y + o.h || o.y >= b.y + b.h;
      EXPECT_TRUE(apart) << "legend entries " << j << " and " << i << " overlap";
    }
  }
}

TEST(Layout, ManyLegendEntriesWrapIntoRows) {
  Chart c = sample_chart();
  c.width = 300;
  for (int i = 0; i < 6; ++i) {
    Series s;
    s.name = "variant number " + std::to_string(i);
    s.x = {1, 2};
    s.y = {0.5, 0.6};
    c.series.push_back(s);
  }
  const ChartLayout L = layout_chart(c);
  std::set<double> rows;
  for (const LegendEntry& e : L.legend) {
    rows.insert(e.box.y);
    EXPECT_LE(e.box.x + e.box.w, c.width + 1e-9);
  }
  EXPECT_GE(rows.size(), 3u);
  EXPECT_GT(L.legend_box.y, L.plot.y + L.plot.h);
}

TEST(Layout, LogAxisAndCategories) {
  Chart c;
  c.name = "lr";
  c.title = "final accuracy vs learning rate";
  c.x.label = "learning rate";
  c.x.scale = AxisScale::log;
  c.y.label = "accuracy";
  Series s;
  s.name = "BN";
  s.x = {0.003, 0.03, 0.3, 3};
  s.y = {0.8, 0.85, 0.88, 0.5};
  s.style = SeriesStyle::line_markers;
  c.series = {s};
  const ChartLayout L = layout_chart(c);
  // Equal ratios are equal distances.
  EXPECT_NEAR(L.x.to_px(0.03) - L.x.to_px(0.003), L.x.to_px(3) - L.x.to_px(0.3), 1e-9);
  EXPECT_DOUBLE_EQ(L.x_ticks.range_lo, 0.001);

  Chart b;
  b.name = "bars";
  b.title = "accuracy by statistics";
  b.x.label = "statistics";
  b.y.label = "accuracy";
  b.categories = {"batch", "running", "recalibrated"};
  Series bars;
  bars.name = "seed001";
  bars.x = {0, 1, 2};
  bars.y = {0.9, 0.7, 0.91};
  bars.style = SeriesStyle::bars;
  b.series = {bars};
  const ChartLayout B = layout_chart(b);
  EXPECT_EQ(B.x_ticks.labels, b.categories);
  EXPECT_LE(B.y_ticks.range_lo, 0.0);  // bars start at zero
  EXPECT_NEAR(B.x.to_px(1), B.plot.x + B.plot.w / 2, 1e-9);
}

TEST(Layout, BadNumbersAreErrorsNamingChartAndSeries) {
  Chart c = sample_chart();
  c.series[1].y[2] = std::nan("");
  EXPECT_NE(error_of([&] { layout_chart(c); }).find("chart 'sample', series 'without BN': y[2] is not finite"),
            std::string::npos);
  c = sample_chart();
  c.series[0].bands[0].lo.pop_back();
  EXPECT_NE(error_of([&] { layout_chart(c); }).find("band 'min-max over seeds' has 3 lower"), std::string::npos);
  c = sample_chart();
  c.x.scale = AxisScale::log;
  c.series[0].x[0] = 0;
  EXPECT_NE(error_of([&] { layout_chart(c); }).find("log axis"), std::string::npos);
  c = sample_chart();
  c.series[0].style = SeriesStyle::bars;
  EXPECT_NE(error_of([&] { layout_chart(c); }).find("bars need a category axis"), std::string::npos);
  c = sample_chart();
  c.height = 60;
  EXPECT_NE(error_of([&] { layout_chart(c); }), "(no error)");
}

// A small XML well-formedness check: every tag closes in order, attributes are quoted, and
// the only entities are the five XML ones.
void expect_well_formed(const std::string& xml) {
  std::vector<std::string> stack;
  size_t i = 0;
  while ((i = xml.find('<', i)) != std::string::npos) {
    const size_t end = xml.find('>', i);
    ASSERT_NE(end, std::string::npos) << "unclosed tag at " << i;
    std::string tag = xml.substr(i + 1, end - i - 1);
    if (tag[0] == '/') {
      ASSERT_FALSE(stack.empty()) << "stray </" << tag << ">";
      EXPECT_EQ(stack.back(), tag.substr(1)) << "mismatched close at " << i;
      stack.pop_back();
    } else if (tag.back() != '/') {
      stack.push_back(tag.substr(0, tag.find(' ')));
    }
    size_t quotes = 0;
    for (char ch : tag) quotes += ch == '"';
    EXPECT_EQ(quotes % 2, 0u) << "unbalanced quotes in <" << tag << ">";
    i = end;
  }
  EXPECT_TRUE(stack.empty()) << "unclosed <" << (stack.empty() ? "" : stack.back()) << ">";
  for (size_t a = xml.find('&'); a != std::string::npos; a = xml.find('&', a + 1)) {
    const std::string rest = xml.substr(a, 6);
    EXPECT_TRUE(rest.rfind("&amp;", 0) == 0 || rest.rfind("&lt;", 0) == 0 || rest.rfind("&gt;", 0) == 0 ||
                rest.rfind("&quot;", 0) == 0 || rest.rfind("&#39;", 0) == 0)
        << "bare & at " << a;
  }
}

TEST(Svg, WellFormedSelfContainedWithTextForEveryLabel) {
  const Chart c = sample_chart();
  const std::string svg = render_svg(c);
  expect_well_formed(svg);
  EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
  EXPECT_NE(svg.find("width=\"640\" height=\"400\""), std::string::npos);
  EXPECT_NE(svg.find(">Test accuracy &lt;BN &amp; no BN&gt;</text>"), std::string::npos);
  for (const char* t : {">epoch</text>", ">accuracy</text>", ">with BN</text>", ">without BN</text>",
                        ">min-max over seeds</text>"})
    EXPECT_NE(svg.find(t), std::string::npos) << t;
  const ChartLayout L = layout_chart(c);
  for (const std::string& t : L.y_ticks.labels) EXPECT_NE(svg.find(">" + t + "</text>"), std::string::npos) << t;
  for (const std::string& t : L.x_ticks.labels) EXPECT_NE(svg.find(">" + t + "</text>"), std::string::npos) << t;
  for (const char* banned : {"<script", "href", "url(", "@import", "<image", "<foreignObject"})
    EXPECT_EQ(svg.find(banned), std::string::npos) << banned;
  // The only URL is the SVG namespace name (never fetched).
  size_t urls = 0;
  for (size_t p = svg.find("http"); p != std::string::npos; p = svg.find("http", p + 1)) ++urls;
  EXPECT_EQ(urls, 1u);
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  // One band polygon per series, one polyline per series (grid lines and axes are polylines too).
  size_t polygons = 0;
  for (size_t p = svg.find("<polygon"); p != std::string::npos; p = svg.find("<polygon", p + 1)) ++polygons;
  EXPECT_EQ(polygons, 2u);
}

// (r, g, b) of pixel (x, y) of a decoded (3, H, W) image, 0..255.
std::array<int, 3> pixel(const Tensor& img, int64_t x, int64_t y) {
  const int64_t H = img.dim(1), W = img.dim(2);
  std::array<int, 3> p{};
  for (int64_t ch = 0; ch < 3; ++ch) p[ch] = static_cast<int>(std::lround(img.data()[ch * H * W + y * W + x] * 255));
  return p;
}

TEST(Png, DecodesAtItsSizeWithTheSeriesColoursOnTheLines) {
  if (!png_rendering_available()) GTEST_SKIP() << "built without cairo";
  Chart c;
  c.name = "flat";
  c.title = "two flat lines";
  c.x.label = "x";
  c.y.label = "y";
  c.width = 500;
  c.height = 320;
  Series red{"red", {0, 10}, {0.25, 0.25}, {}, SeriesStyle::line, "#ff0000"};
  Series blue{"blue", {0, 10}, {0.75, 0.75}, {}, SeriesStyle::line, "#0000ff"};
  blue.bands = {{"spread", {0.6, 0.6}, {0.9, 0.9}}};
  c.series = {red, blue};
  const std::vector<uint8_t> bytes = render_png(c);
  ASSERT_GT(bytes.size(), 100u);
  const Tensor img = decode_png(bytes.data(), bytes.size(), "chart.png", 3, 320, 500);
  const ChartLayout L = layout_chart(c);
  const int64_t x = std::lround(L.x.to_px(5));
  const auto r = pixel(img, x, std::lround(L.y.to_px(0.25)));
  EXPECT_GT(r[0], 200);
  EXPECT_LT(r[1], 80);
  EXPECT_LT(r[2], 80);
  const auto b = pixel(img, x, std::lround(L.y.to_px(0.75)));
  EXPECT_LT(b[0], 80);
  EXPECT_GT(b[2], 200);
  // Inside the band, away from the line: a light blue tint, not white and not the line colour.
  const auto band = pixel(img, x, std::lround(L.y.to_px(0.85)));
  EXPECT_GT(band[2], band[0] + 20);
  EXPECT_GT(band[0], 150);
  // Corner: white background; between the lines (no band): white or grid grey.
  EXPECT_EQ(pixel(img, 1, 1), (std::array<int, 3>{255, 255, 255}));
  const auto gap = pixel(img, x + 3, std::lround(L.y.to_px(0.45)));
  EXPECT_GT(gap[0], 200);
  EXPECT_EQ(gap[0], gap[2]);
  // Text drawn: the title row holds dark pixels.
  int dark = 0;
  for (int64_t yy = 8; yy < 28; ++yy)
    for (int64_t xx = 0; xx < 500; ++xx) dark += pixel(img, xx, yy)[0] < 100;
  EXPECT_GT(dark, 50);
}

TEST(Png, BarsAreFilledWithTheirColour) {
  if (!png_rendering_available()) GTEST_SKIP() << "built without cairo";
  Chart c;
  c.name = "bars";
  c.title = "bars";
  c.x.label = "kind";
  c.y.label = "value";
  c.categories = {"a", "b"};
  c.series = {Series{"s", {0, 1}, {1.0, 2.0}, {}, SeriesStyle::bars, "#00aa00"}};
  const auto bytes = render_png(c);
  const Tensor img = decode_png(bytes.data(), bytes.size(), "bars.png", 3, c.height, c.width);
  const ChartLayout L = layout_chart(c);
  const auto p = pixel(img, std::lround(L.x.to_px(1)), std::lround(L.y.to_px(1.0)));
  EXPECT_LT(p[0], 100);
  EXPECT_GT(p[1], 120);
  // Above bar "a" (value 1) at height 1.5: background.
  const auto above = pixel(img, std::lround(L.x.to_px(0)), std::lround(L.y.to_px(1.5)));
  EXPECT_GT(above[0], 200);
}

TEST(Csv, ParsesAndNamesFileLineColumnOfBadFields) {
  const CsvTable t = parse_csv("a,b,c\n1,2.5,x\n-3,1e-3,\n", "f.csv", {"a", "b"});
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.integer(1, 0), -3);
  EXPECT_DOUBLE_EQ(t.number(1, 1), 1e-3);
  EXPECT_TRUE(std::isnan(t.number_or_nan(1, 2)));
  EXPECT_NE(error_of([&] { t.number(0, 2); }).find("f.csv:2:7: c 'x' is not a finite number"), std::string::npos);
  EXPECT_NE(error_of([&] { t.integer(0, 1); }).find("f.csv:2:3: b '2.5' is not an integer"), std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a,b\n1,2\n3\n", "g.csv", {}); }).find("g.csv:3:2: 1 fields, expected 2"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a,b\n1,2\n", "g.csv", {"c"}); }).find("g.csv:1:1: no column 'c'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("", "e.csv", {}); }).find("e.csv: the file is empty"), std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a\n\n1\n", "b.csv", {}); }).find("b.csv:2:1: blank line"), std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a,a\n", "d.csv", {}); }).find("d.csv:1:3: column 'a' appears twice"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a\n\"x\"\n", "q.csv", {}); }).find("q.csv:2:1: quoted fields"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a\ninf\n", "i.csv", {}).number(0, 0); }).find("i.csv:2:1"), std::string::npos);
  EXPECT_EQ(csv_line({"a", "1.5", ""}), "a,1.5,\n");
  EXPECT_NE(error_of([] { csv_line({"a,b"}); }), "(no error)");
}

TEST(Distribution, PercentilesInterpolateLinearly) {
  const Distribution d = describe_values({5, 1, 4, 2, 3});
  EXPECT_EQ(d.count, 5);
  EXPECT_DOUBLE_EQ(d.min, 1);
  EXPECT_DOUBLE_EQ(d.max, 5);
  EXPECT_DOUBLE_EQ(d.p50, 3);
  EXPECT_DOUBLE_EQ(d.p25, 2);
  EXPECT_DOUBLE_EQ(d.p5, 1.2);
  EXPECT_DOUBLE_EQ(d.p95, 4.8);
  EXPECT_DOUBLE_EQ(d.mean, 3);
  EXPECT_DOUBLE_EQ(d.std, std::sqrt(2.0));
}

TEST(BnStats, EveryBatchNormLayerAndRoundTripThroughCsv) {
  Model m = load_model("seed001");
  m.init_parameters(1);
  const std::vector<BnStatsRow> rows = bn_stats(m, 3);
  std::set<std::string> layers;
  int bn_layers = 0;
  for (auto& [name, buffer] : m.net->named_buffers())
    if (name.size() > 12 && name.compare(name.size() - 12, 12, "running_mean") == 0) ++bn_layers;
  ASSERT_GT(bn_layers, 0);
  ASSERT_EQ(rows.size(), static_cast<size_t>(4 * bn_layers));  // running_mean, running_var, weight, bias
  for (const BnStatsRow& r : rows) {
    layers.insert(r.layer);
    EXPECT_EQ(r.epoch, 3);
    EXPECT_NE(r.kind.find("BatchNorm"), std::string::npos);
    EXPECT_GT(r.d.count, 0);
    if (r.quantity == "running_var" || r.quantity == "weight") {  // initial values: 1
      EXPECT_EQ(r.d.min, 1);
      EXPECT_EQ(r.d.max, 1);
    }
  }
  EXPECT_EQ(layers.size(), static_cast<size_t>(bn_layers));
  const std::string text = bn_stats_csv(rows);
  std::vector<std::string> cols = {"epoch", "layer", "kind", "quantity"};
  const std::vector<BnStatsRow> back = parse_bn_stats(parse_csv(text, "bn_stats.csv", cols));
  ASSERT_EQ(back.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(back[i].layer, rows[i].layer);
    EXPECT_EQ(back[i].quantity, rows[i].quantity);
    EXPECT_EQ(back[i].d.count, rows[i].d.count);
    EXPECT_NEAR(back[i].d.p50, rows[i].d.p50, 1e-8 * (1 + std::abs(rows[i].d.p50)));
  }
}

class ReportDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("normnet_report_test_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { write_file_atomic(dir_ + "/" + name, text); }
  std::string read(const std::string& name) {
    const auto b = read_file(dir_ + "/" + name);
    return std::string(b.begin(), b.end());
  }
  std::string dir_;
};

TEST_F(ReportDir, RunDirectoryGivesChartsTablesAndPngs) {
  write("metrics.csv",
        "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_second,lr\n"
        "1,0.812345,0.701000,0.654321,0.760000,1.500,2000.0,0.02\n"
        "2,0.512345,0.801000,0.554321,0.790000,,,0.02\n");
  Model m = load_model("seed001");
  m.init_parameters(1);
  auto rows = bn_stats(m, 1), rows2 = bn_stats(m, 2);
  rows.insert(rows.end(), rows2.begin(), rows2.end());
  write("bn_stats.csv", bn_stats_csv(rows));
  EXPECT_EQ(detect_report_kind(dir_), ReportKind::run);
  const std::string path = rebuild_report(dir_);
  EXPECT_EQ(path, dir_ + "/report.html");
  const std::string html = read("report.html");
  EXPECT_EQ(html.find("<script"), std::string::npos);
  for (const char* s : {"<td class=\"num\">0.790000</td>", "<td class=\"num\">0.654321</td>", "id=\"chart-loss\"",
                        "id=\"chart-accuracy\"", "id=\"chart-lr\"", "id=\"chart-images-per-second\""})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  int figures = 0;
  for (size_t p = html.find("<figure"); p != std::string::npos; p = html.find("<figure", p + 1)) ++figures;
  std::set<std::string> layers;
  for (const BnStatsRow& r : rows) layers.insert(r.layer);
  EXPECT_EQ(figures, 4 + 4 * static_cast<int>(layers.size()));
  int pngs = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/charts")) {
    ++pngs;
    const auto b = read_file(e.path().string());
    EXPECT_EQ(std::string(b.begin() + 1, b.begin() + 4), "PNG") << e.path();
  }
  if (png_rendering_available()) {
    EXPECT_EQ(pngs, figures);
  }
}

TEST_F(ReportDir, ExperimentDirectoryAggregatesSeeds) {
  std::vector<CurvePoint> pts;
  for (int seed : {1, 2, 3})
    for (int e = 1; e <= 3; ++e) {
      pts.push_back({"bn-vs-none", "bn", seed, "epoch", double(e), "test_accuracy", 0.8 + 0.01 * e + 0.001 * seed});
      pts.push_back({"bn-vs-none", "none", seed, "epoch", double(e), "test_accuracy", 0.7 + 0.01 * e});
    }
  for (double lr : {0.003, 0.03, 0.3}) pts.push_back({"learning-rate", "bn", 1, "lr", lr, "final_accuracy", 0.8});
  write("curves.csv", curves_csv(pts));
  write("studies.csv", "study,title,description\nbn-vs-none,BN vs no BN,Does BN speed up training?\n");
  write("tables.csv", "study,table,row,column,value\nbn-vs-none,steps to 80%,bn,steps,120\n");
  DistributionPoint dp{"covariate-shift", "bn", 1, "conv1", "preactivation", "step", 10, describe_values({1, 2, 3})};
  write("distributions.csv", distributions_csv({dp, {dp.study, dp.variant, 1, "conv1", "preactivation", "step", 20,
                                                     describe_values({2, 3, 4})}}));
  EXPECT_EQ(detect_report_kind(dir_), ReportKind::experiment);
  const Report r = experiment_report(dir_);
  ASSERT_EQ(r.sections.size(), 3u);
  EXPECT_EQ(r.sections[0].heading, "BN vs no BN");
  ASSERT_EQ(r.sections[0].charts.size(), 1u);
  const Chart& c = r.sections[0].charts[0];
  ASSERT_EQ(c.series.size(), 2u);
  EXPECT_EQ(c.series[0].name, "bn");
  EXPECT_NEAR(c.series[0].y[0], 0.812, 1e-12);  // mean over seeds 1..3
  ASSERT_EQ(c.series[0].bands.size(), 1u);
  EXPECT_NEAR(c.series[0].bands[0].lo[0], 0.811, 1e-12);
  EXPECT_NEAR(c.series[0].bands[0].hi[0], 0.813, 1e-12);
  EXPECT_EQ(c.series[1].bands.size(), 1u);
  EXPECT_EQ(r.sections[0].tables[0].rows[0], (std::vector<std::string>{"bn", "120"}));
  EXPECT_EQ(r.sections[1].charts[0].x.scale, AxisScale::log);  // lr
  // charts.csv overrides a chart's defaults: bars over the swept values as categories.
  write("charts.csv", "study,metric,x_name,title,style\nlearning-rate,final_accuracy,lr,Accuracy by lr,bars\n");
  const Report with_spec = experiment_report(dir_);
  const Chart& bars = with_spec.sections[1].charts[0];
  EXPECT_EQ(bars.title, "Accuracy by lr");
  EXPECT_EQ(bars.categories, (std::vector<std::string>{"0.003", "0.03", "0.3"}));
  EXPECT_EQ(bars.series[0].style, SeriesStyle::bars);
  EXPECT_EQ(bars.series[0].x, (std::vector<double>{0, 1, 2}));
  write("charts.csv", "study,metric,x_name,style\nlearning-rate,final_accuracy,lr,pie\n");
  EXPECT_NE(error_of([&] { experiment_report(dir_); }).find("charts.csv:2:33: style 'pie' is not one of"),
            std::string::npos);
  write("charts.csv", "study,metric,x_name\n");
  EXPECT_EQ(r.sections[2].charts[0].series[0].bands.size(), 3u);
  rebuild_report(dir_);
  const std::string html = read("report.html");
  EXPECT_NE(html.find("<h2>BN vs no BN</h2>"), std::string::npos);
  EXPECT_NE(html.find("Does BN speed up training?"), std::string::npos);
}

TEST_F(ReportDir, BadInputWritesNothing) {
  EXPECT_NE(error_of([&] { rebuild_report(dir_ + "/missing"); }).find("does not exist"), std::string::npos);
  EXPECT_NE(error_of([&] { rebuild_report(dir_); }).find("holds neither metrics.csv"), std::string::npos);
  write("curves.csv", "study,variant,seed,x_name,x,metric,value\ns,v,1,epoch,1,acc,0.5\ns,v,1,epoch,two,acc,0.6\n");
  EXPECT_NE(error_of([&] { rebuild_report(dir_); }).find("curves.csv:3:13: x 'two' is not a finite number"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ + "/report.html"));
  EXPECT_FALSE(fs::exists(dir_ + "/charts"));
  // A bad chart name is refused before anything is written.
  Report r;
  r.title = "t";
  Section s;
  s.charts = {sample_chart()};
  s.charts[0].name = "../escape";
  r.sections = {s};
  EXPECT_NE(error_of([&] { write_report(r, dir_); }).find("chart name '../escape'"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ + "/report.html"));
}

}  // namespace
}  // namespace normnet

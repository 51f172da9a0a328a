// GroupNorm, LayerNorm and InstanceNorm1d/2d as modules and model-file layers
// (docs/normalization.md, docs/model-format.md): keys and defaults, describe(), state_dict
// names and shapes, shape errors naming the layer, InstanceNorm's running statistics (batch
// average of the per-instance statistics, unbiased variance, num_batches_tracked never advanced),
// evaluation with and without tracking, the one-spatial-element error, the empty batch.
// Expected values are computed here in double from the formulas; the kernels themselves are
// tested in kernels_norm_test and gradcheck_norm_test, the numbers against PyTorch in
// tests/torch/test_norm_parity.py.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "normnet/error.h"
#include "normnet/layers.h"
#include "normnet/model.h"
#include "normnet/random.h"

namespace normnet {
namespace {

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing '" << parts.front() << "'";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const auto& p : parts)
      EXPECT_NE(what.find(p), std::string::npos) << "'" << p << "' not in: " << what;
  }
}

// A model of `layers` on per-sample `input`, ended by a Flatten so the builder's (N, classes)
// rule holds.
Model build(const std::string& layers, const std::string& input, int64_t classes) {
  const std::string text = R"({"input": )" + input + R"(, "classes": )" + std::to_string(classes) +
                           R"(, "layers": [)" + layers +
                           R"(, {"type": "Flatten", "name": "out"}]})";
  return build_model(text, "test.json");
}

Tensor random_tensor(const Shape& shape, Rng& rng, double mean = 0.5, double spread = 2.0) {
  Tensor x(shape);
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data()[i] = static_cast<float>(mean + spread * (2.0 * rng.uniform() - 1.0));
  return x;
}

// Per-(n, c) mean and biased variance over the positions of an (N, C, ...) tensor.
void instance_stats(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  const int64_t n = x.dim(0), c = x.dim(1), s = x.numel() / (n * c);
  mean.assign(n * c, 0.0);
  var.assign(n * c, 0.0);
  for (int64_t i = 0; i < n * c; ++i) {
    for (int64_t j = 0; j < s; ++j) mean[i] += x.data()[i * s + j];
    mean[i] /= s;
    for (int64_t j = 0; j < s; ++j)
      var[i] += (x.data()[i * s + j] - mean[i]) * (x.data()[i * s + j] - mean[i]);
    var[i] /= s;
  }
}

std::vector<std::string> names(Module& m) {
  std::vector<std::string> out;
  for (auto& [n, p] : m.named_parameters()) out.push_back(n);
  for (auto& [n, b] : m.named_buffers()) out.push_back(n);
  return out;
}

TEST(NormModule, BuildDescribeAndStateDictNames) {
  Model gn = build(R"({"type": "GroupNorm", "name": "gn", "num_groups": 2, "num_channels": 6})",
                   "[6, 2, 3]", 36);
  EXPECT_EQ(gn.net->at(0).describe(), "GroupNorm(2, 6)");
  EXPECT_EQ(names(*gn.net), (std::vector<std::string>{"gn.weight", "gn.bias"}));
  Model gn2 = build(
      R"({"type": "GroupNorm", "num_groups": 3, "num_channels": 3, "eps": 0.001, "affine": false})",
      "[3, 4]", 12);
  EXPECT_EQ(gn2.net->at(0).describe(), "GroupNorm(3, 3, eps=0.001, affine=False)");
  EXPECT_TRUE(names(*gn2.net).empty());

  Model ln =
      build(R"({"type": "LayerNorm", "name": "ln", "normalized_shape": [2, 3]})", "[4, 2, 3]", 24);
  auto& l = dynamic_cast<LayerNorm&>(ln.net->at(0));
  EXPECT_EQ(l.describe(), "LayerNorm((2, 3))");
  EXPECT_EQ(l.weight.value.shape(), (Shape{2, 3}));
  EXPECT_EQ(l.weight.value.at({1, 2}), 1.0f);
  EXPECT_EQ(l.bias.value.at({1, 2}), 0.0f);
  EXPECT_EQ(names(*ln.net), (std::vector<std::string>{"ln.weight", "ln.bias"}));
  Model ln2 = build(
      R"({"type": "LayerNorm", "normalized_shape": 5, "elementwise_affine": false, "eps": 0.01})",
      "[5]", 5);
  EXPECT_EQ(ln2.net->at(0).describe(), "LayerNorm((5,), eps=0.01, elementwise_affine=False)");
  EXPECT_TRUE(names(*ln2.net).empty());

  Model in =
      build(R"({"type": "InstanceNorm2d", "name": "in", "num_features": 3})", "[3, 2, 2]", 12);
  EXPECT_EQ(in.net->at(0).describe(), "InstanceNorm2d(3)");
  EXPECT_TRUE(names(*in.net).empty());  // affine and tracking off by default, as PyTorch
  Model in2 = build(R"({"type": "InstanceNorm1d", "name": "in", "num_features": 3, "affine": true,
                        "track_running_stats": true, "momentum": 0.3})",
                    "[3, 5]", 15);
  EXPECT_EQ(in2.net->at(0).describe(),
            "InstanceNorm1d(3, momentum=0.3, affine=True, track_running_stats=True)");
  EXPECT_EQ(names(*in2.net),
            (std::vector<std::string>{"in.weight", "in.bias", "in.running_mean", "in.running_var",
                                      "in.num_batches_tracked"}));
}

TEST(NormModule, BuildErrorsNameTheLayer) {
  expect_error(
      [] {
        build(R"({"type": "GroupNorm", "name": "gn", "num_groups": 4, "num_channels": 6})",
              "[6, 2]", 12);
      },
      {"test.json: layers[0] (GroupNorm 'gn')",
       "num_channels (6) must be divisible by num_groups (4)"});
  expect_error(
      [] {
        build(R"({"type": "GroupNorm", "name": "gn", "num_groups": 2, "num_channels": 4})",
              "[6, 2]", 12);
      },
      {"layers[0] (GroupNorm 'gn')", "expected 4 channels", "(1, 6, 2)"});
  expect_error([] { build(R"({"type": "GroupNorm", "num_channels": 4})", "[4]", 4); },
               {"missing required key 'num_groups'"});
  expect_error(
      [] {
        build(R"({"type": "LayerNorm", "name": "ln", "normalized_shape": [3, 4]})", "[4, 3]", 12);
      },
      {"layers[0] (LayerNorm 'ln')", "ending in normalized_shape (3, 4)", "got (1, 4, 3)"});
  expect_error([] { build(R"({"type": "LayerNorm", "normalized_shape": "8"})", "[8]", 8); },
               {"'normalized_shape' must be an integer or an array of integers"});
  expect_error([] { build(R"({"type": "LayerNorm", "normalized_shape": [0]})", "[8]", 8); },
               {"normalized_shape sizes must be positive"});
  expect_error(
      [] { build(R"({"type": "LayerNorm", "normalized_shape": 8, "affine": true})", "[8]", 8); },
      {"unknown key 'affine'"});
  expect_error(
      [] { build(R"({"type": "InstanceNorm2d", "name": "in", "num_features": 3})", "[3, 5]", 15); },
      {"layers[0] (InstanceNorm2d 'in')", "expected 4D input (N, C, H, W)", "(1, 3, 5)"});
  expect_error(
      [] { build(R"({"type": "InstanceNorm1d", "name": "in", "num_features": 2})", "[3, 5]", 15); },
      {"layers[0] (InstanceNorm1d 'in')", "expected 2 channels"});
  expect_error(
      [] {
        build(R"({"type": "InstanceNorm1d", "num_features": 3, "momentum": null})", "[3, 5]", 15);
      },
      {"'momentum' must be a number"});
  expect_error(
      [] { build(R"({"type": "GroupNorm2d", "num_groups": 1, "num_channels": 3})", "[3, 5]", 15); },
      {"unknown layer type 'GroupNorm2d'", "GroupNorm, LayerNorm, InstanceNorm1d, InstanceNorm2d"});
}

// normalized_shape equal to the whole per-sample shape: one row per sample.
TEST(NormModule, LayerNormOverTheWholeSample) {
  Model m = build(R"({"type": "LayerNorm", "normalized_shape": [3, 2]})", "[3, 2]", 6);
  Rng rng(3);
  Tensor x = random_tensor(Shape{4, 3, 2}, rng);
  Tensor y = m.net->at(0).forward(x);
  for (int64_t n = 0; n < 4; ++n) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < 6; ++j) mean += x.data()[n * 6 + j] / 6.0;
    for (int64_t j = 0; j < 6; ++j)
      var += (x.data()[n * 6 + j] - mean) * (x.data()[n * 6 + j] - mean) / 6.0;
    for (int64_t j = 0; j < 6; ++j)
      EXPECT_NEAR(y.data()[n * 6 + j], (x.data()[n * 6 + j] - mean) / std::sqrt(var + 1e-5), 1e-5);
  }
}

TEST(NormModule, GroupNormIsTheSameInTrainAndEval) {
  GroupNormOptions o;
  o.num_groups = 2, o.num_channels = 4;
  GroupNorm gn(o);
  Rng rng(5);
  for (int64_t c = 0; c < 4; ++c)
    gn.weight.value.data()[c] = 0.5f + 0.25f * c, gn.bias.value.data()[c] = 0.1f * c;
  Tensor x = random_tensor(Shape{3, 4, 5}, rng);
  Tensor a = gn.forward(x);
  gn.eval();
  Tensor b = gn.forward(x);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(a.data()[i], b.data()[i]);
  // Group 1 of sample 2: channels 2 and 3, 10 values.
  double mean = 0, var = 0;
  for (int64_t j = 0; j < 10; ++j) mean += x.data()[(2 * 4 + 2) * 5 + j] / 10.0;
  for (int64_t j = 0; j < 10; ++j) {
    const double d = x.data()[(2 * 4 + 2) * 5 + j] - mean;
    var += d * d / 10.0;
  }
  const int64_t i = (2 * 4 + 3) * 5 + 4;  // channel 3
  EXPECT_NEAR(a.data()[i], (x.data()[i] - mean) / std::sqrt(var + 1e-5) * 1.25 + 0.3, 1e-5);
}

TEST(NormModule, InstanceNormRunningStatisticsAreTheBatchAverage) {
  InstanceNormOptions o;
  o.dims = 2, o.num_features = 3, o.track_running_stats = true, o.affine = true, o.momentum = 0.25;
  InstanceNorm in(o);
  Rng rng(7);
  std::vector<double> rm(3, 0.0), rv(3, 1.0);
  for (int step = 0; step < 3; ++step) {
    Tensor x = random_tensor(Shape{4, 3, 2, 3}, rng, step, 1.0 + step);
    in.forward(x);
    std::vector<double> mean, var;
    instance_stats(x, mean, var);
    for (int64_t c = 0; c < 3; ++c) {
      double m = 0, v = 0;
      for (int64_t n = 0; n < 4; ++n) m += mean[n * 3 + c] / 4, v += var[n * 3 + c] * 6.0 / 5.0 / 4;
      rm[c] = 0.75 * rm[c] + 0.25 * m;
      rv[c] = 0.75 * rv[c] + 0.25 * v;
      EXPECT_NEAR(in.running_mean.data()[c], rm[c], 1e-5 * (1 + std::fabs(rm[c]))) << step;
      EXPECT_NEAR(in.running_var.data()[c], rv[c], 1e-5 * (1 + rv[c])) << step;
    }
  }
  EXPECT_EQ(in.num_batches_tracked, 0);  // PyTorch's InstanceNorm never advances it

  // Eval: the running statistics normalize, nothing is updated.
  in.eval();
  in.weight.value.data()[1] = 2.0f, in.bias.value.data()[1] = -1.0f;
  const std::vector<float> rm_before(in.running_mean.data(), in.running_mean.data() + 3);
  Tensor x = random_tensor(Shape{2, 3, 2, 2}, rng);
  Tensor y = in.forward(x);
  const int64_t i = (1 * 3 + 1) * 4 + 3;
  EXPECT_NEAR(y.data()[i], (x.data()[i] - rm[1]) / std::sqrt(rv[1] + 1e-5) * 2.0 - 1.0, 1e-5);
  for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(in.running_mean.data()[c], rm_before[c]);
  // One spatial element is fine with running statistics.
  EXPECT_NO_THROW(in.forward(random_tensor(Shape{2, 3, 1, 1}, rng)));
}

TEST(NormModule, InstanceNormWithoutTrackingUsesInstanceStatisticsInEval) {
  InstanceNormOptions o;
  o.dims = 1, o.num_features = 2;
  InstanceNorm in(o);
  Rng rng(9);
  Tensor x = random_tensor(Shape{3, 2, 5}, rng);
  Tensor a = in.forward(x);
  in.eval();
  Tensor b = in.forward(x);
  std::vector<double> mean, var;
  instance_stats(x, mean, var);
  for (int64_t i = 0; i < x.numel(); ++i) {
    ASSERT_EQ(a.data()[i], b.data()[i]);
    EXPECT_NEAR(a.data()[i], (x.data()[i] - mean[i / 5]) / std::sqrt(var[i / 5] + 1e-5), 1e-5);
  }
}

TEST(NormModule, InstanceNormRefusesOneSpatialElementWithInstanceStatistics) {
  InstanceNormOptions o;
  o.dims = 2, o.num_features = 3;
  InstanceNorm in(o);
  in.path = "in1";
  Rng rng(11);
  expect_error(
      [&] {
        in.forward(random_tensor(Shape{2, 3, 1, 1}, rng));
      },
      {"InstanceNorm2d 'in1': expected more than 1 spatial element when training, got input (2, 3, "
       "1, 1)"});
  in.eval();
  expect_error(
      [&] {
        in.forward(random_tensor(Shape{2, 3, 1, 1}, rng));
      },
      {"more than 1 spatial element when using instance statistics (track_running_stats off)"});
}

TEST(NormModule, EmptyBatch) {
  InstanceNormOptions o;
  o.dims = 2, o.num_features = 2, o.track_running_stats = true, o.affine = true;
  InstanceNorm in(o);
  GroupNormOptions go;
  go.num_groups = 1, go.num_channels = 2;
  GroupNorm gn(go);
  LayerNormOptions lo;
  lo.normalized_shape = {2, 3};
  LayerNorm ln(lo);
  for (Module* m : std::vector<Module*>{&in, &gn, &ln}) {
    Tensor y = m->forward(Tensor(Shape{0, 2, 2, 3}));
    EXPECT_EQ(y.shape(), (Shape{0, 2, 2, 3})) << m->kind();
    Tensor dx = m->backward(Tensor(Shape{0, 2, 2, 3}));
    EXPECT_EQ(dx.shape(), (Shape{0, 2, 2, 3})) << m->kind();
    for (auto& [n, p] : m->named_parameters())
      for (int64_t i = 0; i < p->grad.numel(); ++i) EXPECT_EQ(p->grad.data()[i], 0.0f) << m->kind();
  }
  EXPECT_EQ(in.running_mean.data()[0], 0.0f);
  EXPECT_EQ(in.running_var.data()[0], 1.0f);
}

}  // namespace
}  // namespace normnet

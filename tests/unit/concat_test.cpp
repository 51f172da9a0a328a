// The Concat layer (DenseNet and Inception branches): forward equals the branches run one by one
// and joined on the channel dimension, backward equals the sum of the branches' backward on
// their slices of dy, both bit for bit (Concat only copies and adds); a central-difference check
// of the whole block; naming and description errors. PyTorch parity: tests/torch/test_zoo_params.py.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "normnet/error.h"
#include "normnet/model.h"

namespace normnet {
namespace {

// Input (N, 2, 5, 5) -> Concat(identity, conv3x3 -> 3, conv1x1 -> BN -> ReLU -> 4) -> (N, 9, 5, 5).
std::string block(const std::string& extra_branch = "") {
  return R"({"name": "c", "input": [2, 5, 5], "classes": 225, "layers": [
    {"type": "Concat", "name": "cat", "branches": [
      {"name": "input", "layers": []},
      {"name": "b3", "layers": [{"type": "Conv2d", "name": "conv", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1}]},
      {"name": "b1", "layers": [{"type": "Conv2d", "name": "conv", "in_channels": 2, "out_channels": 4, "kernel_size": 1},
                                {"type": "BatchNorm2d", "name": "bn", "num_features": 4}, {"type": "ReLU"}]})" +
         extra_branch + R"(
    ]},
    {"type": "Flatten"}]})";
}

// The same branches as separate one-branch models sharing the block's parameters.
std::string single(const std::string& layers, int64_t channels) {
  return R"({"name": "s", "input": [2, 5, 5], "classes": )" + std::to_string(channels * 25) +
         R"(, "layers": [)" + layers + R"(, {"type": "Flatten"}]})";
}

Tensor randn(const Shape& s, uint64_t seed) {
  Tensor t(s);
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(rng.normal());
  return t;
}

TEST(Concat, NamesAndShapes) {
  Model m = build_model(block(), "c.json");
  std::vector<std::string> names;
  for (auto& [n, p] : m.net->named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"cat.b3.conv.weight", "cat.b3.conv.bias", "cat.b1.conv.weight",
                                             "cat.b1.conv.bias", "cat.b1.bn.weight", "cat.b1.bn.bias"}));
  EXPECT_EQ(m.net->named_buffers().size(), 3u);  // cat.b1.bn.running_mean, running_var, num_batches_tracked
  EXPECT_EQ(m.net->at(0).output_shape(Shape{7, 2, 5, 5}), (Shape{7, 9, 5, 5}));
}

TEST(Concat, ForwardAndBackwardEqualTheBranchesRunSeparately) {
  Model m = build_model(block(), "c.json");
  m.init_parameters(4);
  Model b3 = build_model(single(R"({"type": "Conv2d", "name": "conv", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1})", 3), "s");
  Model b1 = build_model(single(R"({"type": "Conv2d", "name": "conv", "in_channels": 2, "out_channels": 4, "kernel_size": 1},
      {"type": "BatchNorm2d", "name": "bn", "num_features": 4}, {"type": "ReLU"})", 4), "s");
  auto params = m.net->named_parameters();
  auto copy_into = [&](Model& dst, const std::string& prefix) {
    for (auto& [n, p] : dst.net->named_parameters())
      for (auto& [mn, mp] : params)
        if (mn == prefix + n) p->value.copy_from(mp->value);
  };
  copy_into(b3, "cat.b3.");
  copy_into(b1, "cat.b1.");
  const int64_t n = 3;
  const Tensor x = randn(Shape{n, 2, 5, 5}, 1);
  const Tensor dy = randn(Shape{n, 9 * 25}, 2);
  m.net->train();
  const Tensor y = m.net->forward(x);
  const Tensor dx = m.net->backward(dy);
  const Tensor y3 = b3.net->forward(x), y1 = b1.net->forward(x);
  Tensor dy3(Shape{n, 75}), dy1(Shape{n, 100});
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(y.data()[s * 225 + i], x.data()[s * 50 + i]);
    for (int64_t i = 0; i < 75; ++i) {
      EXPECT_EQ(y.data()[s * 225 + 50 + i], y3.data()[s * 75 + i]);
      dy3.data()[s * 75 + i] = dy.data()[s * 225 + 50 + i];
    }
    for (int64_t i = 0; i < 100; ++i) {
      EXPECT_EQ(y.data()[s * 225 + 125 + i], y1.data()[s * 100 + i]);
      dy1.data()[s * 100 + i] = dy.data()[s * 225 + 125 + i];
    }
  }
  const Tensor dx3 = b3.net->backward(dy3), dx1 = b1.net->backward(dy1);
  // Branch order: identity, b3, b1; summed in that order.
  for (int64_t s = 0; s < n; ++s)
    for (int64_t i = 0; i < 50; ++i) {
      const float want = (dy.data()[s * 225 + i] + dx3.data()[s * 50 + i]) + dx1.data()[s * 50 + i];
      EXPECT_EQ(dx.data()[s * 50 + i], want) << s << " " << i;
    }
  for (auto& [name, p] : b3.net->named_parameters())
    for (auto& [mn, mp] : params)
      if (mn == "cat.b3." + name) {
        for (int64_t i = 0; i < p->grad.numel(); ++i) EXPECT_EQ(mp->grad.data()[i], p->grad.data()[i]) << mn;
      }
}

// Central differences in float of loss = sum(y * R) with respect to x, for a block whose
// branches are linear (identity and a convolution): exact up to float rounding.
TEST(Concat, GradientMatchesCentralDifferences) {
  const std::string spec = R"({"name": "c", "input": [2, 4, 4], "classes": 80, "layers": [
    {"type": "Concat", "branches": [{"name": "a", "layers": []},
      {"name": "b", "layers": [{"type": "Conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1}]}]},
    {"type": "Flatten"}]})";
  Model m = build_model(spec, "c.json");
  m.init_parameters(2);
  Tensor x = randn(Shape{2, 2, 4, 4}, 5);
  const Tensor R = randn(Shape{2, 80}, 6);
  auto loss = [&] {
    const Tensor y = m.net->forward(x);
    double l = 0;
    for (int64_t i = 0; i < y.numel(); ++i) l += static_cast<double>(y.data()[i]) * R.data()[i];
    return l;
  };
  m.net->forward(x);
  const Tensor dx = m.net->backward(R).clone();
  const float h = 0.05f;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float v = x.data()[i];
    x.data()[i] = v + h;
    const double plus = loss();
    x.data()[i] = v - h;
    const double minus = loss();
    x.data()[i] = v;
    const double numeric = (plus - minus) / (2.0 * h);
    EXPECT_NEAR(dx.data()[i], numeric, 1e-3 * (1 + std::fabs(numeric))) << i;
  }
}

TEST(Concat, DescriptionErrorsNameTheBranch) {
  auto error_of = [](const std::string& text) -> std::string {
    try {
      build_model(text, "c.json");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  // A branch that changes the spatial size.
  std::string e = error_of(block(R"(, {"name": "pool", "layers": [{"type": "MaxPool2d", "kernel_size": 2}]})"));
  EXPECT_NE(e.find("branches[3]"), std::string::npos) << e;
  EXPECT_NE(e.find("all but the channel dimension"), std::string::npos) << e;
  // A duplicate branch name.
  e = error_of(block(R"(, {"name": "b3", "layers": []})"));
  EXPECT_NE(e.find("duplicate branch name 'b3'"), std::string::npos) << e;
  // An unknown key, no branches.
  e = error_of(block(R"(, {"name": "x", "layers": [], "stride": 2})"));
  EXPECT_NE(e.find("unknown key 'stride'"), std::string::npos) << e;
  e = error_of(R"({"input": [2, 5, 5], "layers": [{"type": "Concat", "branches": []}]})");
  EXPECT_NE(e.find("'branches' must be a non-empty array"), std::string::npos) << e;
}

}  // namespace
}  // namespace normnet

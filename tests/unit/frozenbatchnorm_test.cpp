// FrozenBatchNorm2d (torchvision.ops.FrozenBatchNorm2d semantics, docs/normalization.md):
// state_dict names and kinds (four buffers, no parameters, no num_batches_tracked), values in
// training and evaluation against torchvision's formula written here in double
// (scale = weight * rsqrt(running_var + eps), y = x * scale + (bias - running_mean * scale)),
// the input gradient dy * scale, a checkpoint round trip, and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "normnet/checkpoint.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "normnet/model.h"
#include "normnet/random.h"

namespace normnet {
namespace {

Model frozen_model() {
  return build_model(R"({"input": [3, 2, 3], "classes": 18, "layers": [
      {"type": "FrozenBatchNorm2d", "name": "fbn", "num_features": 3},
      {"type": "Flatten"}]})", "m.json");
}

TEST(FrozenBatchNorm, StateDictIsFourBuffers) {
  Model m = frozen_model();
  EXPECT_TRUE(m.net->named_parameters().empty());
  EXPECT_EQ(m.net->parameter_count(), 0);
  std::vector<std::string> names;
  for (auto& [n, b] : m.net->named_buffers()) {
    names.push_back(n);
    EXPECT_NE(b.f32, nullptr) << n;
    EXPECT_EQ(b.i64, nullptr) << n;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"fbn.weight", "fbn.bias", "fbn.running_mean", "fbn.running_var"}));
  auto* f = dynamic_cast<FrozenBatchNorm*>(&m.net->at(0));
  ASSERT_NE(f, nullptr);
  for (int c = 0; c < 3; ++c) {  // torchvision's initial values
    EXPECT_EQ(f->weight.data()[c], 1.0f);
    EXPECT_EQ(f->bias.data()[c], 0.0f);
    EXPECT_EQ(f->running_mean.data()[c], 0.0f);
    EXPECT_EQ(f->running_var.data()[c], 1.0f);
  }
  EXPECT_EQ(f->describe(), "FrozenBatchNorm2d(3)");
  const StFile sd = state_dict(m);
  std::vector<std::string> keys;
  for (auto& [n, t] : sd.tensors) keys.push_back(n);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"fbn.bias", "fbn.running_mean", "fbn.running_var", "fbn.weight"}));
}

TEST(FrozenBatchNorm, TorchvisionFormulaInTrainingAndEvaluation) {
  Model m = frozen_model();
  auto* f = dynamic_cast<FrozenBatchNorm*>(&m.net->at(0));
  Rng rng(2);
  std::vector<double> w, b, rm, rv;
  for (int c = 0; c < 3; ++c) {
    w.push_back(f->weight.data()[c] = rng.uniform(-2.f, 2.f));
    b.push_back(f->bias.data()[c] = rng.uniform(-1.f, 1.f));
    rm.push_back(f->running_mean.data()[c] = rng.uniform(-3.f, 3.f));
    rv.push_back(f->running_var.data()[c] = rng.uniform(0.1f, 4.f));
  }
  rv[2] = f->running_var.data()[2] = 0.0f;  // eps matters
  const Shape shape{4, 3, 2, 3};
  Tensor x(shape), dy(shape);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng.uniform(-5.f, 5.f), dy.data()[i] = rng.uniform(-1.f, 1.f);
  for (bool training : {true, false}) {
    m.net->train(training);
    const Tensor y = f->forward(x);
    const Tensor dx = f->backward(dy);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t c = (i / 6) % 3;
      const double scale = w[c] / std::sqrt(rv[c] + 1e-5);
      const double want = x.data()[i] * scale + (b[c] - rm[c] * scale);
      EXPECT_NEAR(y.data()[i], want, 3e-6 * (1 + std::fabs(want))) << "y[" << i << "] training " << training;
      EXPECT_NEAR(dx.data()[i], dy.data()[i] * scale, 2e-6 * (1 + std::fabs(scale))) << "dx[" << i << "]";
    }
  }
  // Nothing changes in training: the buffers keep their values.
  EXPECT_EQ(f->running_mean.data()[0], static_cast<float>(rm[0]));
  EXPECT_EQ(f->running_var.data()[1], static_cast<float>(rv[1]));
}

TEST(FrozenBatchNorm, CheckpointRoundTripAndErrors) {
  Model m = frozen_model();
  auto* f = dynamic_cast<FrozenBatchNorm*>(&m.net->at(0));
  f->weight.data()[1] = 2.5f;
  f->running_var.data()[2] = 0.25f;
  const std::string path = ::testing::TempDir() + "frozen_bn_test.safetensors";
  save_checkpoint(path, m, Normalization{});
  LoadedCheckpoint c = load_checkpoint(path);
  auto* g = dynamic_cast<FrozenBatchNorm*>(&c.model.net->at(0));
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->weight.data()[1], 2.5f);
  EXPECT_EQ(g->running_var.data()[2], 0.25f);
  std::remove(path.c_str());

  auto error_of = [](const std::string& input, const std::string& layer) {
    try {
      build_model(R"({"input": )" + input + R"(, "classes": 12, "layers": [)" + layer +
                      R"(, {"type": "Flatten"}]})", "bad.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of("[3, 2, 2]", R"({"type": "FrozenBatchNorm2d", "name": "f", "num_features": 3, "momentum": 0.1})"),
            "bad.json: layers[0] (FrozenBatchNorm2d 'f'): unknown key 'momentum'");
  EXPECT_EQ(error_of("[12]", R"({"type": "FrozenBatchNorm2d", "name": "f", "num_features": 12})"),
            "bad.json: layers[0] (FrozenBatchNorm2d 'f'): expected 4D input (N, C, H, W), got (1, 12)");
  EXPECT_EQ(error_of("[3, 2, 2]", R"({"type": "FrozenBatchNorm2d", "name": "f", "num_features": 2})"),
            "bad.json: layers[0] (FrozenBatchNorm2d 'f'): expected 2 channels, got input (1, 3, 2, 2)");
}

}  // namespace
}  // namespace normnet

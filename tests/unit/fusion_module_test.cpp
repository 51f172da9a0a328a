// Module-level fusion (Sequential::fuse, run by build_model): a model built with fusion and the
// same model with fusion turned off must give bit-identical outputs, input gradients, parameter
// gradients and buffers (running statistics, num_batches_tracked) over several training steps
// and in evaluation, and the same state_dict names. Models: seed001 (Conv-BN-ReLU-MaxPool
// stages), one with a pooled odd plane and a ceil_mode pool that is not fused, and a
// description with Residual blocks (activation ReLU, body ending in BatchNorm, with and without
// a shortcut), a Linear -> BatchNorm1d -> ReLU on (N, C), and a BatchNorm without running
// statistics. The kernels themselves are compared in kernels_fused_test.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "normnet/error.h"
#include "normnet/layers.h"
#include "normnet/model.h"
#include "normnet/random.h"

namespace normnet {
namespace {

const char* kResidualModel = R"({
  "name": "fusion-test", "input": [3, 6, 6], "classes": 4,
  "layers": [
    {"type": "Conv2d", "name": "stem", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
    {"type": "BatchNorm2d", "name": "bn0", "num_features": 4},
    {"type": "ReLU", "name": "relu0"},
    {"type": "Residual", "name": "block1", "activation": "ReLU", "body": [
      {"type": "Conv2d", "name": "conv1", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1},
      {"type": "BatchNorm2d", "name": "bn1", "num_features": 4},
      {"type": "ReLU", "name": "relu1"},
      {"type": "Conv2d", "name": "conv2", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1},
      {"type": "BatchNorm2d", "name": "bn2", "num_features": 4}]},
    {"type": "Residual", "name": "block2", "activation": "ReLU", "body": [
      {"type": "Conv2d", "name": "conv1", "in_channels": 4, "out_channels": 5, "kernel_size": 3, "padding": 1, "stride": 2},
      {"type": "BatchNorm2d", "name": "bn1", "num_features": 5, "momentum": null}],
     "shortcut": [
      {"type": "Conv2d", "name": "0", "in_channels": 4, "out_channels": 5, "kernel_size": 1, "stride": 2},
      {"type": "BatchNorm2d", "name": "1", "num_features": 5}]},
    {"type": "BatchNorm2d", "name": "bn_notrack", "num_features": 5, "track_running_stats": false},
    {"type": "ReLU", "name": "relu_notrack"},
    {"type": "Flatten"},
    {"type": "Linear", "name": "fc1", "in_features": 45, "out_features": 6},
    {"type": "BatchNorm1d", "name": "bn_fc", "num_features": 6, "affine": false},
    {"type": "ReLU"},
    {"type": "Linear", "name": "fc2", "in_features": 6, "out_features": 4}
  ]})";

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), a.numel() * sizeof(float)) == 0;
}

Tensor random_tensor(const Shape& s, Rng& rng) {
  Tensor t(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.uniform(-1.5f, 1.5f);
  return t;
}

// A BatchNorm -> ReLU -> MaxPool2d(2) stage on odd planes (7x9 -> 3x4: the last row and
// column belong to no window), one whose pool cannot be fused (ceil_mode), and a ReLU -> pool
// after a BatchNorm1d-free Linear.
const char* kPoolModel = R"({
  "name": "fusion-pool-test", "input": [2, 7, 9], "classes": 3,
  "layers": [
    {"type": "Conv2d", "name": "conv1", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1},
    {"type": "BatchNorm2d", "name": "bn1", "num_features": 3},
    {"type": "ReLU", "name": "relu1"},
    {"type": "MaxPool2d", "name": "pool1", "kernel_size": 2},
    {"type": "Conv2d", "name": "conv2", "in_channels": 3, "out_channels": 4, "kernel_size": 1},
    {"type": "BatchNorm2d", "name": "bn2", "num_features": 4, "momentum": null},
    {"type": "ReLU", "name": "relu2"},
    {"type": "MaxPool2d", "name": "pool2", "kernel_size": 2, "ceil_mode": true},
    {"type": "Flatten"},
    {"type": "Linear", "name": "fc", "in_features": 16, "out_features": 3}
  ]})";

// Counts the fused layers (2 per BN + ReLU pair, 2 more per pool fused into it), to make sure
// the test exercises the fused paths.
int count_fused(Module& m) {
  int n = 0;
  if (auto* bn = dynamic_cast<BatchNorm*>(&m)) n += bn->fused_relu + (bn->fused_pool != nullptr);
  if (auto* a = dynamic_cast<Activation*>(&m)) n += a->pass_through;
  if (auto* p = dynamic_cast<Pool*>(&m)) n += p->pass_through;
  for (auto& [name, c] : m.children()) n += count_fused(*c);
  return n;
}

void expect_same_state(Model& fused, Model& plain, const std::string& what) {
  auto pf = fused.net->named_parameters(), pp = plain.net->named_parameters();
  ASSERT_EQ(pf.size(), pp.size()) << what;
  for (size_t i = 0; i < pf.size(); ++i) {
    ASSERT_EQ(pf[i].first, pp[i].first) << what;
    EXPECT_TRUE(same_bits(pf[i].second->value, pp[i].second->value)) << what << ": " << pf[i].first;
    EXPECT_TRUE(same_bits(pf[i].second->grad, pp[i].second->grad)) << what << ": grad of " << pf[i].first;
  }
  auto bf = fused.net->named_buffers(), bp = plain.net->named_buffers();
  ASSERT_EQ(bf.size(), bp.size()) << what;
  for (size_t i = 0; i < bf.size(); ++i) {
    ASSERT_EQ(bf[i].first, bp[i].first) << what;
    if (bf[i].second.f32)
      EXPECT_TRUE(same_bits(*bf[i].second.f32, *bp[i].second.f32)) << what << ": " << bf[i].first;
    else
      EXPECT_EQ(*bf[i].second.i64, *bp[i].second.i64) << what << ": " << bf[i].first;
  }
}

void run_and_compare(const std::string& json_text, int expect_fused_pairs, int expect_fused_pools = 0) {
  Model fused = build_model(json_text, "fused");
  Model plain = build_model(json_text, "plain");
  plain.net->fuse(false);
  EXPECT_EQ(count_fused(*fused.net), 2 * expect_fused_pairs + 2 * expect_fused_pools);
  EXPECT_EQ(count_fused(*plain.net), 0);
  fused.init_parameters(7);
  plain.init_parameters(7);
  Rng rng(11);
  const int64_t N = 4;
  for (int step = 0; step < 4; ++step) {
    const bool train = step < 3;
    fused.net->train(train);
    plain.net->train(train);
    const Tensor x = random_tensor(fused.batch_shape(N), rng);
    const Tensor yf = fused.net->forward(x), yp = plain.net->forward(x);
    const std::string what = "step " + std::to_string(step) + (train ? " (train)" : " (eval)");
    ASSERT_TRUE(same_bits(yf, yp)) << what << ": outputs differ";
    const Tensor dy = random_tensor(yf.shape(), rng);
    const Tensor dxf = fused.net->backward(dy), dxp = plain.net->backward(dy);
    EXPECT_TRUE(same_bits(dxf, dxp)) << what << ": input gradients differ";
    expect_same_state(fused, plain, what);
    // A plain SGD step so the next step starts from trained parameters.
    for (Model* m : {&fused, &plain}) {
      for (auto& [name, p] : m->net->named_parameters())
        for (int64_t i = 0; i < p->value.numel(); ++i) p->value.data()[i] -= 0.1f * p->grad.data()[i];
      m->net->zero_grad();
    }
  }
}

TEST(FusionModule, Seed001SameAsUnfused) {
  const Model probe = load_model("seed001");
  run_and_compare(probe.spec, 2, 2);  // bn1+relu1+pool1, bn2+relu2+pool2
}

TEST(FusionModule, PoolOddPlanesAndCeilModeSameAsUnfused) {
  run_and_compare(kPoolModel, 2, 1);  // pool2 (ceil_mode) stays a layer of its own
}

// A fused pool still checks its input: a plane smaller than the window is refused, naming it.
TEST(FusionModule, FusedPoolRejectsTooSmallInput) {
  Model m = build_model(kPoolModel, "small");
  Rng rng(5);
  try {
    m.net->forward(random_tensor(Shape{2, 2, 1, 9}, rng));
    FAIL() << "a 1x9 plane went through MaxPool2d(2)";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pool1"), std::string::npos) << e.what();
  }
}

TEST(FusionModule, ResidualLinearNoTrackSameAsUnfused) {
  // bn0+relu0, block1 bn1+relu1, bn_notrack+relu_notrack, bn_fc+ReLU; and the two Residual
  // blocks' BN + add + ReLU (counted below).
  run_and_compare(kResidualModel, 4);
  Model m = build_model(kResidualModel, "names");
  std::vector<std::string> names;
  for (auto& [n, p] : m.net->named_parameters()) names.push_back(n);
  const std::vector<std::string> want = {
      "stem.weight", "bn0.weight", "bn0.bias", "block1.conv1.weight", "block1.conv1.bias",
      "block1.bn1.weight", "block1.bn1.bias", "block1.conv2.weight", "block1.conv2.bias",
      "block1.bn2.weight", "block1.bn2.bias", "block2.conv1.weight", "block2.conv1.bias",
      "block2.bn1.weight", "block2.bn1.bias", "block2.shortcut.0.weight", "block2.shortcut.0.bias",
      "block2.shortcut.1.weight", "block2.shortcut.1.bias", "bn_notrack.weight", "bn_notrack.bias",
      "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
  EXPECT_EQ(names, want);
}

// The Residual blocks really run forward_add_relu: backward() of their last BatchNorm after a
// fused forward is refused (it must go through backward_add_relu).
TEST(FusionModule, ResidualRunsAddReluKernel) {
  Model m = build_model(kResidualModel, "probe");
  Rng rng(3);
  m.net->forward(random_tensor(m.batch_shape(2), rng));
  Module* block1 = nullptr;
  for (auto& [n, c] : m.net->children())
    if (n == "block1") block1 = c;
  ASSERT_NE(block1, nullptr);
  BatchNorm* bn2 = nullptr;
  for (auto& [n, c] : block1->children())
    if (n == "bn2") bn2 = dynamic_cast<BatchNorm*>(c);
  ASSERT_NE(bn2, nullptr);
  EXPECT_THROW(bn2->backward(Tensor(Shape{2, 4, 6, 6})), Error);
}

// Empty batch through the fused model: empty outputs and gradients, as unfused.
TEST(FusionModule, EmptyBatchEval) {
  Model m = build_model(kResidualModel, "empty");
  m.net->eval();
  Model& mm = m;
  // bn_notrack uses batch statistics in eval: with N = 0 it returns an empty output like the rest.
  const Tensor y = mm.net->forward(Tensor(m.batch_shape(0)));
  EXPECT_EQ(y.shape(), (Shape{0, 4}));
  const Tensor dx = mm.net->backward(Tensor(Shape{0, 4}));
  EXPECT_EQ(dx.shape(), m.batch_shape(0));
}

}  // namespace
}  // namespace normnet

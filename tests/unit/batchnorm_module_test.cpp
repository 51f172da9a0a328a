// normnet::BatchNorm as a module (docs/batchnorm.md): running statistics with a momentum and as a
// cumulative average, num_batches_tracked, evaluation with running statistics, tracking off,
// affine off, the one-value-per-channel error, the empty batch, and the state_dict names of a
// zoo model. Expected values are computed here in double from the formulas, one step at a
// time; the kernels themselves are tested in kernels_batchnorm_test.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "normnet/error.h"
#include "normnet/layers.h"
#include "normnet/model.h"
#include "normnet/random.h"

namespace normnet {
namespace {

// Per-channel statistics of an (N, C, ...) tensor over N * S values, in double.
struct ChannelStats {
  std::vector<double> mean, var_biased, var_unbiased;
};

ChannelStats channel_stats(const Tensor& x) {
  const int64_t n = x.dim(0), c = x.dim(1), s = x.numel() / std::max<int64_t>(n * c, 1);
  const int64_t m = n * s;
  ChannelStats st;
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) sum += x.data()[(i * c + ch) * s + j];
    const double mean = sum / static_cast<double>(m);
    double ss = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) {
        const double d = x.data()[(i * c + ch) * s + j] - mean;
        ss += d * d;
      }
    st.mean.push_back(mean);
    st.var_biased.push_back(ss / static_cast<double>(m));
    st.var_unbiased.push_back(m > 1 ? ss / static_cast<double>(m - 1) : NAN);
  }
  return st;
}

// A batch whose channel ch has mean about 2*ch - 1 and spread about 1 + ch, so that a mixed-up
// channel or a biased/unbiased confusion shows.
Tensor random_batch(const Shape& shape, Rng& rng) {
  Tensor x(shape);
  const int64_t n = shape[0], c = shape[1], s = shape.numel() / std::max<int64_t>(n * c, 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t j = 0; j < s; ++j)
        x.data()[(i * c + ch) * s + j] =
            static_cast<float>(2.0 * ch - 1.0 + (1.0 + ch) * (2.0 * rng.uniform() - 1.0));
  return x;
}

BatchNormOptions bn_options(int dims, int64_t c) {
  BatchNormOptions o;
  o.dims = dims;
  o.num_features = c;
  return o;
}

// Relative-and-absolute closeness for float values that went through a few float roundings.
void expect_near_rel(double got, double want, const std::string& what, double rel = 2e-6) {
  EXPECT_NEAR(got, want, rel * (1.0 + std::fabs(want))) << what;
}

std::vector<Shape> shapes_for(int dims) {
  if (dims == 2) return {Shape{4, 3, 2, 3}, Shape{2, 3, 5, 1}, Shape{1, 3, 2, 2}};
  return {Shape{6, 3}, Shape{2, 3, 4}, Shape{1, 3, 5}};
}

TEST(BatchNormModule, RunningStatisticsFollowTheMomentumFormula) {
  for (int dims : {1, 2})
    for (const Shape& shape : shapes_for(dims))
      for (double momentum : {0.1, 0.35}) {
        const std::string what = "BatchNorm" + std::to_string(dims) + "d on " + shape.str() +
                                 ", momentum " + std::to_string(momentum);
        BatchNormOptions o = bn_options(dims, shape[1]);
        o.momentum = momentum;
        BatchNorm bn(o);
        bn.train();
        Rng rng(7);
        std::vector<double> rm(3, 0.0), rv(3, 1.0);
        const int k = 5;
        for (int step = 0; step < k; ++step) {
          const Tensor x = random_batch(shape, rng);
          bn.forward(x);
          const ChannelStats st = channel_stats(x);
          for (int c = 0; c < 3; ++c) {
            rm[c] = (1.0 - momentum) * rm[c] + momentum * st.mean[c];
            rv[c] = (1.0 - momentum) * rv[c] + momentum * st.var_unbiased[c];
          }
        }
        EXPECT_EQ(bn.num_batches_tracked, k) << what;
        for (int c = 0; c < 3; ++c) {
          expect_near_rel(bn.running_mean.data()[c], rm[c], what + ": running_mean[" + std::to_string(c) + "]");
          expect_near_rel(bn.running_var.data()[c], rv[c], what + ": running_var[" + std::to_string(c) + "]");
        }
      }
}

TEST(BatchNormModule, TrainingNormalizesWithBiasedBatchVariance) {
  BatchNorm bn(bn_options(2, 3));
  const float g[3] = {0.5f, -2.0f, 1.5f}, b[3] = {0.25f, 1.0f, -3.0f};
  for (int c = 0; c < 3; ++c) bn.weight.value.data()[c] = g[c], bn.bias.value.data()[c] = b[c];
  Rng rng(3);
  const Tensor x = random_batch(Shape{3, 3, 2, 2}, rng);
  const Tensor y = bn.forward(x);
  const ChannelStats st = channel_stats(x);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = (i / 4) % 3;
    const double want = (x.data()[i] - st.mean[c]) / std::sqrt(st.var_biased[c] + 1e-5) * g[c] + b[c];
    expect_near_rel(y.data()[i], want, "training output " + std::to_string(i), 1e-5);
  }
}

TEST(BatchNormModule, MomentumNoneIsTheCumulativeAverage) {
  for (int dims : {1, 2})
    for (const Shape& shape : shapes_for(dims)) {
      const std::string what = "BatchNorm" + std::to_string(dims) + "d on " + shape.str();
      BatchNormOptions o = bn_options(dims, shape[1]);
      o.momentum = std::nullopt;
      BatchNorm bn(o);
      Rng rng(11);
      const int k = 6;
      std::vector<double> sum_mean(3, 0.0), sum_var(3, 0.0);
      for (int step = 0; step < k; ++step) {
        const Tensor x = random_batch(shape, rng);
        bn.forward(x);
        const ChannelStats st = channel_stats(x);
        for (int c = 0; c < 3; ++c) sum_mean[c] += st.mean[c], sum_var[c] += st.var_unbiased[c];
        EXPECT_EQ(bn.num_batches_tracked, step + 1) << what;
        // After each step: the mean of the batch statistics seen so far.
        for (int c = 0; c < 3; ++c) {
          expect_near_rel(bn.running_mean.data()[c], sum_mean[c] / (step + 1),
                          what + ": running_mean after step " + std::to_string(step + 1), 1e-5);
          expect_near_rel(bn.running_var.data()[c], sum_var[c] / (step + 1),
                          what + ": running_var after step " + std::to_string(step + 1), 1e-5);
        }
      }
    }
}

TEST(BatchNormModule, NumBatchesTrackedCountsOnlyTrainingWithTracking) {
  Rng rng(5);
  const Tensor x = random_batch(Shape{4, 3, 2, 2}, rng);
  BatchNorm bn(bn_options(2, 3));
  bn.forward(x);
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked, 2);
  bn.eval();
  const std::vector<float> rm(bn.running_mean.data(), bn.running_mean.data() + 3);
  const std::vector<float> rv(bn.running_var.data(), bn.running_var.data() + 3);
  bn.forward(x);
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked, 2) << "evaluation must not count batches";
  EXPECT_EQ(std::vector<float>(bn.running_mean.data(), bn.running_mean.data() + 3), rm);
  EXPECT_EQ(std::vector<float>(bn.running_var.data(), bn.running_var.data() + 3), rv);
  bn.train();
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked, 3);

  BatchNormOptions off = bn_options(2, 3);
  off.track_running_stats = false;
  BatchNorm untracked(off);
  untracked.forward(x);
  untracked.eval();
  untracked.forward(x);
  EXPECT_EQ(untracked.num_batches_tracked, 0) << "tracking off must not count batches";
}

TEST(BatchNormModule, EvalUsesRunningStatistics) {
  for (int dims : {1, 2})
    for (const Shape& shape : shapes_for(dims)) {
      const std::string what = "BatchNorm" + std::to_string(dims) + "d on " + shape.str();
      BatchNorm bn(bn_options(dims, 3));
      const float rm[3] = {0.5f, -1.25f, 3.0f}, rv[3] = {0.25f, 4.0f, 1.5f};
      const float g[3] = {1.5f, -0.5f, 2.0f}, b[3] = {0.1f, 0.2f, -0.3f};
      for (int c = 0; c < 3; ++c) {
        bn.running_mean.data()[c] = rm[c];
        bn.running_var.data()[c] = rv[c];
        bn.weight.value.data()[c] = g[c];
        bn.bias.value.data()[c] = b[c];
      }
      bn.eval();
      Rng rng(13);
      const Tensor x = random_batch(shape, rng);
      const Tensor y = bn.forward(x);
      ASSERT_EQ(y.shape(), x.shape()) << what;
      const int64_t s = x.numel() / (shape[0] * 3);
      for (int64_t i = 0; i < x.numel(); ++i) {
        const int64_t c = (i / s) % 3;
        const double want = (x.data()[i] - rm[c]) / std::sqrt(double(rv[c]) + 1e-5) * g[c] + b[c];
        expect_near_rel(y.data()[i], want, what + ": eval output " + std::to_string(i));
      }
      // Each sample alone gives the same output: no statistics of the batch are involved.
      const Tensor y0 = bn.forward(x.slice(0, 1));
      for (int64_t i = 0; i < y0.numel(); ++i) EXPECT_EQ(y0.data()[i], y.data()[i]) << what;
      EXPECT_EQ(bn.num_batches_tracked, 0) << what;
      for (int c = 0; c < 3; ++c) {
        EXPECT_EQ(bn.running_mean.data()[c], rm[c]) << what;
        EXPECT_EQ(bn.running_var.data()[c], rv[c]) << what;
      }
    }
}

TEST(BatchNormModule, TrackingOffHasNoBuffersAndUsesBatchStatisticsInEval) {
  BatchNormOptions o = bn_options(2, 3);
  o.track_running_stats = false;
  BatchNorm bn(o);
  EXPECT_TRUE(bn.named_buffers().empty());
  EXPECT_TRUE(bn.own_buffers().empty());
  EXPECT_EQ(bn.named_parameters().size(), 2u) << "affine is independent of tracking";
  Rng rng(17);
  const Tensor x = random_batch(Shape{3, 3, 2, 2}, rng);
  const Tensor y_train = bn.forward(x).clone();
  bn.eval();
  const Tensor y_eval = bn.forward(x);
  const ChannelStats st = channel_stats(x);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = (i / 4) % 3;
    const double want = (x.data()[i] - st.mean[c]) / std::sqrt(st.var_biased[c] + 1e-5);
    expect_near_rel(y_eval.data()[i], want, "eval output " + std::to_string(i), 1e-5);
    EXPECT_EQ(y_eval.data()[i], y_train.data()[i]) << "eval and train outputs differ at " << i;
  }
  // The output of a sample depends on the rest of the batch, in eval too.
  const Tensor y_half = bn.forward(x.slice(0, 2));
  bool differs = false;
  for (int64_t i = 0; i < y_half.numel(); ++i) differs |= y_half.data()[i] != y_eval.data()[i];
  EXPECT_TRUE(differs) << "with tracking off, eval must normalize with the batch's statistics";
}

TEST(BatchNormModule, AffineOffHasNoParameters) {
  BatchNormOptions o = bn_options(1, 3);
  o.affine = false;
  BatchNorm bn(o);
  EXPECT_TRUE(bn.named_parameters().empty());
  EXPECT_EQ(bn.parameter_count(), 0);
  ASSERT_EQ(bn.named_buffers().size(), 3u) << "tracking is independent of affine";
  Rng rng(19);
  const Tensor x = random_batch(Shape{5, 3}, rng);
  const Tensor y = bn.forward(x);
  const ChannelStats st = channel_stats(x);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = i % 3;
    expect_near_rel(y.data()[i], (x.data()[i] - st.mean[c]) / std::sqrt(st.var_biased[c] + 1e-5),
                    "output " + std::to_string(i), 1e-5);
  }
  const Tensor dx = bn.backward(Tensor::full(x.shape(), 1.0f));  // no gamma/beta gradients to add
  // d/dx of sum(xhat) is zero: the mean of xhat is zero whatever x is.
  for (int64_t i = 0; i < dx.numel(); ++i) EXPECT_NEAR(dx.data()[i], 0.0f, 1e-5f) << i;
}

void expect_one_value_error(BatchNorm& bn, const Shape& shape) {
  bn.train();
  try {
    bn.forward(Tensor::full(shape, 1.0f));
    ADD_FAILURE() << bn.kind() << " on " << shape.str() << " in training did not throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("features.bn1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("more than 1 value per channel"), std::string::npos) << msg;
    EXPECT_NE(msg.find(shape.str()), std::string::npos) << msg;
  }
  EXPECT_EQ(bn.num_batches_tracked, 0);
  for (int64_t c = 0; c < bn.opt.num_features; ++c) {
    EXPECT_EQ(bn.running_mean.data()[c], 0.0f);
    EXPECT_EQ(bn.running_var.data()[c], 1.0f);
  }
}

TEST(BatchNormModule, OneValuePerChannelThrowsInTrainingWorksInEval) {
  for (int dims : {1, 2}) {
    BatchNorm bn(bn_options(dims, 4));
    bn.path = "features.bn1";
    const Shape shape = dims == 1 ? Shape{1, 4} : Shape{1, 4, 1, 1};
    expect_one_value_error(bn, shape);
    // In eval the running statistics normalize: one sample is fine.
    bn.running_mean.fill(0.5f);
    bn.running_var.fill(4.0f);
    bn.eval();
    const Tensor y = bn.forward(Tensor::full(shape, 2.5f));
    ASSERT_EQ(y.shape(), shape);
    for (int64_t i = 0; i < y.numel(); ++i)
      expect_near_rel(y.data()[i], 2.0 / std::sqrt(4.0 + 1e-5), "eval output");
    EXPECT_EQ(bn.num_batches_tracked, 0);
  }
  // BatchNorm1d on (1, C, L) with L > 1 has L values per channel: fine in training.
  BatchNorm bn1(bn_options(1, 4));
  EXPECT_NO_THROW(bn1.forward(Tensor::full(Shape{1, 4, 3}, 1.0f)));
  EXPECT_EQ(bn1.num_batches_tracked, 1);
}

TEST(BatchNormModule, OneValuePerChannelWithTrackingOffThrowsInEvalToo) {
  // As torch: with no running statistics, eval normalizes with the batch's statistics, which
  // one value per channel cannot give (F.batch_norm raises "Expected more than 1 value per
  // channel when training" for BatchNorm1d(3, track_running_stats=False).eval()(randn(1, 3))).
  BatchNormOptions o = bn_options(1, 3);
  o.track_running_stats = false;
  BatchNorm bn(o);
  bn.path = "features.bn1";
  bn.eval();
  try {
    bn.forward(Tensor::full(Shape{1, 3}, 1.0f));
    ADD_FAILURE() << "BatchNorm1d without running statistics accepted one value per channel";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 1 value per channel"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("features.bn1"), std::string::npos) << e.what();
  }
}

// PyTorch 1.13 on an empty training batch: empty output, running statistics unchanged,
// num_batches_tracked incremented; in evaluation nothing changes.
TEST(BatchNormModule, EmptyBatchLeavesStatisticsUntouched) {
  for (int dims : {1, 2}) {
    BatchNorm bn(bn_options(dims, 3));
    Rng rng(23);
    const Shape shape = dims == 1 ? Shape{4, 3} : Shape{4, 3, 2, 2};
    bn.forward(random_batch(shape, rng));
    const std::vector<float> rm(bn.running_mean.data(), bn.running_mean.data() + 3);
    const std::vector<float> rv(bn.running_var.data(), bn.running_var.data() + 3);
    for (bool training : {true, false}) {
      bn.train(training);
      const int64_t tracked = bn.num_batches_tracked;
      const Shape empty = dims == 1 ? Shape{0, 3} : Shape{0, 3, 2, 2};
      const Tensor y = bn.forward(Tensor(empty));
      EXPECT_EQ(y.shape(), empty);
      EXPECT_EQ(y.numel(), 0);
      EXPECT_EQ(bn.num_batches_tracked, tracked + (training ? 1 : 0))
          << "num_batches_tracked after an empty batch (training " << training << ")";
      EXPECT_EQ(std::vector<float>(bn.running_mean.data(), bn.running_mean.data() + 3), rm);
      EXPECT_EQ(std::vector<float>(bn.running_var.data(), bn.running_var.data() + 3), rv);
      bn.zero_grad();
      const Tensor dx = bn.backward(Tensor(empty));
      EXPECT_EQ(dx.shape(), empty);
      for (int c = 0; c < 3; ++c) {
        EXPECT_EQ(bn.weight.grad.data()[c], 0.0f);
        EXPECT_EQ(bn.bias.grad.data()[c], 0.0f);
      }
    }
  }
}

TEST(BatchNormModule, StateDictNamesOfSeed001InPyTorchOrder) {
  Model m = load_model(std::string(NORMNET_SOURCE_DIR) + "/models/seed001.json");
  std::vector<std::string> params, buffers;
  for (auto& [name, p] : m.net->named_parameters()) params.push_back(name);
  for (auto& [name, b] : m.net->named_buffers()) buffers.push_back(name);
  // torch: [n for n, _ in model.named_parameters()] and [n for n, _ in model.named_buffers()].
  const std::vector<std::string> want_params = {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias",
                                                "conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias",
                                                "fc.weight",    "fc.bias"};
  const std::vector<std::string> want_buffers = {"bn1.running_mean", "bn1.running_var",
                                                 "bn1.num_batches_tracked", "bn2.running_mean",
                                                 "bn2.running_var", "bn2.num_batches_tracked"};
  EXPECT_EQ(params, want_params);
  EXPECT_EQ(buffers, want_buffers);

  // torch's state_dict(): modules depth-first, each module's parameters then its buffers.
  std::vector<std::string> state;
  auto visit = [&](auto&& self, Module& mod, const std::string& prefix) -> void {
    for (auto& [name, p] : mod.named_parameters(prefix))
      if (name.rfind(prefix, 0) == 0 && name.find('.', prefix.size()) == std::string::npos)
        state.push_back(name);
    for (auto& [name, b] : mod.named_buffers(prefix))
      if (name.rfind(prefix, 0) == 0 && name.find('.', prefix.size()) == std::string::npos)
        state.push_back(name);
    for (auto& [n, c] : mod.children()) self(self, *c, prefix + n + ".");
  };
  visit(visit, *m.net, "");
  const std::vector<std::string> want_state = {
      "conv1.weight",     "conv1.bias",      "bn1.weight",  "bn1.bias",
      "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
      "conv2.weight",     "conv2.bias",      "bn2.weight",  "bn2.bias",
      "bn2.running_mean", "bn2.running_var", "bn2.num_batches_tracked",
      "fc.weight",        "fc.bias"};
  EXPECT_EQ(state, want_state);

  // Shapes as torch has them (conv weights OIHW); num_batches_tracked is an int64 scalar.
  auto named = m.net->named_parameters();
  EXPECT_EQ(named[0].second->value.shape(), (Shape{32, 1, 3, 3}));
  EXPECT_EQ(named[4].second->value.shape(), (Shape{64, 32, 3, 3}));
  EXPECT_EQ(named[8].second->value.shape(), (Shape{10, 3136}));
  auto bufs = m.net->named_buffers();
  EXPECT_EQ(bufs[0].second.f32->shape(), (Shape{32}));
  EXPECT_EQ(bufs[2].second.f32, nullptr);
  ASSERT_NE(bufs[2].second.i64, nullptr);
  EXPECT_EQ(*bufs[2].second.i64, 0);
  EXPECT_EQ(m.net->parameter_count(), 50378);
}

}  // namespace
}  // namespace normnet

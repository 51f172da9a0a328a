// The runner pieces of `normnet experiment` (src/experiment/, docs/experiments.md): the
// pre-activation probe leaves a training run bit-identical to one without it and sees the
// values before the ReLU (negative ones too, through the fused BN+ReLU); the batch-statistics
// evaluation normalizes with the batch's statistics and restores buffers and mode;
// steps_to_reach; a diverging run is recorded (chance level, the trainer's message) while other
// errors propagate; set_batchnorm_momentum; load_model with a transform.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "experiment/probe.h"
#include "experiment/runner.h"
#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet::experiment {
namespace {

// n random 1x28x28 images (about N(0, 1)) with labels i % 10; the label shifts the image mean
// a little so training has something to learn.
Dataset random_data(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.images = Tensor(Shape{n, 1, 28, 28});
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(static_cast<int32_t>(i % 10));
    for (int64_t k = 0; k < 28 * 28; ++k)
      d.images.data()[i * 784 + k] = static_cast<float>(rng.normal() + 0.1 * (i % 10) * (k % 7 == 0));
  }
  return d;
}

ExperimentData small_data() {
  ExperimentData d;
  d.train = random_data(96, 1);
  d.test = random_data(40, 2);
  return d;
}

Variant seed001(const std::string& norm = "") {
  Variant v;
  v.name = "v";
  v.model = "seed001";
  v.transform.norm = norm;
  v.config.batch_size = 16;
  v.config.optimizer.lr = 0.05;
  return v;
}

// Every parameter and buffer as bytes, in state_dict order.
std::vector<std::string> state_bytes(Model& m) {
  std::vector<std::string> out;
  for (auto& [name, p] : m.net->named_parameters())
    out.emplace_back(reinterpret_cast<const char*>(p->value.data()), p->value.numel() * sizeof(float));
  for (auto& [name, b] : m.net->named_buffers()) {
    if (b.f32) out.emplace_back(reinterpret_cast<const char*>(b.f32->data()), b.f32->numel() * sizeof(float));
    else out.emplace_back(reinterpret_cast<const char*>(b.i64), sizeof(int64_t));
  }
  return out;
}

TEST(Probe, TrainingIsBitIdenticalWithAndWithoutIt) {
  const ExperimentData data = small_data();
  const Dataset probe_batch = first_samples(data.train, 8);
  Model plain, probed;
  const RunResult a = run_variant(seed001(), 3, 2, data, {}, &plain);
  int64_t calls = 0;
  std::vector<std::string> layers;
  bool negative = false;
  StepProbe probe{1, [&](Model& m, int64_t) {
                    ++calls;
                    const std::vector<std::string> before = state_bytes(m);
                    for (Preactivation& p : probe_preactivations(m, probe_batch.images)) {
                      if (calls == 1) layers.push_back(p.layer);
                      negative = negative || *std::min_element(p.values.begin(), p.values.end()) < 0;
                    }
                    EXPECT_EQ(state_bytes(m), before) << "the probe changed the model";
                    EXPECT_TRUE(m.net->training());
                  }};
  const RunResult b = run_variant(seed001(), 3, 2, data, probe, &probed);
  ASSERT_FALSE(a.diverged);
  ASSERT_FALSE(b.diverged);
  EXPECT_EQ(calls, 1 + b.steps);  // step 0 and after every step
  EXPECT_EQ(b.steps, 2 * 6);
  EXPECT_EQ(layers, (std::vector<std::string>{"relu1", "relu2"}));
  EXPECT_TRUE(negative) << "pre-activations should include the negative values ReLU removes";
  EXPECT_EQ(state_bytes(plain), state_bytes(probed));
  ASSERT_EQ(a.epochs.size(), b.epochs.size());
  for (size_t i = 0; i < a.epochs.size(); ++i) {
    EXPECT_EQ(a.epochs[i].train_loss, b.epochs[i].train_loss);
    EXPECT_EQ(a.epochs[i].test_accuracy, b.epochs[i].test_accuracy);
  }
}

TEST(Probe, PreactivationOfTheFirstReluIsTheBatchNormOutput) {
  // In training mode BN's output has mean beta = 0 and variance 1 per channel right after
  // initialization: the recorded relu1 input must too (it is BN's output, not ReLU's).
  Model m = load_model("seed001");
  m.init_parameters(1);
  const Dataset d = random_data(16, 5);
  const auto pre = probe_preactivations(m, d.images);
  ASSERT_FALSE(pre.empty());
  double sum = 0, sq = 0;
  for (double v : pre[0].values) sum += v, sq += v * v;
  const double n = static_cast<double>(pre[0].values.size()), mean = sum / n;
  EXPECT_EQ(pre[0].values.size(), static_cast<size_t>(16 * 32 * 28 * 28));
  EXPECT_NEAR(mean, 0.0, 1e-4);
  EXPECT_NEAR(sq / n - mean * mean, 1.0, 1e-3);
}

TEST(BatchStatistics, NormalizesWithTheBatchAndRestoresTheModel) {
  const ExperimentData data = small_data();
  Model m;
  run_variant(seed001(), 1, 1, data, {}, &m);
  m.net->eval();
  const std::vector<std::string> before = state_bytes(m);
  const EvalResult r = evaluate_batch_statistics(m, data.test, 40);  // one batch: the whole set
  EXPECT_EQ(state_bytes(m), before);
  EXPECT_FALSE(m.net->training()) << "the mode must be restored";
  EXPECT_EQ(r.total, 40);
  // The same as a training-mode forward of the whole test set.
  m.net->train();
  const Tensor logits = m.net->forward(data.test.images);
  int64_t correct = 0;
  for (int64_t i = 0; i < 40; ++i) {
    const float* z = logits.data() + i * 10;
    correct += (std::max_element(z, z + 10) - z) == data.test.labels[i];
  }
  EXPECT_EQ(r.correct, correct);
  EXPECT_THROW(evaluate_batch_statistics(m, data.test, 1), Error);
}

TEST(StepsToReach, FirstStepAtOrAboveTheTarget) {
  const std::vector<std::pair<int64_t, double>> curve{{0, 0.1}, {10, 0.5}, {20, 0.8}, {30, 0.7}, {40, 0.9}};
  EXPECT_EQ(steps_to_reach(curve, 0.5), 10);
  EXPECT_EQ(steps_to_reach(curve, 0.75), 20);
  EXPECT_EQ(steps_to_reach(curve, 0.85), 40);
  EXPECT_EQ(steps_to_reach(curve, 0.95), -1);
  EXPECT_EQ(steps_to_reach({}, 0.1), -1);
}

TEST(Divergence, IsRecordedAtChanceLevel) {
  Variant v = seed001("none");
  v.config.optimizer.lr = 1e30;
  const RunResult r = run_variant(v, 1, 2, small_data());
  ASSERT_TRUE(r.diverged);
  EXPECT_EQ(r.final_test_accuracy, 0.1);
  EXPECT_EQ(r.error.rfind("training stopped at ", 0), 0u) << r.error;
  EXPECT_LT(r.steps, 12);
  EXPECT_LT(r.epochs.size(), 2u);
}

TEST(Divergence, OtherErrorsPropagate) {
  Variant v = seed001();
  v.config.batch_size = 0;
  EXPECT_THROW(run_variant(v, 1, 1, small_data()), Error);
  v = seed001("gn:5");  // 32 channels are not divisible by 5
  EXPECT_THROW(run_variant(v, 1, 1, small_data()), Error);
}

TEST(Momentum, SetOnEveryBatchNorm) {
  Model m = load_model("seed001");
  EXPECT_EQ(set_batchnorm_momentum(m, std::nullopt), 2);
  for (auto& [name, c] : m.net->children()) {
    if (auto* bn = dynamic_cast<BatchNorm*>(c)) {
      EXPECT_FALSE(bn->opt.momentum.has_value()) << name;
    }
  }
  ModelTransform none;
  none.norm = "none";
  Model plain = load_model("seed001", none);
  EXPECT_EQ(set_batchnorm_momentum(plain, 0.5), 0);
  EXPECT_EQ(plain.name, "seed001" + none.suffix());
}

}  // namespace
}  // namespace normnet::experiment

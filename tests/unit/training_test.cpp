// Training as a whole: a small conv-BN network overfits one batch; a short training run gives the
// same bytes with 1 and 2 threads and for the same seed; one optimizer step equals PyTorch's
// update rules computed here in double; the learning-rate schedules equal their formulas
// (OneCycleLR transcribed from torch.optim.lr_scheduler); model-description errors name the
// file and the layer; checkpoints round-trip and load_state_dict names the tensor at fault.
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "normnet/checkpoint.h"
#include "normnet/data.h"
#include "normnet/error.h"
#include "normnet/loss.h"
#include "normnet/model.h"
#include "normnet/optim.h"
#include "normnet/train.h"

namespace fs = std::filesystem;

namespace normnet {
namespace {

const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

// The first n Fashion-MNIST training images (normalized), or random images with random labels
// when the data set is not installed: either can be memorized and trained on.
Dataset training_images(int64_t n) {
  Dataset d;
  if (fs::is_directory(kFashionDir)) {
    static Dataset cached = [] {
      Dataset all = load_mnist_split(kFashionDir, true, 1024);
      normalize_inplace(all.images, compute_normalization(all.images));
      return all;
    }();
    d.images = cached.images.slice(0, n).clone();
    d.labels.assign(cached.labels.begin(), cached.labels.begin() + n);
    return d;
  }
  Rng rng(99);
  d.images = Tensor(Shape{n, 1, 28, 28});
  for (int64_t i = 0; i < d.images.numel(); ++i) d.images.data()[i] = static_cast<float>(rng.normal());
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(rng.below(10)));
  return d;
}

// ---------------------------------------------------------------------------------------------
// (a) Overfitting one batch.

TEST(Training, SmallConvBnNetOverfitsOneBatch) {
  Model m = build_model(R"({
    "name": "tiny", "input": [1, 28, 28], "classes": 10,
    "layers": [
      {"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1},
      {"type": "BatchNorm2d", "name": "bn1", "num_features": 8},
      {"type": "ReLU"},
      {"type": "MaxPool2d", "kernel_size": 4},
      {"type": "Flatten"},
      {"type": "Linear", "name": "fc", "in_features": 392, "out_features": 10}
    ]})",
                        "tiny.json");
  m.init_parameters(1);
  const Dataset batch = training_images(16);
  OptimizerOptions oo;
  oo.kind = "adam";
  oo.lr = 0.01;
  Optimizer opt(m.net->named_parameters(), oo);
  CrossEntropyLoss loss;
  m.net->train();
  double first = 0, last = 0;
  int64_t correct = 0;
  for (int step = 0; step < 300; ++step) {
    last = train_step(m, loss, opt, batch.images, batch.labels, &correct);
    if (step == 0) first = last;
    if (last < 1e-3) break;
  }
  EXPECT_GT(first, 1.0) << "an untrained network should not already fit the batch";
  EXPECT_LT(last, 0.01) << "16 images were not memorized in 300 Adam steps";
  EXPECT_EQ(correct, 16);
  // The running statistics have followed the one batch: eval mode classifies it too.
  const EvalResult r = evaluate(m, Dataset{batch.images, batch.labels, 10});
  EXPECT_EQ(r.correct, 16);
}

// ---------------------------------------------------------------------------------------------
// (b) Determinism.

struct RunResult {
  std::vector<float> values;    // every parameter and float buffer, in state_dict order
  std::vector<int64_t> counts;  // num_batches_tracked
  std::vector<double> losses;   // every step's running loss, then each epoch's metrics
};

// seed001, 2 epochs of 4 steps of 64 images, SGD with Nesterov momentum and weight decay,
// crop-flip augmentation, evaluated on 64 other images after each epoch.
RunResult short_run(uint64_t seed, int threads) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  Model m = load_model(std::string(NORMNET_SOURCE_DIR) + "/models/seed001.json");
  m.init_parameters(seed);
  const Dataset all = training_images(320);
  const Dataset train_set{all.images.slice(0, 256).clone(),
                          {all.labels.begin(), all.labels.begin() + 256}, 10};
  const Dataset test_set{all.images.slice(256, 320).clone(), {all.labels.begin() + 256, all.labels.end()}, 10};
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch_size = 64;
  cfg.seed = seed;
  cfg.augment = "crop-flip";
  cfg.optimizer.lr = 0.05;
  cfg.optimizer.nesterov = true;
  cfg.optimizer.weight_decay = 5e-4;
  cfg.schedule.kind = "cosine";
  RunResult r;
  TrainCallbacks cb;
  cb.on_step = [&](const StepInfo& s) { r.losses.push_back(s.loss); };
  for (const EpochMetrics& e : train(m, train_set, test_set, cfg, cb)) {
    r.losses.insert(r.losses.end(), {e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy, e.lr});
  }
  for (auto& [name, p] : m.net->named_parameters())
    r.values.insert(r.values.end(), p->value.data(), p->value.data() + p->value.numel());
  for (auto& [name, b] : m.net->named_buffers()) {
    if (b.f32) r.values.insert(r.values.end(), b.f32->data(), b.f32->data() + b.f32->numel());
    else r.counts.push_back(*b.i64);
  }
  omp_set_num_threads(saved);
  return r;
}

bool same_bytes(const RunResult& a, const RunResult& b) {
  return a.values.size() == b.values.size() && a.losses.size() == b.losses.size() &&
         a.counts == b.counts &&
         std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)) == 0 &&
         std::memcmp(a.losses.data(), b.losses.data(), a.losses.size() * sizeof(double)) == 0;
}

TEST(Training, SameBytesForOneAndTwoThreadsAndForTheSameSeed) {
  const RunResult one = short_run(3, 1);
  const RunResult two = short_run(3, 2);
  ASSERT_EQ(one.losses.size(), 8u + 2 * 5u);
  ASSERT_EQ(one.values.size(), 50378u + 2 * (32 + 64)) << "seed001's parameters and running statistics";
  EXPECT_EQ(one.counts, (std::vector<int64_t>{8, 8})) << "num_batches_tracked after 8 steps";
  EXPECT_TRUE(same_bytes(one, two)) << "1 and 2 threads give different weights, buffers or losses";
  const RunResult again = short_run(3, 2);
  EXPECT_TRUE(same_bytes(two, again)) << "two runs with the same seed differ";
  const RunResult other = short_run(4, 2);
  EXPECT_FALSE(same_bytes(two, other)) << "a different seed gave the same run";
  EXPECT_NE(std::memcmp(two.losses.data(), other.losses.data(), 8 * sizeof(double)), 0);
  for (double l : one.losses) EXPECT_TRUE(std::isfinite(l));
}

// ---------------------------------------------------------------------------------------------
// (c) Optimizers against PyTorch's update rules, in double.

struct Tiny {
  Parameter w{"weight", Shape{3}}, b{"bias", Shape{2}, /*no_decay=*/true};
  Tiny() {
    const float wv[3] = {0.5f, -1.5f, 2.0f}, bv[2] = {0.25f, -0.75f};
    std::copy(wv, wv + 3, w.value.data());
    std::copy(bv, bv + 2, b.value.data());
  }
  std::vector<std::pair<std::string, Parameter*>> params() { return {{"weight", &w}, {"bias", &b}}; }
};

// The gradient of element i at step t (1-based): changes sign and size between steps.
double grad_at(int t, size_t i) { return (i % 2 ? -0.3 : 0.7) * t + 0.1 * static_cast<double>(i) - 0.05 * t * t; }

// torch.optim.SGD / Adam / AdamW for one parameter vector, in double. The *_mag vectors are
// the same recurrences on |terms|: the scale of the rounding errors a float version makes.
struct Reference {
  OptimizerOptions o;
  std::vector<double> p, buf, m, v, buf_mag, m_mag;
  bool decay;
  Reference(const OptimizerOptions& opts, const Tensor& init, bool no_decay)
      : o(opts), p(init.data(), init.data() + init.numel()), buf(p.size()), m(p.size()), v(p.size()),
        buf_mag(p.size()), m_mag(p.size()), decay(!(no_decay && !opts.decay_norm_and_bias)) {}
  void step(int t) {
    const double wd = decay ? o.weight_decay : 0.0;
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad_at(t, i);
      if (o.kind == "sgd") {
        g += wd * p[i];
        if (o.momentum != 0) {
          buf[i] = t == 1 ? g : o.momentum * buf[i] + (1 - o.dampening) * g;
          buf_mag[i] = t == 1 ? std::fabs(g) : o.momentum * buf_mag[i] + (1 - o.dampening) * std::fabs(g);
          g = o.nesterov ? g + o.momentum * buf[i] : buf[i];
        }
        p[i] -= o.lr * g;
        continue;
      }
      if (o.kind == "adamw") p[i] *= 1 - o.lr * wd;
      else g += wd * p[i];
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
      m_mag[i] = o.beta1 * m_mag[i] + (1 - o.beta1) * std::fabs(g);
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
      const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
      p[i] -= o.lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + o.eps);
    }
  }
};

void expect_matches_reference(const OptimizerOptions& o, const std::string& what) {
  Tiny tiny;
  Reference rw(o, tiny.w.value, false), rb(o, tiny.b.value, true);
  Optimizer opt(tiny.params(), o);
  for (int t = 1; t <= 3; ++t) {
    for (Parameter* p : {&tiny.w, &tiny.b})
      for (int64_t i = 0; i < p->grad.numel(); ++i) p->grad.data()[i] = static_cast<float>(grad_at(t, i));
    opt.step();
    rw.step(t);
    rb.step(t);
    for (int64_t i = 0; i < 3; ++i)
      EXPECT_NEAR(tiny.w.value.data()[i], rw.p[i], 2e-6 * (1 + std::fabs(rw.p[i])))
          << what << ": weight[" << i << "] after step " << t;
    for (int64_t i = 0; i < 2; ++i)
      EXPECT_NEAR(tiny.b.value.data()[i], rb.p[i], 2e-6 * (1 + std::fabs(rb.p[i])))
          << what << ": bias[" << i << "] after step " << t;
    // The optimizer state, relative to its own scale (exp_avg_sq is tiny next to p, and a
    // float rounding of 1 - beta2 would bias it by 1e-5 relative).
    auto state = opt.state();
    for (size_t k = 0; k < state.size(); ++k) {
      const Reference& r = k < state.size() / 2 ? rw : rb;
      const std::string& name = state[k].first;
      const Tensor& got = *state[k].second;
      for (int64_t i = 0; i < got.numel(); ++i) {
        double want = 0, mag = 0;
        if (name.ends_with(".momentum_buffer")) want = r.buf[i], mag = r.buf_mag[i];
        else if (name.ends_with(".exp_avg")) want = r.m[i], mag = r.m_mag[i];
        else if (name.ends_with(".exp_avg_sq")) want = r.v[i], mag = r.v[i];
        else ADD_FAILURE() << what << ": unexpected optimizer state '" << name << "'";
        EXPECT_NEAR(got.data()[i], want, 1e-6 * mag) << what << ": " << name << "[" << i << "] after step " << t;
      }
    }
  }
  // Parameter names: weight's state first, then bias's.
  const size_t per_param = o.kind == "sgd" ? 1 : 2;
  ASSERT_EQ(opt.state().size(), 2 * per_param) << what;
  EXPECT_EQ(opt.state()[0].first.rfind("weight.", 0), 0u) << what;
  EXPECT_EQ(opt.state()[per_param].first.rfind("bias.", 0), 0u) << what;
  EXPECT_EQ(opt.steps(), 3);
}

TEST(Optimizer, SgdMatchesPyTorch) {
  OptimizerOptions o;
  o.kind = "sgd";
  o.lr = 0.1;
  o.momentum = 0.0;
  expect_matches_reference(o, "plain SGD");
  o.momentum = 0.9;
  expect_matches_reference(o, "SGD momentum");
  o.weight_decay = 0.01;
  expect_matches_reference(o, "SGD momentum + weight decay");
  o.nesterov = true;
  expect_matches_reference(o, "SGD Nesterov + weight decay");
  o.nesterov = false;
  o.dampening = 0.5;
  expect_matches_reference(o, "SGD momentum + dampening");
  o.dampening = 0.0;
  o.decay_norm_and_bias = false;
  expect_matches_reference(o, "SGD, bias not decayed");
}

TEST(Optimizer, AdamAndAdamWMatchPyTorch) {
  for (const char* kind : {"adam", "adamw"}) {
    OptimizerOptions o;
    o.kind = kind;
    o.lr = 0.01;
    o.momentum = 0.0;
    expect_matches_reference(o, kind);
    o.weight_decay = 0.05;
    expect_matches_reference(o, std::string(kind) + " + weight decay");
    o.beta1 = 0.8;
    o.beta2 = 0.99;
    o.eps = 1e-6;
    o.decay_norm_and_bias = false;
    expect_matches_reference(o, std::string(kind) + ", other betas, bias not decayed");
  }
}

TEST(Optimizer, FirstStepsByHand) {
  // SGD momentum 0.9, Nesterov, weight decay 0.1, lr 0.5 on p = 2, g = 1:
  // d = 1 + 0.1*2 = 1.2, b = 1.2, d = 1.2 + 0.9*1.2 = 2.28, p = 2 - 0.5*2.28 = 0.86.
  Parameter p("weight", Shape{1});
  p.value.data()[0] = 2.0f;
  p.grad.data()[0] = 1.0f;
  OptimizerOptions o;
  o.lr = 0.5;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 0.1;
  Optimizer sgd({{"weight", &p}}, o);
  sgd.step();
  EXPECT_NEAR(p.value.data()[0], 0.86f, 1e-6f);
  // Step 2, g = 1 again: d = 1 + 0.1*0.86 = 1.086, b = 0.9*1.2 + 1.086 = 2.166,
  // d = 1.086 + 0.9*2.166 = 3.0354, p = 0.86 - 0.5*3.0354 = -0.6577.
  sgd.step();
  EXPECT_NEAR(p.value.data()[0], -0.6577f, 1e-5f);
  ASSERT_EQ(sgd.state().size(), 1u);
  EXPECT_EQ(sgd.state()[0].first, "weight.momentum_buffer");
  EXPECT_NEAR(sgd.state()[0].second->data()[0], 2.166f, 1e-5f);

  // Adam's first step moves every element by lr * g / (|g| + eps): about lr against the sign.
  Parameter q("weight", Shape{2});
  q.value.data()[0] = 1.0f, q.value.data()[1] = -1.0f;
  q.grad.data()[0] = 3.0f, q.grad.data()[1] = -0.01f;
  OptimizerOptions a;
  a.kind = "adam";
  a.lr = 0.1;
  Optimizer adam({{"weight", &q}}, a);
  adam.step();
  EXPECT_NEAR(q.value.data()[0], 1.0 - 0.1 * 3.0 / (3.0 + 1e-8), 1e-6);
  EXPECT_NEAR(q.value.data()[1], -1.0 + 0.1 * 0.01 / (0.01 + 1e-8), 1e-6);
  // AdamW with weight decay 0.5 first shrinks p by 1 - lr*wd = 0.95.
  q.value.data()[0] = 1.0f;
  q.grad.data()[0] = 3.0f;
  a.kind = "adamw";
  a.weight_decay = 0.5;
  Optimizer adamw({{"weight", &q}}, a);
  adamw.step();
  EXPECT_NEAR(q.value.data()[0], 0.95 - 0.1 * 3.0 / (3.0 + 1e-8), 1e-6);
  const auto st = adamw.state();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].first, "weight.exp_avg");
  EXPECT_EQ(st[1].first, "weight.exp_avg_sq");
}

TEST(Optimizer, DecayNormAndBiasFalseLeavesBnAndBiasesUndecayed) {
  const char* spec = R"({
    "input": [1, 4, 4], "classes": 3,
    "layers": [
      {"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 2, "kernel_size": 3},
      {"type": "BatchNorm2d", "name": "bn1", "num_features": 2},
      {"type": "Flatten", "name": "flat"},
      {"type": "Linear", "name": "fc", "in_features": 8, "out_features": 3},
      {"type": "BatchNorm1d", "name": "bn2", "num_features": 3}
    ]})";
  const std::set<std::string> undecayed = {"conv1.bias", "bn1.weight", "bn1.bias", "fc.bias",
                                           "bn2.weight", "bn2.bias"};
  for (const char* kind : {"sgd", "adam", "adamw"})
    for (bool decay_all : {true, false}) {
      Model m = build_model(spec, "decay.json");
      m.init_parameters(2);
      // Make every parameter non-zero so that decay shows (BN bias starts at 0).
      for (auto& [name, p] : m.net->named_parameters())
        for (int64_t i = 0; i < p->value.numel(); ++i) p->value.data()[i] += 0.5f;
      std::vector<std::vector<float>> before;
      for (auto& [name, p] : m.net->named_parameters())
        before.emplace_back(p->value.data(), p->value.data() + p->value.numel());
      OptimizerOptions o;
      o.kind = kind;
      o.lr = 0.5;
      o.momentum = 0.0;
      o.weight_decay = 0.1;
      o.decay_norm_and_bias = decay_all;
      Optimizer opt(m.net->named_parameters(), o);
      opt.zero_grad();  // zero gradients: only weight decay moves a parameter
      opt.step();
      size_t k = 0;
      for (auto& [name, p] : m.net->named_parameters()) {
        const bool unchanged =
            std::memcmp(before[k++].data(), p->value.data(), p->value.numel() * sizeof(float)) == 0;
        const bool should_decay = decay_all || undecayed.count(name) == 0;
        EXPECT_EQ(unchanged, !should_decay)
            << kind << ", decay_norm_and_bias " << decay_all << ": " << name
            << (unchanged ? " was not decayed" : " was decayed");
        if (std::string(kind) == "sgd" && should_decay) {  // p - lr*wd*p
          EXPECT_NEAR(p->value.data()[0], before[k - 1][0] * 0.95f, 1e-6f) << name;
        }
      }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Learning-rate schedules.

// torch.optim.lr_scheduler.OneCycleLR(max_lr, total_steps, pct_start, anneal_strategy='cos',
// div_factor, final_div_factor, three_phase=False).get_lr() at step_num, transcribed.
double torch_onecycle(double max_lr, int64_t total_steps, double pct_start, double div_factor,
                      double final_div_factor, int64_t step_num) {
  const double initial_lr = max_lr / div_factor, min_lr = initial_lr / final_div_factor;
  struct Phase {
    double end_step, start_lr, end_lr;
  };
  const Phase phases[2] = {{pct_start * static_cast<double>(total_steps) - 1, initial_lr, max_lr},
                           {static_cast<double>(total_steps) - 1, max_lr, min_lr}};
  auto anneal_cos = [](double start, double end, double pct) {
    return end + (start - end) / 2.0 * (std::cos(M_PI * pct) + 1);
  };
  double start_step = 0;
  for (int i = 0; i < 2; ++i) {
    const double end_step = phases[i].end_step;
    if (static_cast<double>(step_num) <= end_step || i == 1) {
      const double pct = (static_cast<double>(step_num) - start_step) / (end_step - start_step);
      return anneal_cos(phases[i].start_lr, phases[i].end_lr, pct);
    }
    start_step = end_step;
  }
  return NAN;
}

TEST(Schedule, ConstantAndStep) {
  ScheduleOptions s;
  for (int64_t step : {0, 5, 99}) EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, step, 100, 10), 0.1);
  s.kind = "step";
  s.step_size = 2;
  s.gamma = 0.5;
  // 10 steps per epoch, halved every 2 epochs: lr * 0.5^floor(epoch / 2).
  const std::pair<int64_t, double> want[] = {{0, 0.1},    {19, 0.1},     {20, 0.05}, {39, 0.05},
                                             {45, 0.025}, {99, 0.00625}};
  for (auto [step, lr] : want) EXPECT_NEAR(scheduled_lr(s, 0.1, step, 100, 10), lr, 1e-15) << "step " << step;
}

TEST(Schedule, Cosine) {
  ScheduleOptions s;
  s.kind = "cosine";
  s.min_lr = 0.001;
  const double lr = 0.1, min = 0.001;
  EXPECT_NEAR(scheduled_lr(s, lr, 0, 100, 10), lr, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, lr, 25, 100, 10), min + (lr - min) * (1 + std::sqrt(0.5)) / 2, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, lr, 50, 100, 10), (lr + min) / 2, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, lr, 75, 100, 10), min + (lr - min) * (1 - std::sqrt(0.5)) / 2, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, lr, 99, 100, 10), min + (lr - min) * (1 + std::cos(M_PI * 0.99)) / 2, 1e-15);
}

TEST(Schedule, WarmupThenSchedule) {
  ScheduleOptions s;
  s.warmup_steps = 10;
  // Linear from lr/10 at step 0 to lr at step 9, for every kind but onecycle.
  for (const char* kind : {"constant", "step", "cosine"}) {
    s.kind = kind;
    for (int64_t step = 0; step < 10; ++step)
      EXPECT_NEAR(scheduled_lr(s, 0.2, step, 100, 20), 0.2 * (step + 1) / 10.0, 1e-15) << kind << " " << step;
  }
  s.kind = "constant";
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.2, 10, 100, 20), 0.2);
  s.kind = "cosine";  // cosine over the 90 steps after warm-up
  EXPECT_NEAR(scheduled_lr(s, 0.2, 10, 100, 20), 0.2, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.2, 55, 100, 20), 0.1, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.2, 40, 100, 20), 0.2 * (1 + std::cos(M_PI / 3)) / 2, 1e-15);
  s.kind = "step";  // step decay counts epochs from the start of the run
  s.step_size = 2;
  s.gamma = 0.1;
  EXPECT_NEAR(scheduled_lr(s, 0.2, 10, 100, 20), 0.2, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.2, 40, 100, 20), 0.02, 1e-15);
}

TEST(Schedule, OneCycleMatchesPyTorch) {
  ScheduleOptions s;
  s.kind = "onecycle";
  // By hand for 100 steps, pct_start 0.3: up over steps 0..29, down over 29..99.
  EXPECT_NEAR(scheduled_lr(s, 0.1, 0, 100, 10), 0.1 / 25, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 29, 100, 10), 0.1, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 99, 100, 10), 0.1 / 25 / 1e4, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 64, 100, 10), (0.1 + 0.1 / 25 / 1e4) / 2, 1e-15);
  // Values printed by torch 2 (OneCycleLR(max_lr=0.05, total_steps, pct_start, cycle_momentum=False)):
  // runs so short that phase 1 ends before step 1.
  s.pct_start = 0.25;
  const double torch_7[] = {0.0020000000000000018, 0.049720771772545594, 0.043326323490558476,
                            0.030563101096814465,  0.01586661092494256,  0.004344213265977564, 2e-07};
  for (int64_t step = 0; step < 7; ++step)
    EXPECT_NEAR(scheduled_lr(s, 0.05, step, 7, 7), torch_7[step], 1e-15) << "total 7, step " << step;
  s.pct_start = 0.3;
  const double torch_5[] = {0.0020000000000000018, 0.04752423160067369, 0.030563101096814465,
                            0.00941291730251185, 2e-07};
  for (int64_t step = 0; step < 5; ++step)
    EXPECT_NEAR(scheduled_lr(s, 0.05, step, 5, 5), torch_5[step], 1e-15) << "total 5, step " << step;
  EXPECT_NEAR(scheduled_lr(s, 0.05, 0, 2, 2), 0.04058728269748815, 1e-15) << "total 2, step 0";
  EXPECT_NEAR(scheduled_lr(s, 0.05, 1, 2, 2), 2e-07, 1e-15) << "total 2, step 1";
  // Every step against the transcription, for run lengths whose phase boundary is fractional.
  for (int64_t total : {7, 10, 33, 100})
    for (double pct : {0.3, 0.25, 0.5}) {
      s.pct_start = pct;
      for (int64_t step = 0; step < total; ++step)
        EXPECT_NEAR(scheduled_lr(s, 0.05, step, total, 3), torch_onecycle(0.05, total, pct, 25, 1e4, step),
                    1e-14)
            << "total " << total << ", pct_start " << pct << ", step " << step;
    }
  s.pct_start = 0.3;
  s.div_factor = 10;
  s.final_div_factor = 100;
  for (int64_t step = 0; step < 50; ++step)
    EXPECT_NEAR(scheduled_lr(s, 1.0, step, 50, 5), torch_onecycle(1.0, 50, 0.3, 10, 100, step), 1e-14) << step;
}

TEST(Schedule, UnknownKindThrows) {
  ScheduleOptions s;
  s.kind = "exponential";
  EXPECT_THROW(scheduled_lr(s, 0.1, 0, 10, 1), Error);
}

// ---------------------------------------------------------------------------------------------
// (e) Model-description errors.

// Builds `layers` (a JSON array's contents) into a 1x8x8 model of `classes` classes and returns
// the error message ("" when it builds).
std::string build_error(const std::string& layers, int classes = 4, const std::string& source = "bad_model.json") {
  const std::string text = R"({"input": [1, 8, 8], "classes": )" + std::to_string(classes) +
                           R"(, "layers": [)" + layers + "]}";
  try {
    build_model(text, source);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_mentions(const std::string& msg, std::initializer_list<const char*> parts) {
  ASSERT_FALSE(msg.empty()) << "the model built without an error";
  for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

const char* kConv = R"({"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1})";
const char* kTail = R"({"type": "Flatten", "name": "flat"}, {"type": "Linear", "name": "fc", "in_features": 128, "out_features": 4})";

TEST(ModelBuilder, ValidDescriptionBuilds) {
  EXPECT_EQ(build_error(std::string(kConv) + ", " + kTail), "");
}

TEST(ModelBuilder, UnknownLayerType) {
  expect_mentions(build_error(std::string(kConv) + R"(, {"type": "Conv3d", "name": "c"}, )" + kTail),
                  {"bad_model.json", "layers[1]", "unknown layer type 'Conv3d'"});
}

TEST(ModelBuilder, UnknownKey) {
  expect_mentions(
      build_error(R"({"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 2, "kernal_size": 3}, )" +
                  std::string(kTail)),
      {"bad_model.json", "layers[0]", "conv1", "unknown key 'kernal_size'"});
}

TEST(ModelBuilder, InChannelsMismatch) {
  expect_mentions(
      build_error(std::string(kConv) + R"(, {"type": "ReLU"}, {"type": "Conv2d", "name": "conv2", "in_channels": 3, "out_channels": 2, "kernel_size": 3, "padding": 1}, )" +
                  kTail),
      {"bad_model.json", "layers[2]", "conv2", "3 input channels", "(1, 2, 8, 8)"});
}

TEST(ModelBuilder, LinearSizeMismatch) {
  expect_mentions(
      build_error(std::string(kConv) +
                  R"(, {"type": "Flatten"}, {"type": "Linear", "name": "fc", "in_features": 100, "out_features": 4})"),
      {"bad_model.json", "layers[2]", "fc", "100", "(1, 128)"});
}

TEST(ModelBuilder, BadLinearSize) {
  expect_mentions(build_error(std::string(kConv) +
                              R"(, {"type": "Flatten"}, {"type": "Linear", "name": "fc", "in_features": 128, "out_features": 0})"),
                  {"bad_model.json", "layers[2]", "fc", "out_features"});
}

TEST(ModelBuilder, ShapeErrorInsideResidualBody) {
  expect_mentions(
      build_error(std::string(kConv) + R"(, {"type": "Residual", "name": "block", "body": [
        {"type": "Conv2d", "name": "conv1", "in_channels": 2, "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"type": "Conv2d", "name": "conv2", "in_channels": 5, "out_channels": 2, "kernel_size": 3, "padding": 1}]}, )" +
                  kTail),
      {"bad_model.json", "layers[1]", "body: layers[1]", "block.conv2", "5 input channels"});
}

TEST(ModelBuilder, ClassesMismatch) {
  expect_mentions(build_error(std::string(kConv) + ", " + kTail, 5), {"bad_model.json", "5 classes", "(1, 4)"});
}

TEST(ModelBuilder, DuplicateNames) {
  expect_mentions(build_error(std::string(kConv) + ", " + kConv + ", " + kTail),
                  {"bad_model.json", "layers[1]", "duplicate layer name 'conv1'"});
}

TEST(ModelBuilder, InvalidJson) {
  try {
    build_model(R"({"input": [1, 8, 8], "layers": [)", "broken.json");
    ADD_FAILURE() << "invalid JSON was accepted";
  } catch (const Error& e) {
    expect_mentions(e.what(), {"broken.json", "not valid JSON"});
  }
}

TEST(ModelBuilder, LoadModelNamesTheFile) {
  const fs::path dir = fs::temp_directory_path() / ("normnet_training_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "typo.json").string();
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(R"({"input": [1, 8, 8], "classes": 4, "layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernal_size": 3}]})", f);
    std::fclose(f);
  }
  try {
    load_model(path);
    ADD_FAILURE() << "a typo'd key was accepted";
  } catch (const Error& e) {
    expect_mentions(e.what(), {"typo.json", "layers[0]", "kernal_size"});
  }
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// (f) Checkpoints.

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("normnet_ckpt_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    m_ = load_model(std::string(NORMNET_SOURCE_DIR) + "/models/seed001.json");
    m_.init_parameters(42);
    // Non-trivial buffers: distinct values in every running statistic and counter.
    int64_t k = 0;
    for (auto& [name, b] : m_.net->named_buffers()) {
      if (b.f32)
        for (int64_t i = 0; i < b.f32->numel(); ++i) b.f32->data()[i] = 0.5f + 0.001f * static_cast<float>(i + k);
      else *b.i64 = 1234 + k;
      ++k;
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string load_error(const StFile& f) {
    Model fresh = load_model(std::string(NORMNET_SOURCE_DIR) + "/models/seed001.json");
    try {
      load_state_dict(fresh, f, "ckpt.safetensors");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  Model m_;
};

TEST_F(Checkpoint, RoundTripKeepsEveryByte) {
  const Normalization norm{0.2860f, 0.3530f};
  save_checkpoint(path("model.safetensors"), m_, norm, {{"normnet.epoch", "3"}});
  LoadedCheckpoint c = load_checkpoint(path("model.safetensors"));
  EXPECT_EQ(c.model.name, "seed001");
  EXPECT_EQ(c.model.spec, m_.spec);
  EXPECT_EQ(c.norm.mean, norm.mean);
  EXPECT_EQ(c.norm.std, norm.std);
  EXPECT_EQ(c.metadata.at("normnet.epoch"), "3");
  auto a = m_.net->named_parameters(), b = c.model.net->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    ASSERT_EQ(a[i].second->value.shape(), b[i].second->value.shape()) << a[i].first;
    EXPECT_EQ(std::memcmp(a[i].second->value.data(), b[i].second->value.data(),
                          a[i].second->value.numel() * sizeof(float)), 0)
        << a[i].first;
  }
  auto ab = m_.net->named_buffers(), bb = c.model.net->named_buffers();
  ASSERT_EQ(ab.size(), bb.size());
  for (size_t i = 0; i < ab.size(); ++i) {
    EXPECT_EQ(ab[i].first, bb[i].first);
    if (ab[i].second.f32) {
      ASSERT_NE(bb[i].second.f32, nullptr);
      EXPECT_EQ(std::memcmp(ab[i].second.f32->data(), bb[i].second.f32->data(),
                            ab[i].second.f32->numel() * sizeof(float)), 0)
          << ab[i].first;
    } else {
      ASSERT_NE(bb[i].second.i64, nullptr);
      EXPECT_EQ(*ab[i].second.i64, *bb[i].second.i64) << ab[i].first;
    }
  }
  // The checkpoint's tensors are exactly the state_dict: dtypes too.
  const StFile f = read_safetensors(path("model.safetensors"));
  EXPECT_EQ(f.tensors.size(), a.size() + ab.size());
  EXPECT_EQ(f.tensors.at("bn1.num_batches_tracked").dtype, "I64");
  EXPECT_TRUE(f.tensors.at("bn1.num_batches_tracked").shape.empty());
  EXPECT_EQ(f.tensors.at("conv1.weight").dtype, "F32");
  // A second save of the loaded model writes the same bytes.
  save_checkpoint(path("again.safetensors"), c.model, c.norm, {{"normnet.epoch", "3"}});
  const StFile g = read_safetensors(path("again.safetensors"));
  EXPECT_EQ(serialize_safetensors(f), serialize_safetensors(g));
}

TEST_F(Checkpoint, MissingTensor) {
  StFile f = state_dict(m_);
  f.tensors.erase("bn1.running_var");
  expect_mentions(load_error(f), {"ckpt.safetensors", "missing", "'bn1.running_var'"});
  f = state_dict(m_);
  f.tensors.erase("bn2.num_batches_tracked");
  expect_mentions(load_error(f), {"ckpt.safetensors", "missing", "'bn2.num_batches_tracked'"});
}

TEST_F(Checkpoint, UnexpectedTensor) {
  StFile f = state_dict(m_);
  const float one = 1.0f;
  f.put_raw("bn1.extra", "F32", {1}, &one, sizeof one);
  expect_mentions(load_error(f), {"ckpt.safetensors", "unexpected", "'bn1.extra'"});
}

TEST_F(Checkpoint, WrongShape) {
  StFile f = state_dict(m_);
  f.put_f32("fc.weight", Tensor(Shape{10, 100}));
  expect_mentions(load_error(f), {"ckpt.safetensors", "'fc.weight'", "(10, 100)", "(10, 3136)"});
  f = state_dict(m_);
  const int64_t counts[2] = {1, 2};
  f.put_i64("bn1.num_batches_tracked", {2}, counts);
  expect_mentions(load_error(f), {"ckpt.safetensors", "'bn1.num_batches_tracked'"});
}

TEST_F(Checkpoint, WrongDtype) {
  StFile f = state_dict(m_);
  const std::vector<double> w(32, 0.5);  // conv1.bias as F64: same element count, other dtype
  f.put_raw("conv1.bias", "F64", {32}, w.data(), w.size() * sizeof(double));
  expect_mentions(load_error(f), {"ckpt.safetensors", "'conv1.bias'", "F64"});
  f = state_dict(m_);
  const float one = 1.0f;
  f.put_raw("bn2.num_batches_tracked", "F32", {}, &one, sizeof one);
  expect_mentions(load_error(f), {"ckpt.safetensors", "'bn2.num_batches_tracked'", "F32"});
}

}  // namespace
}  // namespace normnet

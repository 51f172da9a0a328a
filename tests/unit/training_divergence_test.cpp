// Bad numbers in training: a NaN in an input image, a non-finite layer output, non-finite
// gradients with a finite forward, an update that overflows, labels outside the classes. Each
// stops train() with an error naming the epoch and step and the image, layer or parameter, and
// no checkpoint callback ever sees the bad state. first_nonfinite_module follows Residual and
// Concat blocks and leaves buffers and counters as it found them. clip_grad_norm equals
// torch.nn.utils.clip_grad_norm_'s formula computed here, and clipping in train() does not
// depend on the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "normnet/checkpoint.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "normnet/model.h"
#include "normnet/train.h"

namespace normnet {
namespace {

const char* kTwoConv = R"({"name": "two", "input": [1, 12, 12], "classes": 10, "layers": [
  {"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
  {"type": "BatchNorm2d", "name": "bn1", "num_features": 4},
  {"type": "ReLU", "name": "relu1"},
  {"type": "Conv2d", "name": "conv2", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1},
  {"type": "BatchNorm2d", "name": "bn2", "num_features": 4},
  {"type": "ReLU", "name": "relu2"},
  {"type": "MaxPool2d", "name": "pool", "kernel_size": 2},
  {"type": "Flatten", "name": "flatten"},
  {"type": "Dropout", "name": "drop", "p": 0.2},
  {"type": "Linear", "name": "fc", "in_features": 144, "out_features": 10}]})";

// A Residual block and a Concat block.
const char* kBlocks = R"({"name": "blocks", "input": [2, 8, 8], "classes": 10, "layers": [
  {"type": "Residual", "name": "block", "shortcut_name": "shortcut", "activation": "ReLU", "body": [
    {"type": "Conv2d", "name": "conv1", "in_channels": 2, "out_channels": 2, "kernel_size": 3, "padding": 1},
    {"type": "BatchNorm2d", "name": "bn1", "num_features": 2},
    {"type": "ReLU", "name": "relu"},
    {"type": "Conv2d", "name": "conv2", "in_channels": 2, "out_channels": 2, "kernel_size": 3, "padding": 1},
    {"type": "BatchNorm2d", "name": "bn2", "num_features": 2}], "shortcut": null},
  {"type": "Concat", "name": "cat", "branches": [
    {"name": "keep", "layers": []},
    {"name": "b1", "layers": [{"type": "Conv2d", "name": "conv", "in_channels": 2, "out_channels": 3, "kernel_size": 1}]},
    {"name": "b2", "layers": [{"type": "Conv2d", "name": "conv", "in_channels": 2, "out_channels": 3, "kernel_size": 1}]}]},
  {"type": "Flatten", "name": "flatten"},
  {"type": "Linear", "name": "fc", "in_features": 512, "out_features": 10}]})";

Dataset random_data(int64_t n, const Shape& sample, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  std::vector<int64_t> dims{n};
  for (int i = 0; i < sample.rank; ++i) dims.push_back(sample[i]);
  d.images = Tensor(Shape(dims));
  for (int64_t i = 0; i < d.images.numel(); ++i) d.images.data()[i] = static_cast<float>(rng.normal());
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(rng.below(10)));
  return d;
}

Tensor& param(Model& m, const std::string& name) {
  for (auto& [n, p] : m.net->named_parameters())
    if (n == name) return p->value;
  throw std::runtime_error("no parameter " + name);
}

bool all_finite(Model& m) {
  for (auto& [n, p] : m.net->named_parameters())
    for (int64_t i = 0; i < p->value.numel(); ++i)
      if (!std::isfinite(p->value.data()[i])) return false;
  for (auto& [n, b] : m.net->named_buffers())
    if (b.f32)
      for (int64_t i = 0; i < b.f32->numel(); ++i)
        if (!std::isfinite(b.f32->data()[i])) return false;
  return true;
}

// Runs train() and returns its error message ("" when it finished); `checkpoints` gets the step
// of every checkpoint callback and whether the model was finite there.
std::string train_error(Model& m, const Dataset& data, const TrainConfig& cfg,
                        std::vector<std::pair<int64_t, bool>>* checkpoints = nullptr) {
  TrainCallbacks cb;
  cb.on_checkpoint = [&](const TrainProgress& p, Optimizer&) {
    if (checkpoints) checkpoints->push_back({p.step, all_finite(m)});
  };
  try {
    train(m, data, Dataset{}, cfg, cb);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; }

TrainConfig small_config() {
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch_size = 16;
  cfg.seed = 3;
  cfg.checkpoint_every = 1;
  cfg.optimizer.lr = 0.01;
  return cfg;
}

TEST(TrainDivergence, NanInAnInputImageNamesTheImageAndStep) {
  Model m = build_model(kTwoConv, "two.json");
  m.init_parameters(1);
  Dataset data = random_data(96, Shape{1, 12, 12}, 4);
  data.images.data()[37 * 144 + 5] = std::nanf("");
  std::vector<std::pair<int64_t, bool>> ckpts;
  const std::string msg = train_error(m, data, small_config(), &ckpts);
  EXPECT_TRUE(has(msg, "training image 37 (sample ")) << msg;
  EXPECT_TRUE(has(msg, "holds nan (value 5 of its 144)")) << msg;
  EXPECT_TRUE(has(msg, "epoch 1, step " + std::to_string(ckpts.size() + 1) + " of 6")) << msg;
  for (auto& [step, finite] : ckpts) EXPECT_TRUE(finite) << "checkpoint at step " << step;
}

TEST(TrainDivergence, InfiniteWeightNamesTheFirstLayerWithANonFiniteOutput) {
  Model m = build_model(kTwoConv, "two.json");
  m.init_parameters(1);
  param(m, "conv2.weight").data()[3] = std::numeric_limits<float>::infinity();
  const std::string msg = train_error(m, random_data(32, Shape{1, 12, 12}, 4), small_config());
  // conv2's output holds inf and NaN, which BN, ReLU (as torch.relu, it keeps NaN) and pooling
  // carry to the loss, or which a later layer drops so that only the gradients show them: either
  // way the layer named is conv2.
  EXPECT_TRUE(has(msg, "training stopped at epoch 1, step 1 of 2 (step 1 of the run): the ")) << msg;
  EXPECT_TRUE(has(msg, "the first non-finite output is that of Conv2d 'conv2'")) << msg;
}

TEST(TrainDivergence, HugeLearningRateStopsBeforeAnyCheckpointHoldsBadNumbers) {
  Model m = build_model(kTwoConv, "two.json");
  m.init_parameters(1);
  TrainConfig cfg = small_config();
  cfg.optimizer.lr = 1e30;
  std::vector<std::pair<int64_t, bool>> ckpts;
  const std::string msg = train_error(m, random_data(96, Shape{1, 12, 12}, 4), cfg, &ckpts);
  ASSERT_FALSE(msg.empty()) << "lr 1e30 trained to the end";
  EXPECT_TRUE(has(msg, "training stopped at epoch 1, step " + std::to_string(ckpts.size() + 1))) << msg;
  EXPECT_TRUE(has(msg, "'conv") || has(msg, "'bn") || has(msg, "'fc")) << "no layer named: " << msg;
  for (auto& [step, finite] : ckpts) EXPECT_TRUE(finite) << "checkpoint at step " << step;
}

// Identity forward, NaN gradient: the forward and the loss stay finite.
class NanBackward : public Module {
 public:
  std::string kind() const override { return "NanBackward"; }
  Shape output_shape(const Shape& in) const override { return in; }
  Tensor forward(const Tensor& x) override { return x; }
  Tensor backward(const Tensor& dy) override {
    Tensor d(dy.shape());
    d.fill(std::nanf(""));
    return d;
  }
};

TEST(TrainDivergence, NonFiniteGradientNamesTheFirstParameterInBackwardOrder) {
  Model m;
  m.input = {1, 12, 12};
  m.net = std::make_unique<Sequential>();
  m.net->add("flatten", std::make_unique<Reshape>());
  m.net->add("fc1", std::make_unique<Linear>(144, 16));
  m.net->add("poison", std::make_unique<NanBackward>());
  m.net->add("fc2", std::make_unique<Linear>(16, 10));
  m.init_parameters(2);
  const std::string msg = train_error(m, random_data(32, Shape{1, 12, 12}, 4), small_config());
  EXPECT_TRUE(has(msg, "epoch 1, step 1 of 2")) << msg;
  EXPECT_TRUE(has(msg, "the gradients are not finite (the loss is ")) << msg;
  EXPECT_TRUE(has(msg, "every layer's output is finite")) << msg;
  EXPECT_TRUE(has(msg, "parameter 'fc1.bias'")) << msg;
}

TEST(TrainDivergence, OverflowingUpdateNamesTheParameter) {
  Model m = build_model(R"({"input": [1, 12, 12], "classes": 10, "layers": [
    {"type": "Flatten", "name": "flatten"},
    {"type": "Linear", "name": "fc", "in_features": 144, "out_features": 10}]})", "linear.json");
  m.init_parameters(2);
  param(m, "fc.bias").data()[0] = 3e38f;  // finite logits and loss; 10 * 3e38 overflows
  TrainConfig cfg = small_config();
  cfg.optimizer.momentum = 0;
  cfg.optimizer.weight_decay = 10;
  std::vector<std::pair<int64_t, bool>> ckpts;
  const std::string msg = train_error(m, random_data(32, Shape{1, 12, 12}, 4), cfg, &ckpts);
  EXPECT_TRUE(has(msg, "epoch 1, step 1 of 2")) << msg;
  EXPECT_TRUE(has(msg, "made parameter 'fc.bias' non-finite (-inf at index 0)")) << msg;
  EXPECT_TRUE(ckpts.empty());
}

TEST(TrainDivergence, LabelsOutsideTheClassesAreAnErrorNamingTheIndex) {
  Model m = build_model(kTwoConv, "two.json");
  m.init_parameters(1);
  Dataset data = random_data(32, Shape{1, 12, 12}, 4);
  data.labels[5] = 10;
  EXPECT_TRUE(has(train_error(m, data, small_config()), "training label 10 at index 5 is outside [0, 10)"));
  data.labels[5] = 1;
  data.labels[2] = -1;
  EXPECT_TRUE(has(train_error(m, data, small_config()), "training label -1 at index 2"));
  // evaluate() and the loss check too.
  data.labels[2] = 12;
  EXPECT_THROW(evaluate(m, data), Error);
  CrossEntropyLoss loss;
  EXPECT_THROW(loss.forward(Tensor(Shape{2, 10}), {0, 10}), Error);
}

TEST(FirstNonfiniteModule, FollowsResidualAndConcatBlocksAndRestoresBuffers) {
  Model m = build_model(kBlocks, "blocks.json");
  m.init_parameters(1);
  m.net->train();
  Dataset d = random_data(4, Shape{2, 8, 8}, 5);
  EXPECT_EQ(first_nonfinite_module(m, d.images), "");
  param(m, "cat.b2.conv.weight").data()[0] = std::nanf("");
  EXPECT_EQ(first_nonfinite_module(m, d.images), "Conv2d 'cat.b2.conv'");
  param(m, "block.conv2.weight").data()[1] = std::numeric_limits<float>::infinity();
  const StFile before = state_dict(m);
  EXPECT_EQ(first_nonfinite_module(m, d.images), "Conv2d 'block.conv2'");
  EXPECT_TRUE(serialize_safetensors(state_dict(m)) == serialize_safetensors(before))
      << "the walk changed running statistics or num_batches_tracked";
  d.images.data()[7] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(first_nonfinite_module(m, d.images), "the input");
}

TEST(FirstNonfiniteModule, RestoresDropoutCounters) {
  Model m = build_model(kTwoConv, "two.json");
  m.init_parameters(1);
  m.net->train();
  param(m, "fc.weight").data()[0] = std::numeric_limits<float>::infinity();
  const uint64_t calls = *m.net->named_counters().at(1).second;
  EXPECT_EQ(first_nonfinite_module(m, random_data(4, Shape{1, 12, 12}, 5).images), "Linear 'fc'");
  EXPECT_EQ(*m.net->named_counters().at(1).second, calls);
}

// torch.nn.utils.clip_grad_norm_: total = sqrt(sum g^2); g *= max / (total + 1e-6) when that is < 1.
TEST(ClipGradNorm, MatchesTheFormula) {
  Parameter a("weight", Shape{2}), b("bias", Shape{1});
  std::vector<std::pair<std::string, Parameter*>> params{{"a", &a}, {"b", &b}};
  auto set = [&] {
    a.grad.data()[0] = 3.0f;
    a.grad.data()[1] = -4.0f;
    b.grad.data()[0] = 12.0f;
  };
  set();
  EXPECT_EQ(grad_norm(params), 13.0);
  EXPECT_EQ(clip_grad_norm(params, 6.5), 13.0);
  const float c = static_cast<float>(6.5 / (13.0 + 1e-6));
  EXPECT_EQ(a.grad.data()[0], 3.0f * c);
  EXPECT_EQ(a.grad.data()[1], -4.0f * c);
  EXPECT_EQ(b.grad.data()[0], 12.0f * c);
  EXPECT_NEAR(grad_norm(params), 6.5, 1e-5);
  set();
  clip_grad_norm(params, 13.0);  // c = 13 / (13 + 1e-6) < 1: scaled a little, as PyTorch does
  EXPECT_EQ(b.grad.data()[0], 12.0f * static_cast<float>(13.0 / (13.0 + 1e-6)));
  set();
  clip_grad_norm(params, 14.0);  // c > 1: unchanged
  EXPECT_EQ(a.grad.data()[0], 3.0f);
  EXPECT_EQ(b.grad.data()[0], 12.0f);
  b.grad.data()[0] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(std::isfinite(clip_grad_norm(params, 1.0)));
  EXPECT_EQ(a.grad.data()[0], 3.0f) << "a non-finite total must leave the gradients alone";
  EXPECT_THROW(clip_grad_norm(params, 0.0), Error);
}

std::vector<uint8_t> clipped_run(double clip, int threads) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  Model m = build_model(kTwoConv, "two.json");
  m.init_parameters(1);
  TrainConfig cfg = small_config();
  cfg.optimizer.lr = 0.1;
  cfg.clip_grad_norm = clip;
  train(m, random_data(96, Shape{1, 12, 12}, 4), Dataset{}, cfg);
  omp_set_num_threads(saved);
  return serialize_safetensors(state_dict(m));
}

TEST(ClipGradNorm, InTrainingSameBytesForOneAndTwoThreadsAndLargeLimitIsNoClipping) {
  const auto one = clipped_run(0.5, 1), two = clipped_run(0.5, 2);
  EXPECT_TRUE(one == two) << "clipping made 1 and 2 threads differ";
  EXPECT_FALSE(one == clipped_run(0.0, 2)) << "clipping to 0.5 changed nothing";
  EXPECT_TRUE(clipped_run(1e9, 2) == clipped_run(0.0, 2)) << "a limit never reached changed the run";
}

}  // namespace
}  // namespace normnet

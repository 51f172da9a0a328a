// The model zoo: every model file builds, gives (N, classes) and has the parameter count its
// architecture implies; each deep network (ResNet-20, ResNet-18, VGG-11-BN, DenseNet-BC,
// small Inception) trains: three Adam steps on one batch of 8 lower the loss. The -c32 variants
// run forward on 3x32x32 input. Parameter names and counts against PyTorch are
// in tests/torch/test_zoo_params.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

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
const std::vector<std::string> kDeep{"resnet20", "resnet18", "vgg11-bn", "densenet-bc40", "inception-small"};

// 8 images for the model's input: Fashion-MNIST (normalized) for 1x28x28 when installed, else
// standard normal values; labels 0..7.
Dataset batch_for(const Model& m) {
  Dataset d;
  if (m.input == std::vector<int64_t>{1, 28, 28} && fs::is_directory(kFashionDir)) {
    d = load_mnist_split(kFashionDir, true, 8);
    normalize_inplace(d.images, compute_normalization(d.images));
    return d;
  }
  Rng rng(7);
  d.images = Tensor(m.batch_shape(8));
  for (int64_t i = 0; i < d.images.numel(); ++i) d.images.data()[i] = static_cast<float>(rng.normal());
  for (int32_t i = 0; i < 8; ++i) d.labels.push_back(i);
  return d;
}

TEST(Zoo, EveryModelBuildsAndGivesClassScores) {
  const auto names = zoo_model_names();
  for (const std::string& n : kDeep) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
    EXPECT_NE(std::find(names.begin(), names.end(), n + "-c32"), names.end()) << n << "-c32";
  }
  for (const std::string& name : names) {
    Model m = load_model(name);
    EXPECT_EQ(m.name, name);
    EXPECT_GT(m.net->parameter_count(), 0) << name;
    if (name.ends_with("-c32")) {
      EXPECT_EQ(m.input, (std::vector<int64_t>{3, 32, 32})) << name;
    }
    // The shape walk (build_model checked it too); forward passes are in the tests below.
    EXPECT_EQ(m.net->output_shape(m.batch_shape(3)), (Shape{3, m.classes})) << name;
  }
}

// Parameter counts worked out by hand from the architectures (the same as PyTorch's, see
// tests/torch/test_zoo_params.py): they pin the files against accidental edits.
TEST(Zoo, ParameterCounts) {
  auto count = [](const std::string& n) { return load_model(n).net->parameter_count(); };
  // ResNet-20, 1 input channel: stem 9*16 + 32; per 16-ch block 2*(9*16*16 + 32); first 32-ch block
  // 9*16*32 + 9*32*32 + 64 + shortcut 16*32 + 64; ...; fc 64*10 + 10.
  const int64_t stage1 = 3 * (2 * (9 * 16 * 16) + 64);
  const int64_t stage2 = (9 * 16 * 32 + 9 * 32 * 32 + 128 + 16 * 32 + 64) + 2 * (2 * 9 * 32 * 32 + 128);
  const int64_t stage3 = (9 * 32 * 64 + 9 * 64 * 64 + 256 + 32 * 64 + 128) + 2 * (2 * 9 * 64 * 64 + 256);
  EXPECT_EQ(count("resnet20"), 9 * 16 + 32 + stage1 + stage2 + stage3 + 650);
  EXPECT_EQ(count("resnet20-c32"), count("resnet20") + 2 * 9 * 16);
  // torchvision resnet18 has 11,689,512 parameters: minus the 7x7x3 stem, plus the 3x3x3 stem,
  // minus the 1000-way classifier, plus a 10-way one.
  EXPECT_EQ(count("resnet18-c32"), 11689512 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64 - 513000 + 5130);
  EXPECT_EQ(count("resnet18"), count("resnet18-c32") - 2 * 9 * 64);
}

// Three Adam steps on one batch: the loss goes down (BatchNorm in training mode).
void expect_trains(const std::string& name) {
  Model m = load_model(name);
  m.init_parameters(1);
  const Dataset b = batch_for(m);
  OptimizerOptions oo;
  oo.kind = "adam";
  oo.lr = 1e-3;
  Optimizer opt(m.net->named_parameters(), oo);
  CrossEntropyLoss loss;
  m.net->train();
  std::vector<double> losses;
  int64_t correct = 0;
  for (int step = 0; step < 3; ++step) losses.push_back(train_step(m, loss, opt, b.images, b.labels, &correct));
  for (double l : losses) ASSERT_TRUE(std::isfinite(l)) << name;
  EXPECT_LT(losses.back(), losses.front()) << name << ": " << losses.front() << " -> " << losses.back();
}

TEST(Zoo, ResNet20Trains) { expect_trains("resnet20"); }
TEST(Zoo, ResNet18Trains) { expect_trains("resnet18"); }
TEST(Zoo, Vgg11BnTrains) { expect_trains("vgg11-bn"); }
TEST(Zoo, DenseNetBcTrains) { expect_trains("densenet-bc40"); }
TEST(Zoo, InceptionSmallTrains) { expect_trains("inception-small"); }

// The 3x32x32 twins: an evaluation-mode forward pass gives finite class scores (their training
// step is compared with PyTorch in tests/torch/test_zoo_params.py).
TEST(Zoo, C32VariantsRunForward) {
  for (const std::string& n : kDeep) {
    Model m = load_model(n + "-c32");
    m.init_parameters(1);
    Tensor x(m.batch_shape(1));
    Rng rng(3);
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(rng.normal());
    m.net->eval();
    const Tensor y = m.net->forward(x);
    ASSERT_EQ(y.shape(), (Shape{1, 10})) << n;
    for (int64_t i = 0; i < y.numel(); ++i) EXPECT_TRUE(std::isfinite(y.data()[i])) << n;
  }
}

}  // namespace
}  // namespace normnet

// A network with BatchNorm2d built in C++ and trained on Fashion-MNIST with the library.
#include <cstdio>
#include <memory>
#include <normnet/data.h>
#include <normnet/layers.h>
#include <normnet/loss.h>
#include <normnet/optim.h>

using namespace normnet;

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  Dataset train = load_mnist_split(dir, /*train=*/true, /*limit=*/6000);
  const Normalization norm = compute_normalization(train.images);
  normalize_inplace(train.images, norm);

  Sequential net;  // conv -> BN -> ReLU -> pool -> linear
  net.add("conv1", std::make_unique<Conv>(ConvOptions{.in_channels = 1, .out_channels = 16,
                                                      .kernel_h = 3, .kernel_w = 3, .pad_h = 1, .pad_w = 1}));
  net.add("bn1", std::make_unique<BatchNorm>(BatchNormOptions{.dims = 2, .num_features = 16}));
  net.add("relu1", std::make_unique<Activation>(ActivationKind::ReLU));
  net.add("pool1", std::make_unique<Pool>(PoolOptions{}));  // 2x2 max pooling
  net.add("flatten", std::make_unique<Reshape>());
  net.add("fc", std::make_unique<Linear>(16 * 14 * 14, 10));
  Rng rng(42);
  for (auto& [name, layer] : net.children()) layer->reset_parameters(rng);

  Optimizer opt(net.named_parameters(), OptimizerOptions{.kind = "sgd", .lr = 0.02, .momentum = 0.9});
  CrossEntropyLoss loss;
  Tensor batch;
  std::vector<int32_t> labels;
  for (int epoch = 1; epoch <= 2; ++epoch) {
    const auto order = shuffled_indices(train.size(), rng);
    double total = 0;
    for (int64_t b = 0; b + 64 <= train.size(); b += 64) {
      gather_batch(batch, labels, train, order.data() + b, 64);
      opt.zero_grad();
      total += loss.forward(net.forward(batch), labels);
      net.backward(loss.backward());
      opt.step();
    }
    std::printf("epoch %d: mean loss %.4f, bn1.running_var[0] = %.4f\n", epoch,
                total / (train.size() / 64), net.named_buffers()[1].second.f32->data()[0]);
  }
  return 0;
}

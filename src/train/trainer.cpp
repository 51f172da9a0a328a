#include <algorithm>
#include <chrono>
#include <cmath>

#include "normnet/error.h"
#include "normnet/train.h"

namespace normnet {

double train_step(Model& m, CrossEntropyLoss& loss, Optimizer& opt, const Tensor& x,
                  const std::vector<int32_t>& y, int64_t* correct) {
  opt.zero_grad();
  Tensor logits = m.net->forward(x);
  const double l = loss.forward(logits, y);
  m.net->backward(loss.backward());
  opt.step();
  if (correct) {
    const int64_t K = logits.dim(1);
    const float* z = logits.data();
    int64_t c = 0;
    for (size_t i = 0; i < y.size(); ++i)
      c += (std::max_element(z + i * K, z + (i + 1) * K) - (z + i * K)) == y[i];
    *correct = c;
  }
  return l;
}

std::vector<EpochMetrics> train(Model& m, const Dataset& data, const Dataset& test,
                                const TrainConfig& cfg, const TrainCallbacks& cb) {
  check(cfg.batch_size > 0, "batch size must be positive, got ", cfg.batch_size);
  check(cfg.epochs >= 0, "epochs must be non-negative, got ", cfg.epochs);
  check(cfg.augment == "none" || cfg.augment == "crop-flip", "unknown augmentation '", cfg.augment,
        "' (expected none or crop-flip)");
  check(data.size() > 0, "the training set is empty");
  Shape want = m.batch_shape(data.size());
  check(data.images.shape() == want, "training images have shape ", data.images.shape().str(),
        " but the model takes ", want.str());
  using clock = std::chrono::steady_clock;
  Rng rng(cfg.seed);
  // Parameters are initialized by the caller (Model::init_parameters or a checkpoint).
  Optimizer opt(m.net->named_parameters(), cfg.optimizer);
  CrossEntropyLoss loss(cfg.label_smoothing);
  m.net->train();
  set_input_is_data(*m.net);  // conv1 skips the gradient of the images
  const int64_t N = data.size();
  const int64_t steps_per_epoch = (N + cfg.batch_size - 1) / cfg.batch_size;
  const int64_t total_steps = steps_per_epoch * cfg.epochs;
  std::vector<EpochMetrics> history;
  Tensor batch;
  std::vector<int32_t> labels;
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= cfg.epochs; ++epoch) {
    const auto t0 = clock::now();
    std::vector<int64_t> order(static_cast<size_t>(N));
    if (cfg.shuffle) order = shuffled_indices(N, rng);
    else
      for (int64_t i = 0; i < N; ++i) order[i] = i;
    double loss_sum = 0.0;
    int64_t correct_sum = 0, seen = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      const int64_t b = s * cfg.batch_size, count = std::min(cfg.batch_size, N - b);
      gather_batch(batch, labels, data, order.data() + b, count);
      if (cfg.augment == "crop-flip") augment_crop_flip(batch, cfg.crop_pad, rng);
      opt.set_lr(scheduled_lr(cfg.schedule, cfg.optimizer.lr, step, total_steps, steps_per_epoch));
      int64_t correct = 0;
      const double l = train_step(m, loss, opt, batch, labels, &correct);
      check(std::isfinite(l), "training diverged: the loss is ", l, " at epoch ", epoch, ", step ", s + 1,
            " (try a lower learning rate)");
      loss_sum += l * static_cast<double>(count);
      correct_sum += correct;
      seen += count;
      if (cb.on_step) {
        const double secs = std::chrono::duration<double>(clock::now() - t0).count();
        cb.on_step({epoch, s + 1, steps_per_epoch, seen, loss_sum / seen,
                    static_cast<double>(correct_sum) / seen, secs > 0 ? seen / secs : 0.0, secs});
      }
    }
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    EpochMetrics em;
    em.epoch = epoch;
    em.train_loss = loss_sum / static_cast<double>(seen);
    em.train_accuracy = static_cast<double>(correct_sum) / static_cast<double>(seen);
    em.seconds = secs;
    em.images_per_second = secs > 0 ? static_cast<double>(seen) / secs : 0.0;
    em.lr = opt.lr();
    if (test.size() > 0) {
      const EvalResult r = evaluate(m, test);
      em.test_loss = r.loss;
      em.test_accuracy = r.accuracy;
    }
    history.push_back(em);
    if (cb.on_epoch) cb.on_epoch(em, opt, rng);
  }
  return history;
}

}  // namespace normnet

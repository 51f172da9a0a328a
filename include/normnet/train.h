// The training loop and evaluation used by the command line and by library users.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "normnet/data.h"
#include "normnet/loss.h"
#include "normnet/model.h"
#include "normnet/optim.h"

namespace normnet {

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;
  int64_t correct = 0, total = 0;
  std::vector<int64_t> confusion;  // classes x classes, row = true class, column = predicted
  std::vector<double> per_class_accuracy;
};

// Eval mode, batches of `batch_size` in order; data must already be normalized.
EvalResult evaluate(Model& m, const Dataset& data, int64_t batch_size = 1000);

struct TrainConfig {
  int64_t epochs = 3;
  int64_t batch_size = 128;
  uint64_t seed = 1;
  bool shuffle = true;
  std::string augment = "none";   // none | crop-flip
  int64_t crop_pad = 2;
  double label_smoothing = 0.0;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
};

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0, test_loss = 0, test_accuracy = 0;
  double seconds = 0, images_per_second = 0, lr = 0;
};

struct StepInfo {
  int64_t epoch, step_in_epoch, steps_per_epoch, images_done;
  double loss, accuracy, images_per_second, seconds;
};

struct TrainCallbacks {
  std::function<void(const StepInfo&)> on_step;          // after every optimizer step
  // After each epoch's evaluation, with the optimizer and the data-order generator (checkpoints).
  std::function<void(const EpochMetrics&, Optimizer&, const Rng&)> on_epoch;
};

// One optimizer step on a batch: forward, loss, backward, update. Returns the loss and sets
// `correct` to the number of right predictions.
double train_step(Model& m, CrossEntropyLoss& loss, Optimizer& opt, const Tensor& x,
                  const std::vector<int32_t>& y, int64_t* correct);

// Trains on `train` (normalized) and evaluates on `test` after every epoch.
std::vector<EpochMetrics> train(Model& m, const Dataset& train, const Dataset& test,
                                const TrainConfig& cfg, const TrainCallbacks& cb = {});

// Recalibration of the running statistics, as torch.optim.swa_utils.update_bn: every
// BatchNorm-like layer (BatchNorm and GhostBatchNorm with track_running_stats, BatchRenorm)
// gets running_mean 0, running_var 1, num_batches_tracked 0 and momentum None (a cumulative
// average); the model then runs forward in training mode over `data` (normalized) in batches of
// `batch_size` in order, parameters untouched; momentum and the model's mode are restored.
// BatchRenorm layers normalize with r = 1, d = 0 meanwhile and keep their num_batches_tracked
// (the warmup step). A last batch of one sample is joined to the one before. With no such layer
// nothing runs (layers = 0). See docs/normalization.md.
struct RecalibrateResult {
  int64_t layers = 0, batches = 0, images = 0;
};
RecalibrateResult recalibrate_batchnorm(Model& m, const Dataset& data, int64_t batch_size = 128);
int64_t count_recalibratable_layers(Model& m);

}  // namespace normnet

// The training loop and evaluation used by the command line and by library users.
#pragma once
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "normnet/data.h"
#include "normnet/loss.h"
#include "normnet/model.h"
#include "normnet/optim.h"

namespace normnet {

class Comm;  // distributed.h

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
  double clip_grad_norm = 0.0;   // > 0: clip_grad_norm (optim.h) to this before every update
  int64_t checkpoint_every = 0;  // > 0: on_checkpoint also after every this many steps
  // Data parallel (docs/distributed.md): every rank of `comm` calls train() with the same
  // configuration, data and initial model; each runs its shard_of() every global batch, the
  // gradients are weighted by the shards' sizes and added over the ranks (the global batch's
  // mean-loss gradient), so every rank takes the same update. Metrics are the global batch's;
  // float buffers (running statistics) are averaged over the ranks before every checkpoint and
  // evaluation, and the evaluation is split over the ranks. null or one rank: this process alone.
  Comm* comm = nullptr;
  // With comm: after every step, hash the parameters and fail unless every rank holds the same
  // (always on in debug builds).
  bool check_replicas = false;
};

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0, test_loss = 0, test_accuracy = 0;
  double seconds = 0, images_per_second = 0, lr = 0;
};

// Where a run stands. Together with the model (parameters, buffers, counters) and the optimizer
// (moments, step count) it is all a run needs to continue exactly as if it had never stopped
// (docs/checkpoint-format.md).
struct TrainProgress {
  int64_t epoch = 0;          // epochs completed
  int64_t step_in_epoch = 0;  // steps of epoch `epoch + 1` taken (0: at an epoch boundary)
  int64_t step = 0;           // optimizer steps taken in all
  std::array<uint64_t, 4> rng_epoch{};  // the data generator before this epoch's shuffle
  std::array<uint64_t, 4> rng{};        // the data generator now (augmentation draws from it)
  double loss_sum = 0.0;      // this epoch so far: sum of batch loss x batch size
  int64_t correct = 0, seen = 0;
  std::vector<EpochMetrics> history;  // completed epochs
};
// The start of a run: nothing done, the data generator seeded with cfg.seed.
TrainProgress initial_progress(const TrainConfig& cfg);

struct StepInfo {
  int64_t epoch, step_in_epoch, steps_per_epoch, images_done;
  double loss, accuracy, images_per_second, seconds;
};

struct TrainCallbacks {
  std::function<void(const StepInfo&)> on_step;          // after every optimizer step
  // After each epoch's evaluation, with the optimizer and the data-order generator (checkpoints).
  std::function<void(const EpochMetrics&, Optimizer&, const Rng&)> on_epoch;
  // At each checkpoint: after every cfg.checkpoint_every steps (but not after an epoch's last
  // step) and after each epoch (after on_epoch). The model and `opt` are in the state `p`
  // describes; everything in it is finite (a step that is not stops training first).
  std::function<void(const TrainProgress& p, Optimizer& opt)> on_checkpoint;
};

// One optimizer step on a batch: forward, loss, backward, update. Returns the loss and sets
// `correct` to the number of right predictions.
double train_step(Model& m, CrossEntropyLoss& loss, Optimizer& opt, const Tensor& x,
                  const std::vector<int32_t>& y, int64_t* correct);

// Trains on `train` (normalized) and evaluates on `test` after every epoch. Returns every
// epoch's metrics.
//
// Bad numbers stop training with a normnet::Error naming the epoch and step: a non-finite
// value in an input batch (naming the training image), a non-finite loss (naming the first
// module, in forward order, whose output is not finite: first_nonfinite_module), non-finite
// gradients (naming the first parameter in backward order) or non-finite parameters or
// buffers after the update (naming them). The checks come before on_checkpoint, so no
// checkpoint ever holds them. Labels outside [0, m.classes) are an error naming the index.
std::vector<EpochMetrics> train(Model& m, const Dataset& train, const Dataset& test,
                                const TrainConfig& cfg, const TrainCallbacks& cb = {});
// The same, continuing from `from` with `opt` (built over m's parameters with cfg.optimizer,
// its state restored): the model, the optimizer, the metrics and every later checkpoint are
// bit-identical to those of the run that was never stopped.
std::vector<EpochMetrics> train(Model& m, const Dataset& train, const Dataset& test,
                                const TrainConfig& cfg, const TrainCallbacks& cb, Optimizer& opt,
                                TrainProgress from);

// The first module in forward order whose output is not finite when x runs forward through m
// in its current mode, as its label ("Conv2d 'conv2'"); containers are followed inside
// (Sequential, Residual, Concat), and a Residual whose parts are finite but whose sum is not
// is named itself. "" when every output is finite. Buffers (running statistics,
// num_batches_tracked) and counters (Dropout) are restored afterwards.
std::string first_nonfinite_module(Model& m, const Tensor& x);

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

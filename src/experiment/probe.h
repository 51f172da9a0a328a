// Measurements taken on a model without changing it (docs/experiments.md).
//
// Represents: a training-mode forward over a fixed probe batch that records the values entering
// every activation (pre-activations), and an evaluation that normalizes with the test batch's
// own statistics instead of the running ones.
// Ensures: both leave the model's parameters, buffers (running statistics,
// num_batches_tracked), counters (Dropout), mode and fusion as they were, so a training run
// that calls them between steps is bit-identical to one that does not
// (tests/unit/experiment_test.cpp). They run under NoGrad: the layers' saved activations are
// dropped, which is harmless between optimizer steps (the next forward saves new ones).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "normnet/model.h"
#include "normnet/train.h"

namespace normnet::experiment {

// The input of one activation layer (ReLU, ELU, LeakyReLU) during a forward.
struct Preactivation {
  std::string layer;          // the activation's dotted path ("relu1", "stage1.0.post")
  std::vector<double> values; // every value of its input tensor
};

// Runs `x` forward in training mode (batch statistics, as training sees them) and returns the
// input of every activation in forward order. Sequential containers and Residual blocks are
// followed inside (a Residual's activation sees the sum of body and shortcut); other containers
// run as a whole and their inner activations are not recorded. The model runs unfused meanwhile
// (fused BN+ReLU kernels never expose the pre-activation; unfused numbers are the same).
std::vector<Preactivation> probe_preactivations(Model& m, const Tensor& x);

// Accuracy on `data` with every normalization layer that keeps running statistics in training
// mode (normalizing each test batch of `batch_size` with its own statistics) and every other
// layer (Dropout) in eval mode; buffers restored afterwards.
EvalResult evaluate_batch_statistics(Model& m, const Dataset& data, int64_t batch_size);

// Sets the momentum of every BatchNorm and GhostBatchNorm layer (nullopt: cumulative average);
// returns how many layers it set.
int64_t set_batchnorm_momentum(Model& m, std::optional<double> momentum);

}  // namespace normnet::experiment

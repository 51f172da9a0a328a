// The pieces every study of `normnet experiment` is built from (docs/experiments.md).
//
// Represents: a run of one variant (a model with a ModelTransform and training settings) with
// one seed, trained in process with normnet::train(), and what it measured: per-epoch metrics,
// and values taken every `probe_every` optimizer steps by a probe callback.
// Requires: data sets normalized with the training set's statistics (load_experiment_data).
// Ensures: a run that stops on bad numbers (normnet::train throws normnet::Error: a non-finite
// loss, gradient or parameter) is not an error of the study: run_variant returns it as
// diverged, with the step and message, and its final accuracy counts as chance level
// (1 / classes), as docs/experiments.md states. Any other error propagates.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "normnet/model.h"
#include "normnet/train.h"

namespace normnet::experiment {

// Training and test sets of one study: the first `limit` training images (-1: all) and the
// first `test_limit` test images, both normalized with the training subset's mean and std.
struct ExperimentData {
  Dataset train, test;
  Normalization norm;
};
ExperimentData load_experiment_data(const std::string& dir, int64_t limit, int64_t test_limit);

// The first `count` samples of `data` (all when count exceeds its size).
Dataset first_samples(const Dataset& data, int64_t count);

// One thing a study compares.
struct Variant {
  std::string name;              // the series' name in the report ("bn", "none", "gn:8")
  std::string model = "seed001"; // zoo name or JSON path; or JSON text when it starts with '{'
  ModelTransform transform;
  TrainConfig config;            // seed and epochs are set per run
  std::function<void(Model&)> prepare;  // after building and initializing (e.g. BN momentum)
};

Model build_variant_model(const Variant& v);  // not initialized

struct RunResult {
  std::vector<EpochMetrics> epochs;  // completed epochs
  int64_t steps = 0;                 // optimizer steps completed
  bool diverged = false;
  std::string error;                 // the normnet::Error message when diverged
  double final_test_accuracy = 0;    // the last epoch's; chance level when diverged
};

// Called at step 0 (before training) and after every `every` optimizer steps, with the model
// in training mode between steps; it must leave the model as it found it (probe.h helps).
struct StepProbe {
  int64_t every = 0;  // 0: never
  std::function<void(Model&, int64_t step)> fn;
};

// Trains a fresh model of `v` (parameters from `seed`, cfg.seed = seed, cfg.epochs = epochs).
// `model_out`, when given, receives the trained model.
RunResult run_variant(const Variant& v, uint64_t seed, int64_t epochs, const ExperimentData& data,
                      const StepProbe& probe = {}, Model* model_out = nullptr);

// The first step of a curve of (step, accuracy), in order, whose accuracy is >= target; -1
// when none is.
int64_t steps_to_reach(const std::vector<std::pair<int64_t, double>>& curve, double target);

}  // namespace normnet::experiment

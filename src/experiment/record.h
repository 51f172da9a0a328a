// Rows every study writes for a run: its per-epoch metrics, and a table row when it diverged.
#pragma once
#include <string>

#include "experiment/output.h"
#include "experiment/runner.h"

namespace normnet::experiment {

// train_loss, train_accuracy and test_accuracy at every completed epoch (x_name epoch).
void record_epochs(ExperimentOutput& out, const std::string& study, const std::string& variant,
                   int64_t seed, const RunResult& r);
// When r diverged: a row of the study's "Runs that diverged" table (what, where, why).
void record_divergence(ExperimentOutput& out, const std::string& study, const std::string& what,
                       int64_t seed, const RunResult& r);
// Standard settings of the studies: SGD with momentum 0.9, lr 0.02, batch 64, no augmentation.
TrainConfig base_config();

}  // namespace normnet::experiment

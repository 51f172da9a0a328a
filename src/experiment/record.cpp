// Rows shared by the studies; see record.h.
#include "experiment/record.h"

namespace normnet::experiment {

void record_epochs(ExperimentOutput& out, const std::string& study, const std::string& variant,
                   int64_t seed, const RunResult& r) {
  for (const EpochMetrics& e : r.epochs) {
    const double x = static_cast<double>(e.epoch);
    out.curve(study, variant, seed, "epoch", x, "train_loss", e.train_loss);
    out.curve(study, variant, seed, "epoch", x, "train_accuracy", e.train_accuracy);
    out.curve(study, variant, seed, "epoch", x, "test_accuracy", e.test_accuracy);
  }
}

void record_divergence(ExperimentOutput& out, const std::string& study, const std::string& what,
                       int64_t seed, const RunResult& r) {
  if (!r.diverged) return;
  const std::string row = what + " seed " + std::to_string(seed);
  out.cell(study, "Runs that diverged", row, "steps completed", std::to_string(r.steps));
  out.cell(study, "Runs that diverged", row, "accuracy counted", number_text(r.final_test_accuracy));
  out.cell(study, "Runs that diverged", row, "why", r.error);
}

TrainConfig base_config() {
  TrainConfig c;
  c.batch_size = 64;
  c.optimizer.kind = "sgd";
  c.optimizer.lr = 0.02;
  c.optimizer.momentum = 0.9;
  return c;
}

}  // namespace normnet::experiment

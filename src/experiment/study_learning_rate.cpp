// learning-rate: does BatchNorm allow higher learning rates? seed001 with and without
// BatchNorm over a sweep of learning rates; the final test accuracy at each. A run that
// diverges counts at chance level (runner.h) and is listed with where and why it stopped.
#include <map>

#include "experiment/record.h"
#include "experiment/studies.h"

namespace normnet::experiment {

namespace {

const char* kStudy = "learning-rate";

void run(const StudyContext& ctx, ExperimentOutput& out) {
  const StudySettings& s = ctx.settings;
  const ExperimentData data = load_experiment_data(ctx.data, s.limit, s.test_limit);
  for (const char* norm : {"bn", "none"}) {
    for (double lr : s.sweep) {
      Variant v;
      v.name = norm;
      v.model = "seed001";
      v.transform.norm = norm;
      v.config = base_config();
      v.config.optimizer.lr = lr;
      int64_t diverged = 0;
      for (int64_t seed = 1; seed <= s.seeds; ++seed) {
        ctx.log(std::string(norm) + " lr " + number_text(lr) + " seed " + std::to_string(seed));
        const RunResult r = run_variant(v, seed, s.epochs, data);
        out.curve(kStudy, v.name, seed, "lr", lr, "final_test_accuracy", r.final_test_accuracy);
        record_divergence(out, kStudy, std::string(norm) + " lr " + number_text(lr), seed, r);
        diverged += r.diverged;
      }
      out.cell(kStudy, "Diverged runs (of the seeds)", "lr " + number_text(lr), norm,
               std::to_string(diverged) + " of " + std::to_string(s.seeds));
    }
  }
  out.charts.push_back({kStudy, "final_test_accuracy", "lr", "Final test accuracy vs learning rate",
                        "learning rate (SGD; momentum 0.9)", "final test accuracy", "log", "", ""});
}

}  // namespace

Study learning_rate_study() {
  Study s;
  s.name = kStudy;
  s.title = "Learning-rate range with and without BatchNorm";
  s.claim =
      "Claim: BatchNorm lets a network train at much higher learning rates. Measured: seed001 "
      "with BatchNorm and without any normalization; SGD with momentum 0.9 at each learning "
      "rate of the sweep; final test accuracy (evaluation mode). A run whose loss or weights "
      "become non-finite stops; it counts as chance level (0.1) and is listed with the step it "
      "reached.";
  s.budget = "about 8 minutes, 458 s measured";
  s.full = {2, 2, 5000, 2000, {0.003, 0.01, 0.03, 0.1, 0.3, 1, 3}};
  s.quick = {2, 1, 1000, 500, {0.01, 0.3, 3}};
  s.run = run;
  return s;
}

}  // namespace normnet::experiment

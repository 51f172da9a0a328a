// batch-size: does BatchNorm suffer at small batches, and do GroupNorm, LayerNorm, Batch
// Renormalization or ghost BatchNorm help? seed001 with each normalization over a sweep of
// batch sizes, the same training images per run, the learning rate scaled linearly with the
// batch size (0.02 at 64); final test accuracy in evaluation mode (running statistics for the
// layers that keep them), and for those layers also after recalibrating the statistics.
#include "experiment/record.h"
#include "experiment/studies.h"

namespace normnet::experiment {

namespace {

const char* kStudy = "batch-size";

void run(const StudyContext& ctx, ExperimentOutput& out) {
  const StudySettings& s = ctx.settings;
  const ExperimentData data = load_experiment_data(ctx.data, s.limit, s.test_limit);
  for (const char* norm : {"bn", "gn:8", "ln", "brn", "ghost:16"}) {
    for (double b : s.sweep) {
      Variant v;
      v.name = norm;
      v.model = "seed001";
      v.transform.norm = norm;
      v.config = base_config();
      v.config.batch_size = static_cast<int64_t>(b);
      v.config.optimizer.lr = 0.02 * b / 64.0;  // linear scaling rule
      for (int64_t seed = 1; seed <= s.seeds; ++seed) {
        ctx.log(std::string(norm) + " batch " + number_text(b) + " seed " + std::to_string(seed));
        Model m;
        const RunResult r = run_variant(v, seed, s.epochs, data, {}, &m);
        out.curve(kStudy, v.name, seed, "batch_size", b, "final_test_accuracy", r.final_test_accuracy);
        // Layers with running statistics: the accuracy once they are re-estimated over the
        // training images (batches of 128), which separates a badly trained network from
        // running averages that do not match it.
        if (!r.diverged && count_recalibratable_layers(m) > 0) {
          recalibrate_batchnorm(m, data.train, 128);
          out.curve(kStudy, v.name, seed, "batch_size", b, "recalibrated_test_accuracy", evaluate(m, data.test).accuracy);
        }
        record_divergence(out, kStudy, std::string(norm) + " batch " + number_text(b), seed, r);
      }
    }
  }
  out.charts.push_back({kStudy, "final_test_accuracy", "batch_size", "Final test accuracy vs batch size",
                        "batch size (lr = 0.02 x batch / 64)", "final test accuracy", "log", "", ""});
  out.charts.push_back({kStudy, "recalibrated_test_accuracy", "batch_size",
                        "Test accuracy after recalibrating the running statistics vs batch size",
                        "batch size (lr = 0.02 x batch / 64)", "test accuracy (recalibrated)", "log", "", ""});
}

}  // namespace

Study batch_size_study() {
  Study s;
  s.name = kStudy;
  s.title = "Small batches: BatchNorm, GroupNorm, LayerNorm, Batch Renormalization, ghost BatchNorm";
  s.claim =
      "Claim: BatchNorm degrades at small batch sizes (noisy batch statistics and running "
      "averages that do not match them) while GroupNorm and LayerNorm do not depend on the batch "
      "and Batch Renormalization corrects the mismatch. Measured: seed001 with every BatchNorm "
      "replaced (bn; gn:8 = GroupNorm with 8 groups; ln = LayerNorm; brn = Batch Renormalization; "
      "ghost:16 = ghost BatchNorm over virtual batches of 16); the same training images per run; "
      "lr = 0.02 x batch size / 64 (linear scaling); final test accuracy in evaluation mode; for "
      "bn; brn and ghost:16 also after recalibrating the running statistics over the training "
      "images.";
  s.budget = "about 9 to 11 minutes, 510 s measured (632 s with two other runs beside it)";
  s.full = {2, 1, 5000, 2000, {2, 4, 16, 64, 256}};
  s.quick = {2, 1, 500, 500, {4, 64}};
  s.run = run;
  return s;
}

}  // namespace normnet::experiment

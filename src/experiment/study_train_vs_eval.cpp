// train-vs-eval: what do the running statistics cost? seed001 trained with BatchNorm momentum
// 0.01, 0.1 (PyTorch's default), 0.5 and the cumulative average; each trained model evaluated
// with the running statistics (eval mode), with each test batch's own statistics (batch
// statistics, buffers restored) and after recalibrating the running statistics over the
// training images (recalibrate_batchnorm).
#include <optional>

#include "experiment/probe.h"
#include "experiment/record.h"
#include "experiment/studies.h"

namespace normnet::experiment {

namespace {

const char* kStudy = "train-vs-eval";
constexpr int64_t kEvalBatch = 128;  // test batch size for the batch-statistics evaluation

void run(const StudyContext& ctx, ExperimentOutput& out) {
  const StudySettings& s = ctx.settings;
  const ExperimentData data = load_experiment_data(ctx.data, s.limit, s.test_limit);
  const std::string table = "Test accuracy by statistics used (mean +- std over seeds)";
  for (double momentum : s.sweep) {  // 0: the cumulative average (momentum None)
    const std::optional<double> mom = momentum > 0 ? std::optional<double>(momentum) : std::nullopt;
    const std::string setting = momentum > 0 ? "momentum " + number_text(momentum) : "cumulative average";
    Variant v;
    v.name = setting;
    v.model = "seed001";
    v.config = base_config();
    v.prepare = [mom](Model& m) { set_batchnorm_momentum(m, mom); };
    std::vector<double> running, batch, recal;
    for (int64_t seed = 1; seed <= s.seeds; ++seed) {
      ctx.log(setting + " seed " + std::to_string(seed));
      Model m;
      const RunResult r = run_variant(v, seed, s.epochs, data, {}, &m);
      record_divergence(out, kStudy, setting, seed, r);
      if (r.diverged) continue;
      running.push_back(evaluate(m, data.test).accuracy);
      batch.push_back(evaluate_batch_statistics(m, data.test, kEvalBatch).accuracy);
      recalibrate_batchnorm(m, data.train, 128);
      recal.push_back(evaluate(m, data.test).accuracy);
      out.curve(kStudy, "running statistics", seed, "momentum", momentum, "test_accuracy", running.back());
      out.curve(kStudy, "batch statistics", seed, "momentum", momentum, "test_accuracy", batch.back());
      out.curve(kStudy, "recalibrated", seed, "momentum", momentum, "test_accuracy", recal.back());
    }
    out.cell(kStudy, table, setting, "running statistics", mean_text(running));
    out.cell(kStudy, table, setting, "batch statistics", mean_text(batch));
    out.cell(kStudy, table, setting, "recalibrated", mean_text(recal));
  }
  out.charts.push_back({kStudy, "test_accuracy", "momentum", "Test accuracy by BN momentum and statistics used",
                        "BN momentum (0 = cumulative average)", "test accuracy", "", "", "bars"});
}

}  // namespace

Study train_vs_eval_study() {
  Study s;
  s.name = kStudy;
  s.title = "Batch statistics vs running statistics vs recalibration; the momentum";
  s.claim =
      "Claim: at evaluation BatchNorm uses running averages that can lag the weights (a small "
      "momentum averages over many old batches) and recalibrating them (as SWA's update_bn) "
      "recovers the accuracy. Measured: seed001 trained with BN momentum 0.01 / 0.1 / 0.5 / the "
      "cumulative average (0 on the chart); each model evaluated with running statistics; with "
      "the statistics of each test batch of 128 (buffers restored); and after recalibrating the "
      "running statistics over the training images in batches of 128.";
  s.budget = "about 9 minutes, 548 s measured";
  s.full = {3, 2, 10000, 2000, {0.01, 0.1, 0.5, 0}};
  s.quick = {2, 1, 1000, 500, {0.01, 0.1, 0}};
  s.run = run;
  return s;
}

}  // namespace normnet::experiment

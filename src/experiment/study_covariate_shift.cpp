// covariate-shift: does BatchNorm keep the distribution of each layer's inputs steady during
// training ("internal covariate shift")? seed001 with and without BatchNorm; every few steps
// the values entering each activation on a fixed probe batch of training images (a
// training-mode forward that leaves the run unchanged, probe.h) are described by percentiles,
// mean and std: distributions.csv ("bands over time") and, per layer, the mean and std as
// curves over steps.
#include <cmath>
#include <map>

#include "experiment/probe.h"
#include "experiment/record.h"
#include "experiment/studies.h"

namespace normnet::experiment {

namespace {

const char* kStudy = "covariate-shift";

void run(const StudyContext& ctx, ExperimentOutput& out) {
  const StudySettings& s = ctx.settings;
  const ExperimentData data = load_experiment_data(ctx.data, s.limit, s.test_limit);
  const Dataset probe_batch = first_samples(data.train, ctx.quick ? 64 : 128);
  const int64_t every = ctx.quick ? 4 : 10;
  for (const char* norm : {"bn", "none"}) {
    Variant v;
    v.name = norm;
    v.model = "seed001";
    v.transform.norm = norm;
    v.config = base_config();
    for (int64_t seed = 1; seed <= s.seeds; ++seed) {
      ctx.log(v.name + " seed " + std::to_string(seed));
      // Per layer: the mean at the previous probe, for the step-to-step change.
      std::map<std::string, double> previous_mean;
      StepProbe probe{every, [&](Model& m, int64_t step) {
                        for (Preactivation& p : probe_preactivations(m, probe_batch.images)) {
                          const Distribution d = describe_values(std::move(p.values));
                          const double x = static_cast<double>(step);
                          out.distributions.push_back({kStudy, v.name, seed, p.layer, "preactivation", "step", x, d});
                          out.curve(kStudy, v.name, seed, "step", x, p.layer + "_mean", d.mean);
                          out.curve(kStudy, v.name, seed, "step", x, p.layer + "_std", d.std);
                          if (previous_mean.count(p.layer))
                            out.curve(kStudy, v.name, seed, "step", x, p.layer + "_mean_change",
                                      std::fabs(d.mean - previous_mean[p.layer]));
                          previous_mean[p.layer] = d.mean;
                        }
                      }};
      const RunResult r = run_variant(v, seed, s.epochs, data, probe);
      record_epochs(out, kStudy, v.name, seed, r);
      record_divergence(out, kStudy, v.name, seed, r);
    }
  }
}

}  // namespace

Study covariate_shift_study() {
  Study s;
  s.name = kStudy;
  s.title = "Internal covariate shift: pre-activation distributions over training";
  s.claim =
      "Claim: BatchNorm works by reducing internal covariate shift (the change of each layer's "
      "input distribution as earlier layers learn). Measured: seed001 with and without "
      "BatchNorm; every few steps the values entering each ReLU on a fixed batch of training "
      "images (128; 64 with --quick; training-mode forward; running statistics restored so the run is unchanged): "
      "median with 25-75% / 5-95% / min-max bands; per layer the mean; std and the absolute "
      "change of the mean between probes.";
  s.budget = "about 3 minutes, 175 s measured";
  s.full = {2, 2, 10000, 2000, {}};
  s.quick = {2, 1, 1000, 500, {}};
  s.run = run;
  return s;
}

}  // namespace normnet::experiment

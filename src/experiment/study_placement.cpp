// placement: BatchNorm before or after the activation? seed001 as in the zoo (conv -> BN ->
// ReLU) and with every BN/ReLU pair swapped (conv -> ReLU -> BN, --bn-position after): loss
// and accuracy per epoch.
#include "experiment/record.h"
#include "experiment/studies.h"

namespace normnet::experiment {

namespace {

const char* kStudy = "placement";

void run(const StudyContext& ctx, ExperimentOutput& out) {
  const StudySettings& s = ctx.settings;
  const ExperimentData data = load_experiment_data(ctx.data, s.limit, s.test_limit);
  for (const char* position : {"before", "after"}) {
    Variant v;
    v.name = std::string("bn-") + position + "-relu";
    v.model = "seed001";
    v.transform.bn_position = position;
    v.config = base_config();
    for (int64_t seed = 1; seed <= s.seeds; ++seed) {
      ctx.log(v.name + " seed " + std::to_string(seed));
      const RunResult r = run_variant(v, seed, s.epochs, data);
      record_epochs(out, kStudy, v.name, seed, r);
      record_divergence(out, kStudy, v.name, seed, r);
    }
  }
}

}  // namespace

Study placement_study() {
  Study s;
  s.name = kStudy;
  s.title = "BatchNorm before or after the activation";
  s.claim =
      "Question: the original paper puts BatchNorm before the nonlinearity; many practitioners "
      "report that after works as well or better. Measured: seed001 (conv -> BN -> ReLU) and the "
      "same network with every BN/ReLU pair swapped (conv -> ReLU -> BN); same seeds and data "
      "order; SGD lr 0.02 momentum 0.9 batch 64; loss and accuracy per epoch.";
  s.budget = "about 3 minutes, 151 s measured";
  s.full = {3, 3, 10000, 2000, {}};
  s.quick = {2, 2, 1000, 500, {}};
  s.run = run;
  return s;
}

}  // namespace normnet::experiment

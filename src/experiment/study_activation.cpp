// activation: ReLU or ELU with BatchNorm? Three zoo networks with BatchNorm (seed001, seed002,
// seed003-cnn2d), each with its ReLUs and with ELUs (--activation elu): accuracy per epoch and a
// table of the final accuracies.
#include "experiment/record.h"
#include "experiment/studies.h"

namespace normnet::experiment {

namespace {

const char* kStudy = "activation";

void run(const StudyContext& ctx, ExperimentOutput& out) {
  const StudySettings& s = ctx.settings;
  const ExperimentData data = load_experiment_data(ctx.data, s.limit, s.test_limit);
  for (const char* net : {"seed001", "seed002", "seed003-cnn2d"}) {
    std::vector<double> finals[2];
    int k = 0;
    for (const char* act : {"relu", "elu"}) {
      Variant v;
      v.name = std::string(net) + "-" + act;
      v.model = net;
      v.transform.activation = act;
      v.config = base_config();
      for (int64_t seed = 1; seed <= s.seeds; ++seed) {
        ctx.log(v.name + " seed " + std::to_string(seed));
        const RunResult r = run_variant(v, seed, s.epochs, data);
        record_epochs(out, kStudy, v.name, seed, r);
        record_divergence(out, kStudy, v.name, seed, r);
        finals[k].push_back(r.final_test_accuracy);
      }
      out.cell(kStudy, "Final test accuracy (mean +- std over seeds)", net, act, mean_text(finals[k]));
      ++k;
    }
    std::vector<double> diff;
    for (size_t i = 0; i < finals[0].size(); ++i) diff.push_back(finals[1][i] - finals[0][i]);
    out.cell(kStudy, "Final test accuracy (mean +- std over seeds)", net, "elu - relu (same seed)", mean_text(diff));
  }
}

}  // namespace

Study activation_study() {
  Study s;
  s.name = kStudy;
  s.title = "ReLU or ELU with BatchNorm";
  s.claim =
      "Question (the comparative study's): with BatchNorm in place does ELU still beat ReLU? "
      "Measured: seed001; seed002 (one conv layer and global average pooling) and seed003-cnn2d "
      "(two conv layers at full resolution) with BatchNorm and ReLU; and the same with every ReLU "
      "replaced by ELU (alpha 1); same seeds and data order; SGD lr 0.02 momentum 0.9 batch 64.";
  s.budget = "about 6 minutes, 337 s measured";
  s.full = {2, 2, 10000, 2000, {}};
  s.quick = {2, 1, 1000, 500, {}};
  s.run = run;
  return s;
}

}  // namespace normnet::experiment

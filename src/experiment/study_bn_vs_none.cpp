// bn-vs-none: does BatchNorm speed up convergence? seed001 and a deeper VGG-style network
// (vgg-mini, below), each with and without BatchNorm (--norm none): loss and accuracy per
// epoch, test accuracy on a fixed probe of test images every few steps, and the steps each
// takes to reach given accuracies.
#include <map>

#include "experiment/probe.h"
#include "experiment/record.h"
#include "experiment/studies.h"

namespace normnet::experiment {

namespace {

const char* kStudy = "bn-vs-none";

// VGG-style: three stages of two 3x3 conv-BN-ReLU and a 2x2 max pooling (16, 32, 64 channels;
// 28 -> 14 -> 7 -> 3), then Linear(64*3*3, 10). Six convolutions, twice seed001's compute; the
// zoo's vgg11-bn costs about 40 times seed001 per image at 28x28 (docs/experiments.md).
const char* kVggMini = R"({"name": "vgg-mini", "input": [1, 28, 28], "classes": 10, "layers": [
 {"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
 {"type": "BatchNorm2d", "name": "bn1", "num_features": 16}, {"type": "ReLU", "name": "relu1"},
 {"type": "Conv2d", "name": "conv2", "in_channels": 16, "out_channels": 16, "kernel_size": 3, "padding": 1},
 {"type": "BatchNorm2d", "name": "bn2", "num_features": 16}, {"type": "ReLU", "name": "relu2"},
 {"type": "MaxPool2d", "name": "pool1", "kernel_size": 2},
 {"type": "Conv2d", "name": "conv3", "in_channels": 16, "out_channels": 32, "kernel_size": 3, "padding": 1},
 {"type": "BatchNorm2d", "name": "bn3", "num_features": 32}, {"type": "ReLU", "name": "relu3"},
 {"type": "Conv2d", "name": "conv4", "in_channels": 32, "out_channels": 32, "kernel_size": 3, "padding": 1},
 {"type": "BatchNorm2d", "name": "bn4", "num_features": 32}, {"type": "ReLU", "name": "relu4"},
 {"type": "MaxPool2d", "name": "pool2", "kernel_size": 2},
 {"type": "Conv2d", "name": "conv5", "in_channels": 32, "out_channels": 64, "kernel_size": 3, "padding": 1},
 {"type": "BatchNorm2d", "name": "bn5", "num_features": 64}, {"type": "ReLU", "name": "relu5"},
 {"type": "Conv2d", "name": "conv6", "in_channels": 64, "out_channels": 64, "kernel_size": 3, "padding": 1},
 {"type": "BatchNorm2d", "name": "bn6", "num_features": 64}, {"type": "ReLU", "name": "relu6"},
 {"type": "MaxPool2d", "name": "pool3", "kernel_size": 2},
 {"type": "Flatten", "name": "flatten"},
 {"type": "Linear", "name": "fc", "in_features": 576, "out_features": 10}]})";

const std::vector<double> kTargets = {0.7, 0.8, 0.85};

void run(const StudyContext& ctx, ExperimentOutput& out) {
  const StudySettings& s = ctx.settings;
  const ExperimentData data = load_experiment_data(ctx.data, s.limit, s.test_limit);
  const Dataset probe_set = first_samples(data.test, ctx.quick ? 500 : 1000);
  const int64_t probe_every = ctx.quick ? 4 : 20;
  std::vector<Variant> variants;
  for (const auto& [net, model] : std::vector<std::pair<std::string, std::string>>{{"seed001", "seed001"},
                                                                                    {"vgg-mini", kVggMini}})
    for (const char* norm : {"bn", "none"}) {
      Variant v;
      v.name = net + "-" + norm;
      v.model = model;
      v.transform.norm = norm;
      v.config = base_config();
      variants.push_back(v);
    }
  for (const Variant& v : variants) {
    std::vector<int64_t> reached[3];
    for (int64_t seed = 1; seed <= s.seeds; ++seed) {
      ctx.log(v.name + " seed " + std::to_string(seed));
      std::vector<std::pair<int64_t, double>> curve;
      StepProbe probe{probe_every, [&](Model& m, int64_t step) {
                        const double acc = evaluate(m, probe_set).accuracy;
                        curve.emplace_back(step, acc);
                        out.curve(kStudy, v.name, seed, "step", static_cast<double>(step), "probe_accuracy", acc);
                      }};
      const RunResult r = run_variant(v, seed, s.epochs, data, probe);
      record_epochs(out, kStudy, v.name, seed, r);
      record_divergence(out, kStudy, v.name, seed, r);
      for (size_t t = 0; t < kTargets.size(); ++t) reached[t].push_back(steps_to_reach(curve, kTargets[t]));
    }
    // Steps to reach each accuracy on the probe: mean over the seeds that reached it.
    for (size_t t = 0; t < kTargets.size(); ++t) {
      std::vector<double> got;
      for (int64_t st : reached[t])
        if (st >= 0) got.push_back(static_cast<double>(st));
      std::string text = got.empty() ? "not reached" : mean_text(got);
      if (!got.empty() && got.size() < reached[t].size())
        text += " (" + std::to_string(got.size()) + " of " + std::to_string(reached[t].size()) + " seeds)";
      out.cell(kStudy, "Steps to reach a probe accuracy (mean +- std over seeds)", v.name,
               "accuracy " + number_text(kTargets[t]), text);
    }
  }
  out.charts.push_back({kStudy, "probe_accuracy", "step", "Test accuracy on the probe images vs step", "optimizer step",
                        "probe accuracy", "", "", ""});
}

}  // namespace

Study bn_vs_none_study() {
  Study s;
  s.name = kStudy;
  s.title = "BatchNorm vs no normalization: convergence speed";
  s.claim =
      "Claim: BatchNorm makes networks converge faster (in fewer steps) and matters more the "
      "deeper the network. Measured: seed001 and vgg-mini (six conv layers) with BatchNorm and "
      "with every BatchNorm removed; same initialization seed and data order per seed; SGD lr 0.02 "
      "momentum 0.9 batch 64. Test accuracy on a fixed probe of test images every few steps; steps "
      "to reach 0.7 / 0.8 / 0.85 on the probe.";
  s.budget = "about 18 minutes, 1067 s measured";
  s.full = {3, 3, 10000, 2000, {}};
  s.quick = {2, 1, 1000, 500, {}};
  s.run = run;
  return s;
}

}  // namespace normnet::experiment

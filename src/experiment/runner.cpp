// run_variant and the data of a study; see runner.h.
#include "experiment/runner.h"

#include <algorithm>

#include "normnet/error.h"

namespace normnet::experiment {

Dataset first_samples(const Dataset& data, int64_t count) {
  const int64_t n = std::min(count, data.size());
  check(n > 0, "experiment: no samples to take (asked for ", count, " of ", data.size(), ")");
  Dataset d;
  d.images = data.images.slice(0, n).contiguous();
  d.labels.assign(data.labels.begin(), data.labels.begin() + n);
  d.classes = data.classes;
  return d;
}

ExperimentData load_experiment_data(const std::string& dir, int64_t limit, int64_t test_limit) {
  check(limit == -1 || limit >= 1, "--limit must be a positive number of images, got ", limit);
  check(test_limit == -1 || test_limit >= 1, "--test-limit must be a positive number of images, got ",
        test_limit);
  ExperimentData d;
  d.train = load_split(dir, true, limit);
  d.test = load_split(dir, false, test_limit);
  d.norm = compute_normalization(d.train.images);
  normalize_inplace(d.train.images, d.norm);
  normalize_inplace(d.test.images, d.norm);
  return d;
}

Model build_variant_model(const Variant& v) {
  if (!v.model.empty() && v.model[0] == '{') {
    const std::string source = "experiment variant '" + v.name + "'";
    return build_model(transform_model(v.model, v.transform, source), source);
  }
  return load_model(v.model, v.transform);
}

RunResult run_variant(const Variant& v, uint64_t seed, int64_t epochs, const ExperimentData& data,
                      const StepProbe& probe, Model* model_out) {
  Model m = build_variant_model(v);
  m.init_parameters(seed);
  if (v.prepare) v.prepare(m);
  TrainConfig cfg = v.config;
  cfg.seed = seed;
  cfg.epochs = epochs;
  RunResult r;
  TrainCallbacks cb;
  cb.on_step = [&](const StepInfo&) {
    ++r.steps;
    if (probe.every > 0 && probe.fn && r.steps % probe.every == 0) probe.fn(m, r.steps);
  };
  cb.on_epoch = [&](const EpochMetrics& e, Optimizer&, const Rng&) { r.epochs.push_back(e); };
  if (probe.every > 0 && probe.fn) probe.fn(m, 0);
  try {
    train(m, data.train, data.test, cfg, cb);
    r.final_test_accuracy = r.epochs.empty() ? 0.0 : r.epochs.back().test_accuracy;
  } catch (const Error& e) {
    // Only the trainer's bad-number stops are divergence; anything else is the study's error.
    if (std::string(e.what()).rfind("training stopped at ", 0) != 0) throw;
    r.diverged = true;
    r.error = e.what();
    r.final_test_accuracy = 1.0 / static_cast<double>(m.classes);
  }
  if (model_out) *model_out = std::move(m);
  return r;
}

int64_t steps_to_reach(const std::vector<std::pair<int64_t, double>>& curve, double target) {
  for (const auto& [step, acc] : curve)
    if (acc >= target) return step;
  return -1;
}

}  // namespace normnet::experiment

// Recalibration of BatchNorm running statistics (torch.optim.swa_utils.update_bn); see
// docs/normalization.md.
#include <algorithm>
#include <optional>
#include <vector>

#include "normnet/error.h"
#include "normnet/train.h"

namespace normnet {

namespace {

// One layer whose running statistics are re-estimated, with what recalibration changes on it.
struct Recal {
  BatchNorm* bn = nullptr;
  BatchRenorm* brn = nullptr;
  GhostBatchNorm* gbn = nullptr;
  std::optional<double> momentum;                // restored afterwards
  double r_max = 0, d_max = 0;                   // BatchRenorm: restored afterwards
  int64_t warmup_start = 0, warmup_end = 0;      // BatchRenorm: restored afterwards
  int64_t steps = 0;                             // BatchRenorm's num_batches_tracked: restored
};

void collect(Module* m, std::vector<Recal>& out) {
  Recal r;
  if (auto* bn = dynamic_cast<BatchNorm*>(m); bn && bn->opt.track_running_stats) {
    r.bn = bn;
    r.momentum = bn->opt.momentum;
    out.push_back(r);
  } else if (auto* brn = dynamic_cast<BatchRenorm*>(m)) {
    r.brn = brn;
    r.momentum = brn->opt.momentum;
    r.r_max = brn->opt.r_max;
    r.d_max = brn->opt.d_max;
    r.warmup_start = brn->opt.warmup_start;
    r.warmup_end = brn->opt.warmup_end;
    r.steps = brn->num_batches_tracked;
    out.push_back(r);
  } else if (auto* gbn = dynamic_cast<GhostBatchNorm*>(m); gbn && gbn->opt.track_running_stats) {
    r.gbn = gbn;
    r.momentum = gbn->opt.momentum;
    out.push_back(r);
  }
  for (auto& [name, child] : m->children()) collect(child, out);
}

void reset(Tensor& running_mean, Tensor& running_var, int64_t& count) {
  running_mean.fill(0.0f);
  running_var.fill(1.0f);
  count = 0;
}

// Prepares every layer: statistics reset, cumulative average; BatchRenorm as plain BatchNorm
// (r = 1, d = 0), its statistics being what is re-estimated.
void begin(Recal& r) {
  if (r.bn) {
    r.bn->opt.momentum = std::nullopt;
    reset(r.bn->running_mean, r.bn->running_var, r.bn->num_batches_tracked);
  } else if (r.brn) {
    r.brn->opt.momentum = std::nullopt;
    r.brn->opt.r_max = 1.0;
    r.brn->opt.d_max = 0.0;
    r.brn->opt.warmup_start = r.brn->opt.warmup_end = 0;
    reset(r.brn->running_mean, r.brn->running_var, r.brn->num_batches_tracked);
  } else {
    r.gbn->opt.momentum = std::nullopt;
    reset(r.gbn->running_mean, r.gbn->running_var, r.gbn->num_batches_tracked);
  }
}

void end(Recal& r) {
  if (r.bn) {
    r.bn->opt.momentum = r.momentum;
  } else if (r.brn) {
    r.brn->opt.momentum = r.momentum;
    r.brn->opt.r_max = r.r_max;
    r.brn->opt.d_max = r.d_max;
    r.brn->opt.warmup_start = r.warmup_start;
    r.brn->opt.warmup_end = r.warmup_end;
    r.brn->num_batches_tracked = r.steps;
  } else {
    r.gbn->opt.momentum = r.momentum;
  }
}

}  // namespace

int64_t count_recalibratable_layers(Model& m) {
  std::vector<Recal> layers;
  collect(m.net.get(), layers);
  return static_cast<int64_t>(layers.size());
}

RecalibrateResult recalibrate_batchnorm(Model& m, const Dataset& data, int64_t batch_size) {
  check(batch_size > 0, "recalibrate: batch size must be positive, got ", batch_size);
  check(data.size() > 0, "recalibrate: the data set is empty");
  const Shape want = m.batch_shape(data.size());
  check(data.images.shape() == want, "recalibrate: images are ", data.images.shape().str(),
        " but model '", m.name, "' takes ", want.str());
  std::vector<Recal> layers;
  collect(m.net.get(), layers);
  RecalibrateResult res;
  res.layers = static_cast<int64_t>(layers.size());
  if (layers.empty()) return res;
  const bool was_training = m.net->training();
  for (Recal& r : layers) begin(r);
  try {
    m.net->train(true);
    const int64_t N = data.size();
    for (int64_t b = 0; b < N;) {
      int64_t e = std::min(N, b + batch_size);
      if (N - e == 1) e = N;  // never leave a last batch of one sample (BatchNorm1d on (N, C))
      m.net->forward(data.images.slice(b, e));
      ++res.batches;
      b = e;
    }
    res.images = N;
  } catch (...) {
    for (Recal& r : layers) end(r);
    m.net->train(was_training);
    throw;
  }
  for (Recal& r : layers) end(r);
  m.net->train(was_training);
  return res;
}

}  // namespace normnet

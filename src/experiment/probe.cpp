// Probes that measure a model between training steps and leave it as it was; see probe.h.
#include "experiment/probe.h"

#include <algorithm>

#include "normnet/error.h"
#include "normnet/layers.h"
#include "normnet/loss.h"
#include "train/model_state.h"

namespace normnet::experiment {

namespace {

// Runs m on x, recording the input of every activation on the way; returns m's output.
Tensor walk(Module& m, const Tensor& x, std::vector<Preactivation>& out) {
  if (auto* s = dynamic_cast<Sequential*>(&m)) {
    Tensor h = x;
    for (size_t i = 0; i < s->size(); ++i) h = walk(s->at(i), h, out);
    return h;
  }
  if (auto* r = dynamic_cast<Residual*>(&m)) {
    const Tensor a = walk(r->body(), x, out).contiguous();
    const Tensor b = (r->shortcut() ? walk(*r->shortcut(), x, out) : x).contiguous();
    check(a.shape() == b.shape(), m.label(), ": body and shortcut shapes differ in the probe");
    Tensor sum(a.shape());
    for (int64_t i = 0; i < a.numel(); ++i) sum.data()[i] = a.data()[i] + b.data()[i];
    return r->post() ? walk(*r->post(), sum, out) : sum;
  }
  if (dynamic_cast<Activation*>(&m)) {
    const Tensor c = x.contiguous();
    Preactivation p;
    p.layer = m.path;
    p.values.assign(c.data(), c.data() + c.numel());
    out.push_back(std::move(p));
  }
  Tensor y = m.forward(x);
  m.release_saved();
  return y;
}

// Whether build_model's fusion is on (some BatchNorm runs with its ReLU, or a ReLU passes through).
bool is_fused(Module& m) {
  if (auto* bn = dynamic_cast<BatchNorm*>(&m); bn && bn->fused_relu) return true;
  if (auto* a = dynamic_cast<Activation*>(&m); a && a->pass_through) return true;
  for (auto& [name, c] : m.children())
    if (is_fused(*c)) return true;
  return false;
}

bool keeps_running_stats(Module& m) {
  for (const Buffer& b : m.own_buffers())
    if (b.name == "running_mean") return true;
  return false;
}

void train_norm_layers(Module& m) {
  if (keeps_running_stats(m)) m.train(true);
  for (auto& [name, c] : m.children()) train_norm_layers(*c);
}

// Puts back what a probe changed, also when it throws.
class Restore {
 public:
  explicit Restore(Model& m) : m_(m), saved_(*m.net), training_(m.net->training()), fused_(is_fused(*m.net)) {
    saved_.save();
  }
  ~Restore() {
    saved_.restore();
    m_.net->train(training_);
    if (fused_) m_.net->fuse(true);
  }
  Restore(const Restore&) = delete;
  Restore& operator=(const Restore&) = delete;

 private:
  Model& m_;
  ForwardSideEffects saved_;
  bool training_, fused_;
};

}  // namespace

std::vector<Preactivation> probe_preactivations(Model& m, const Tensor& x) {
  check(x.dim(0) > 0, "probe: the probe batch is empty");
  Restore restore(m);
  m.net->fuse(false);
  m.net->train(true);
  NoGrad no_grad;
  std::vector<Preactivation> out;
  walk(*m.net, x, out);
  return out;
}

EvalResult evaluate_batch_statistics(Model& m, const Dataset& data, int64_t batch_size) {
  check(batch_size > 1, "batch-statistics evaluation: the batch size must be at least 2, got ", batch_size);
  const int64_t K = m.classes, N = data.size();
  EvalResult r;
  r.confusion.assign(static_cast<size_t>(K * K), 0);
  {
    Restore restore(m);
    m.net->eval();
    train_norm_layers(*m.net);
    release_cached_buffers();
    CrossEntropyLoss loss;
    NoGrad no_grad;
    double loss_sum = 0.0;
    for (int64_t b = 0; b < N;) {
      int64_t e = std::min(N, b + batch_size);
      if (N - e == 1) e = N;  // never a last batch of one sample (its variance is zero)
      const Tensor x = data.images.slice(b, e);
      const std::vector<int32_t> y(data.labels.begin() + b, data.labels.begin() + e);
      const Tensor logits = m.net->forward(x);
      loss_sum += loss.forward(logits, y) * static_cast<double>(e - b);
      const float* z = logits.data();
      for (int64_t i = 0; i < e - b; ++i) {
        const int64_t pred = std::max_element(z + i * K, z + (i + 1) * K) - (z + i * K);
        check(y[i] >= 0 && y[i] < K, "batch-statistics evaluation: label ", y[i], " outside ", K, " classes");
        ++r.confusion[y[i] * K + pred];
        r.correct += pred == y[i];
      }
      b = e;
    }
    r.loss = N ? loss_sum / static_cast<double>(N) : 0.0;
    release_cached_buffers();
  }
  r.total = N;
  r.accuracy = N ? static_cast<double>(r.correct) / static_cast<double>(N) : 0.0;
  for (int64_t k = 0; k < K; ++k) {
    int64_t row = 0;
    for (int64_t j = 0; j < K; ++j) row += r.confusion[k * K + j];
    r.per_class_accuracy.push_back(row ? static_cast<double>(r.confusion[k * K + k]) / row : 0.0);
  }
  return r;
}

int64_t set_batchnorm_momentum(Model& m, std::optional<double> momentum) {
  int64_t n = 0;
  std::vector<Module*> stack{m.net.get()};
  while (!stack.empty()) {
    Module* mod = stack.back();
    stack.pop_back();
    if (auto* bn = dynamic_cast<BatchNorm*>(mod)) bn->opt.momentum = momentum, ++n;
    else if (auto* g = dynamic_cast<GhostBatchNorm*>(mod)) g->opt.momentum = momentum, ++n;
    for (auto& [name, c] : mod->children()) stack.push_back(c);
  }
  return n;
}

}  // namespace normnet::experiment

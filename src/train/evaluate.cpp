#include <algorithm>

#include "normnet/error.h"
#include "normnet/loss.h"
#include "normnet/train.h"

namespace normnet {

EvalResult evaluate(Model& m, const Dataset& data, int64_t batch_size) {
  check(batch_size > 0, "evaluate: batch size must be positive");
  const int64_t K = m.classes, N = data.size();
  EvalResult r;
  r.confusion.assign(static_cast<size_t>(K * K), 0);
  const bool was_training = m.net->training();
  m.net->eval();
  release_cached_buffers();  // the training batches' buffers: other sizes than evaluation's
  CrossEntropyLoss loss;
  NoGrad no_grad;  // inference: no activation kept for a backward
  double loss_sum = 0.0;
  for (int64_t b = 0; b < N; b += batch_size) {
    const int64_t e = std::min(N, b + batch_size);
    Tensor x = data.images.slice(b, e);
    std::vector<int32_t> y(data.labels.begin() + b, data.labels.begin() + e);
    for (int32_t t : y) check(t >= 0 && t < K, "evaluate: label ", t, " outside the model's ", K, " classes");
    Tensor logits = m.net->forward(x);
    loss_sum += loss.forward(logits, y) * static_cast<double>(e - b);
    const float* z = logits.data();
    for (int64_t i = 0; i < e - b; ++i) {
      const int64_t pred = std::max_element(z + i * K, z + (i + 1) * K) - (z + i * K);
      ++r.confusion[y[i] * K + pred];
      r.correct += pred == y[i];
    }
  }
  m.net->train(was_training);
  r.total = N;
  r.loss = N ? loss_sum / static_cast<double>(N) : 0.0;
  r.accuracy = N ? static_cast<double>(r.correct) / static_cast<double>(N) : 0.0;
  for (int64_t k = 0; k < K; ++k) {
    int64_t row = 0;
    for (int64_t j = 0; j < K; ++j) row += r.confusion[k * K + j];
    r.per_class_accuracy.push_back(row ? static_cast<double>(r.confusion[k * K + k]) / row : 0.0);
  }
  release_cached_buffers();  // evaluation's buffers, before training resumes
  return r;
}

}  // namespace normnet

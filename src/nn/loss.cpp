#include "normnet/loss.h"

#include "kernels/cross_entropy.h"
#include "normnet/error.h"

namespace normnet {

CrossEntropyLoss::CrossEntropyLoss(double ls) : label_smoothing(ls) {
  check(ls >= 0 && ls <= 1, "CrossEntropyLoss: label_smoothing must be in [0, 1], got ", ls);
}

double CrossEntropyLoss::forward(const Tensor& logits, const std::vector<int32_t>& labels) {
  check(logits.rank() == 2, "CrossEntropyLoss: expected logits (N, classes), got ", logits.shape().str());
  const int64_t n = logits.dim(0), k = logits.dim(1);
  check(static_cast<int64_t>(labels.size()) == n, "CrossEntropyLoss: ", labels.size(),
        " labels for ", n, " samples");
  for (int64_t i = 0; i < n; ++i)
    check(labels[i] >= 0 && labels[i] < k, "CrossEntropyLoss: label ", labels[i], " of sample ", i,
          " is outside [0, ", k, ")");
  Tensor z = logits.contiguous();
  probs_ = Tensor(logits.shape());
  labels_ = labels;
  return kernels::cross_entropy_forward(probs_.data(), z.data(), labels.data(), n, k, label_smoothing);
}

Tensor CrossEntropyLoss::backward() {
  check(probs_.defined(), "CrossEntropyLoss: backward called before forward");
  Tensor d(probs_.shape());
  kernels::cross_entropy_backward(d.data(), probs_.data(), labels_.data(), probs_.dim(0),
                                  probs_.dim(1), label_smoothing);
  return d;
}

}  // namespace normnet

// Softmax cross-entropy, as torch.nn.CrossEntropyLoss(label_smoothing=...) with mean reduction.
#pragma once
#include <vector>

#include "normnet/tensor.h"

namespace normnet {

class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(double label_smoothing = 0.0);
  // logits (N, K); labels in [0, K). Returns the mean loss; keeps the softmax for backward.
  double forward(const Tensor& logits, const std::vector<int32_t>& labels);
  Tensor backward();  // d loss / d logits, (N, K)
  const Tensor& probabilities() const { return probs_; }
  double label_smoothing;

 private:
  Tensor probs_;
  std::vector<int32_t> labels_;
};

}  // namespace normnet

// Softmax cross-entropy with label smoothing, as torch.nn.CrossEntropyLoss(label_smoothing=ls)
// with mean reduction. For logits z (N, K) and labels t:
//   p = softmax(z) (computed with the row max subtracted)
//   q_k = (1 - ls) * [k == t] + ls / K
//   loss = (1/N) sum_n -sum_k q_k log p_k
//   dz = (p - q) / N
// forward returns the loss (summed in double) and keeps p (N, K) for backward.
#pragma once
#include <cstdint>

namespace normnet::kernels {

template <typename T>
double cross_entropy_forward(T* probs, const T* logits, const int32_t* labels, int64_t n,
                             int64_t classes, double label_smoothing);

template <typename T>
void cross_entropy_backward(T* dlogits, const T* probs, const int32_t* labels, int64_t n,
                            int64_t classes, double label_smoothing);

}  // namespace normnet::kernels

#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>

namespace normnet::kernels {

template <typename T>
double cross_entropy_forward(T* probs, const T* logits, const int32_t* labels, int64_t n,
                             int64_t classes, double label_smoothing) {
  double total = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    const T* z = logits + r * classes;
    T* p = probs + r * classes;
    double zmax = z[0];
    for (int64_t k = 1; k < classes; ++k) zmax = std::max(zmax, static_cast<double>(z[k]));
    double sum = 0.0;
    for (int64_t k = 0; k < classes; ++k) sum += std::exp(static_cast<double>(z[k]) - zmax);
    const double log_sum = std::log(sum);
    double loss = 0.0;
    for (int64_t k = 0; k < classes; ++k) {
      const double log_p = static_cast<double>(z[k]) - zmax - log_sum;
      p[k] = static_cast<T>(std::exp(log_p));
      const double q = (k == labels[r] ? 1.0 - label_smoothing : 0.0) + label_smoothing / classes;
      loss -= q * log_p;
    }
    total += loss;
  }
  return n > 0 ? total / static_cast<double>(n) : 0.0;
}

template <typename T>
void cross_entropy_backward(T* dlogits, const T* probs, const int32_t* labels, int64_t n,
                            int64_t classes, double label_smoothing) {
  const double inv_n = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k = 0; k < classes; ++k) {
      const double q = (k == labels[r] ? 1.0 - label_smoothing : 0.0) + label_smoothing / classes;
      dlogits[r * classes + k] = static_cast<T>((probs[r * classes + k] - q) * inv_n);
    }
}

template double cross_entropy_forward<float>(float*, const float*, const int32_t*, int64_t, int64_t, double);
template double cross_entropy_forward<double>(double*, const double*, const int32_t*, int64_t, int64_t, double);
template void cross_entropy_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t, double);
template void cross_entropy_backward<double>(double*, const double*, const int32_t*, int64_t, int64_t, double);

}  // namespace normnet::kernels

#include <cmath>

#include "kernels/activation.h"

namespace normnet::kernels {

template <typename T>
void elu_forward(T* out, const T* in, T alpha, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] > T(0) ? in[i] : alpha * std::expm1(in[i]);
}

// For x <= 0, d/dx alpha*(e^x - 1) = alpha*e^x = y + alpha.
template <typename T>
void elu_backward(T* din, const T* dout, const T* out, T alpha, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  // At a NaN output: dout * NaN, as torch's vectorized ELU backward (its scalar loop, used for
  // a few trailing elements, passes dout instead).
  for (int64_t i = 0; i < n; ++i) din[i] = out[i] > T(0) ? dout[i] : dout[i] * (out[i] + alpha);
}

template void elu_forward<float>(float*, const float*, float, int64_t);
template void elu_forward<double>(double*, const double*, double, int64_t);
template void elu_backward<float>(float*, const float*, const float*, float, int64_t);
template void elu_backward<double>(double*, const double*, const double*, double, int64_t);

}  // namespace normnet::kernels

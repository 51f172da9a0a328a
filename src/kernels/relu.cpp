#include "kernels/activation.h"

namespace normnet::kernels {

template <typename T>
void relu_forward(T* out, const T* in, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  // As torch.relu, also for special values: negatives give +0, while -0 and NaN pass through.
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] < T(0) ? T(0) : in[i];
}

template <typename T>
void relu_backward(T* din, const T* dout, const T* out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  // As torch's threshold_backward on the result: blocked where out <= 0, so it passes at NaN.
  for (int64_t i = 0; i < n; ++i) din[i] = out[i] <= T(0) ? T(0) : dout[i];
}

template void relu_forward<float>(float*, const float*, int64_t);
template void relu_forward<double>(double*, const double*, int64_t);
template void relu_backward<float>(float*, const float*, const float*, int64_t);
template void relu_backward<double>(double*, const double*, const double*, int64_t);

}  // namespace normnet::kernels

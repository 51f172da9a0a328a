#include "kernels/activation.h"

namespace normnet::kernels {

template <typename T>
void leaky_relu_forward(T* out, const T* in, T slope, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] > T(0) ? in[i] : in[i] * slope;
}

template <typename T>
void leaky_relu_backward(T* din, const T* dout, const T* in, T slope, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) din[i] = in[i] > T(0) ? dout[i] : dout[i] * slope;
}

template void leaky_relu_forward<float>(float*, const float*, float, int64_t);
template void leaky_relu_forward<double>(double*, const double*, double, int64_t);
template void leaky_relu_backward<float>(float*, const float*, const float*, float, int64_t);
template void leaky_relu_backward<double>(double*, const double*, const double*, double, int64_t);

}  // namespace normnet::kernels

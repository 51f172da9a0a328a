#include "kernels/elementwise.h"

#include "normnet/random.h"

namespace normnet::kernels {

template <typename T>
void add_forward(T* out, const T* a, const T* b, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
void dropout_forward(T* out, uint8_t* mask, const T* in, double p, uint64_t seed, int64_t n) {
  const T scale = p < 1.0 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  // keep when the top 53 bits, as a uniform in [0, 1), are >= p
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const double u = static_cast<double>(hash64(seed, static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53;
    mask[i] = u >= p ? 1 : 0;
    out[i] = mask[i] ? in[i] * scale : T(0);
  }
}

template <typename T>
void dropout_backward(T* din, const T* dout, const uint8_t* mask, double p, int64_t n) {
  const T scale = p < 1.0 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) din[i] = mask[i] ? dout[i] * scale : T(0);
}

template void add_forward<float>(float*, const float*, const float*, int64_t);
template void add_forward<double>(double*, const double*, const double*, int64_t);
template void dropout_forward<float>(float*, uint8_t*, const float*, double, uint64_t, int64_t);
template void dropout_forward<double>(double*, uint8_t*, const double*, double, uint64_t, int64_t);
template void dropout_backward<float>(float*, const float*, const uint8_t*, double, int64_t);
template void dropout_backward<double>(double*, const double*, const uint8_t*, double, int64_t);

}  // namespace normnet::kernels

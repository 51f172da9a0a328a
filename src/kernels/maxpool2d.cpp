#include <limits>

#include "kernels/pool2d.h"

namespace normnet::kernels {

template <typename T>
void maxpool2d_forward(T* out, int32_t* argmax, const T* in, const Pool2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const T* x = in + (n * s.c + c) * s.h * s.w;
      T* y = out + (n * s.c + c) * oh * ow;
      int32_t* am = argmax + (n * s.c + c) * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_i = -1;
          for (int64_t i = 0; i < s.kernel_h; ++i) {
            const int64_t iy = oy * s.stride_h - s.pad_h + i * s.dilation_h;
            if (iy < 0 || iy >= s.h) continue;
            for (int64_t j = 0; j < s.kernel_w; ++j) {
              const int64_t ix = ox * s.stride_w - s.pad_w + j * s.dilation_w;
              if (ix < 0 || ix >= s.w) continue;
              const T v = x[iy * s.w + ix];
              // NaN propagates, as in PyTorch; first maximum wins on ties.
              if (best_i < 0 || v > best || v != v) {
                best = v;
                best_i = iy * s.w + ix;
                if (v != v) goto done;
              }
            }
          }
        done:
          y[oy * ow + ox] = best;
          am[oy * ow + ox] = static_cast<int32_t>(best_i);
        }
    }
}

template <typename T>
void maxpool2d_backward(T* din, const T* dout, const int32_t* argmax, const Pool2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      T* dx = din + (n * s.c + c) * s.h * s.w;
      for (int64_t i = 0; i < s.h * s.w; ++i) dx[i] = T(0);
      const T* dy = dout + (n * s.c + c) * oh * ow;
      const int32_t* am = argmax + (n * s.c + c) * oh * ow;
      for (int64_t k = 0; k < oh * ow; ++k)
        if (am[k] >= 0) dx[am[k]] += dy[k];
    }
}

template void maxpool2d_forward<float>(float*, int32_t*, const float*, const Pool2dShape&);
template void maxpool2d_forward<double>(double*, int32_t*, const double*, const Pool2dShape&);
template void maxpool2d_backward<float>(float*, const float*, const int32_t*, const Pool2dShape&);
template void maxpool2d_backward<double>(double*, const double*, const int32_t*, const Pool2dShape&);

}  // namespace normnet::kernels

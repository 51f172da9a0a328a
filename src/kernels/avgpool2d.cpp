#include <algorithm>

#include "kernels/pool2d.h"

namespace normnet::kernels {

namespace {
// The window of output (oy, ox) clipped to the input, and its divisor.
struct Window {
  int64_t y0, y1, x0, x1, divisor;
};
Window window_at(const Pool2dShape& s, int64_t oy, int64_t ox) {
  int64_t y0 = oy * s.stride_h - s.pad_h, x0 = ox * s.stride_w - s.pad_w;
  int64_t y1 = std::min(y0 + s.kernel_h, s.h + s.pad_h);
  int64_t x1 = std::min(x0 + s.kernel_w, s.w + s.pad_w);
  const int64_t padded_size = (y1 - y0) * (x1 - x0);
  y0 = std::max<int64_t>(y0, 0);
  x0 = std::max<int64_t>(x0, 0);
  y1 = std::min(y1, s.h);
  x1 = std::min(x1, s.w);
  const int64_t div = s.count_include_pad ? padded_size : (y1 - y0) * (x1 - x0);
  return {y0, y1, x0, x1, div};
}
}  // namespace

template <typename T>
void avgpool2d_forward(T* out, const T* in, const Pool2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const T* x = in + (n * s.c + c) * s.h * s.w;
      T* y = out + (n * s.c + c) * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          const Window wdw = window_at(s, oy, ox);
          T sum = T(0);
          for (int64_t iy = wdw.y0; iy < wdw.y1; ++iy)
            for (int64_t ix = wdw.x0; ix < wdw.x1; ++ix) sum += x[iy * s.w + ix];
          y[oy * ow + ox] = wdw.divisor > 0 ? sum / static_cast<T>(wdw.divisor) : T(0);
        }
    }
}

template <typename T>
void avgpool2d_backward(T* din, const T* dout, const Pool2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      T* dx = din + (n * s.c + c) * s.h * s.w;
      std::fill(dx, dx + s.h * s.w, T(0));
      const T* dy = dout + (n * s.c + c) * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          const Window wdw = window_at(s, oy, ox);
          if (wdw.divisor <= 0) continue;
          const T g = dy[oy * ow + ox] / static_cast<T>(wdw.divisor);
          for (int64_t iy = wdw.y0; iy < wdw.y1; ++iy)
            for (int64_t ix = wdw.x0; ix < wdw.x1; ++ix) dx[iy * s.w + ix] += g;
        }
    }
}

template <typename T>
void global_avgpool_forward(T* out, const T* in, int64_t n, int64_t c, int64_t hw) {
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < n * c; ++k) {
    double sum = 0.0;
    for (int64_t i = 0; i < hw; ++i) sum += in[k * hw + i];
    out[k] = static_cast<T>(sum / static_cast<double>(hw));
  }
}

template <typename T>
void global_avgpool_backward(T* din, const T* dout, int64_t n, int64_t c, int64_t hw) {
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < n * c; ++k) {
    const T g = dout[k] / static_cast<T>(hw);
    for (int64_t i = 0; i < hw; ++i) din[k * hw + i] = g;
  }
}

template void avgpool2d_forward<float>(float*, const float*, const Pool2dShape&);
template void avgpool2d_forward<double>(double*, const double*, const Pool2dShape&);
template void avgpool2d_backward<float>(float*, const float*, const Pool2dShape&);
template void avgpool2d_backward<double>(double*, const double*, const Pool2dShape&);
template void global_avgpool_forward<float>(float*, const float*, int64_t, int64_t, int64_t);
template void global_avgpool_forward<double>(double*, const double*, int64_t, int64_t, int64_t);
template void global_avgpool_backward<float>(float*, const float*, int64_t, int64_t, int64_t);
template void global_avgpool_backward<double>(double*, const double*, int64_t, int64_t, int64_t);

}  // namespace normnet::kernels

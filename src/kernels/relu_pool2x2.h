// The pooling half of the fused BatchNorm + ReLU + MaxPool2d(2) kernels (batchnorm_relu.h),
// on one plane in a scratch buffer. Generic templates for double (the gradient checks) and
// float versions compiled for AVX-512, AVX2+FMA and baseline x86-64, chosen at run time.
//
// relu_pool2x2_plane: out (h/2 x w/2) = maxpool2x2 of z (h x w), z a ReLU output (every value
// is +0, -0, positive, +inf or NaN). Values and winners are those of maxpool2d_forward (the
// first maximum wins ties, the first NaN wins), and win = -1 where the pooled value is <= 0.
// For such values one integer comparison orders them as the floats do: with key = bits with
// the sign cleared, -0 and +0 have key 0, positives and +inf keep their order, and a NaN's key
// is above +inf's. A candidate takes over iff the current best is not NaN (key <= +inf's) and
// its key is larger: exactly maxpool's rule. (maxpool2d_forward must also order negatives,
// which costs twice the instructions.) z must be readable for 16 values past h*w.
//
// relu_pool2x2_grad: g (h x w) = the gradient at the BN output of one plane: 0 + dout[j] at
// winner win[j] (>= 0) of window j, 0 everywhere else (batchnorm_relu.h).
#pragma once
#include <cstdint>

namespace normnet::kernels {

template <typename T>
void relu_pool2x2_plane(T* out, int32_t* win, const T* z, int64_t h, int64_t w) {
  const int64_t oh = h / 2, ow = w / 2;
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const int64_t i0 = 2 * oy * w + 2 * ox, cand[4] = {i0, i0 + 1, i0 + w, i0 + w + 1};
      T best = z[i0];
      int64_t bi = i0;
      for (int q = 1; q < 4; ++q) {
        const T v = z[cand[q]];
        if (best != best) break;
        if (v > best || v != v) best = v, bi = cand[q];
      }
      out[oy * ow + ox] = best;
      win[oy * ow + ox] = best <= T(0) ? -1 : static_cast<int32_t>(bi);
    }
}
void relu_pool2x2_plane(float* out, int32_t* win, const float* z, int64_t h, int64_t w);

template <typename T>
void relu_pool2x2_grad(T* g, const T* dout, const int32_t* win, int64_t h, int64_t w) {
  const int64_t os = (h / 2) * (w / 2);
  for (int64_t i = 0; i < h * w; ++i) g[i] = T(0);
  for (int64_t j = 0; j < os; ++j)
    if (win[j] >= 0) g[win[j]] = T(0) + dout[j];
}
void relu_pool2x2_grad(float* g, const float* dout, const int32_t* win, int64_t h, int64_t w);

}  // namespace normnet::kernels

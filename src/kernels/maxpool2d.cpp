#include <cstring>
#include <limits>

#include "kernels/pool2d.h"
#include "kernels/multiversion.h"

namespace normnet::kernels {

namespace {

// One candidate of a window, in scan order: a NaN that already won stays (NaN propagates, as
// in PyTorch); otherwise a larger value or a NaN takes over, so the first maximum wins ties.
template <typename T>
inline void take_max(T v, int32_t i, T& best, int32_t& best_i) {
  if (best != best) return;
  if (v > best || v != v) {
    best = v;
    best_i = i;
  }
}

template <typename T>
void maxpool2x2_row(T* y, int32_t* am, const T* r0, int32_t i0, int64_t w, int64_t ow) {
  for (int64_t ox = 0; ox < ow; ++ox) {
    const int32_t i = i0 + static_cast<int32_t>(2 * ox);
    T best = r0[2 * ox];
    int32_t best_i = i;
    take_max(r0[2 * ox + 1], i + 1, best, best_i);
    take_max(r0[w + 2 * ox], static_cast<int32_t>(i + w), best, best_i);
    take_max(r0[w + 2 * ox + 1], static_cast<int32_t>(i + w + 1), best, best_i);
    y[ox] = best;
    am[ox] = best_i;
  }
}

// float: 8 outputs at a time with GCC vector extensions, the same choices as take_max made
// with lane masks instead of branches (the comparisons of real data are unpredictable). A
// row's last < 8 outputs go through a zero-padded copy, so every output takes this path.
#pragma GCC diagnostic ignored "-Wpsabi"
// Eight lanes: one AVX2 register (GCC lowers wider comparisons to scalar code on AVX2).
typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

NORMNET_INLINE f8 load8(const float* p) {
  f8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The comparisons on integer images of the floats (GCC turns float vector comparisons back into
// scalar ones): the bits of a non-NaN float map to a signed key that orders as the float does,
// with -0 and +0 equal; a NaN is an absolute value above infinity's bits.
NORMNET_INLINE i8 float_key(i8 bits) {
  const i8 mag = bits & 0x7fffffff;
  return bits < 0 ? -mag : mag;
}
NORMNET_INLINE i8 is_nan(i8 bits) { return (bits & 0x7fffffff) > 0x7f800000; }

NORMNET_INLINE void take_max8(f8 v, i8 i, f8& best, i8& best_i) {
  const i8 vb = reinterpret_cast<i8>(v), bb = reinterpret_cast<i8>(best);
  const i8 take = ~is_nan(bb) & (is_nan(vb) | (float_key(vb) > float_key(bb)));
  best = reinterpret_cast<f8>((vb & take) | (bb & ~take));
  best_i = (i & take) | (best_i & ~take);
}

// 8 windows whose top rows are a (16 values) and bottom rows b; first index i (top-left of
// window 0).
NORMNET_INLINE void windows8(float* y, int32_t* am, const float* a, const float* b, int32_t i, int32_t w) {
  const i8 even = {0, 2, 4, 6, 8, 10, 12, 14};
  const i8 odd = even + 1;
  const f8 a0 = load8(a), a1 = load8(a + 8), b0 = load8(b), b1 = load8(b + 8);
  const i8 idx = even + i;
  f8 best = __builtin_shuffle(a0, a1, even);
  i8 best_i = idx;
  take_max8(__builtin_shuffle(a0, a1, odd), idx + 1, best, best_i);
  take_max8(__builtin_shuffle(b0, b1, even), idx + w, best, best_i);
  take_max8(__builtin_shuffle(b0, b1, odd), idx + w + 1, best, best_i);
  std::memcpy(y, &best, sizeof best);
  std::memcpy(am, &best_i, sizeof best_i);
}

NORMNET_MULTIVERSION
void maxpool2x2_row(float* y, int32_t* am, const float* r0, int32_t i0, int64_t w, int64_t ow) {
  const int32_t w32 = static_cast<int32_t>(w);
  int64_t ox = 0;
  for (; ox + 8 <= ow; ox += 8)
    windows8(y + ox, am + ox, r0 + 2 * ox, r0 + w + 2 * ox, i0 + static_cast<int32_t>(2 * ox), w32);
  if (ox == ow) return;
  const int64_t r = ow - ox;
  float ty[8];
  int32_t tam[8];
  float a[16] = {}, b[16] = {};
  std::memcpy(a, r0 + 2 * ox, sizeof(float) * 2 * r);
  std::memcpy(b, r0 + w + 2 * ox, sizeof(float) * 2 * r);
  windows8(ty, tam, a, b, i0 + static_cast<int32_t>(2 * ox), w32);
  std::memcpy(y + ox, ty, sizeof(float) * r);
  std::memcpy(am + ox, tam, sizeof(int32_t) * r);
}

// One (h, w) plane: out h/2 x w/2 (rounded down), row pair by row pair.
template <typename T>
void maxpool2x2_plane(T* out, int32_t* argmax, const T* in, int64_t h, int64_t w) {
  const int64_t oh = h / 2, ow = w / 2;
  for (int64_t oy = 0; oy < oh; ++oy)
    maxpool2x2_row(out + oy * ow, argmax + oy * ow, in + 2 * oy * w, static_cast<int32_t>(2 * oy * w),
                   w, ow);
}

// kernel 2x2, stride 2, no padding or dilation, every window inside the input (the pooling of
// most CNNs): the general loop below without its bounds tests, the same choices.
template <typename T>
void maxpool2x2(T* out, int32_t* argmax, const T* in, const Pool2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < s.n * s.c; ++nc)
    maxpool2x2_plane(out + nc * oh * ow, argmax + nc * oh * ow, in + nc * s.h * s.w, s.h, s.w);
}

}  // namespace

template <typename T>
void maxpool2d_forward(T* out, int32_t* argmax, const T* in, const Pool2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
  if (s.kernel_h == 2 && s.kernel_w == 2 && s.stride_h == 2 && s.stride_w == 2 && s.pad_h == 0 &&
      s.pad_w == 0 && s.dilation_h == 1 && s.dilation_w == 1 && 2 * oh <= s.h && 2 * ow <= s.w)
    return maxpool2x2(out, argmax, in, s);
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

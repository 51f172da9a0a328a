// Conv2d by im2col + GEMM, NCHW / OIHW.
//
// Forward, per sample and group g:   out_g (Co_g x P) = W_g (Co_g x K) * col_g (K x P)
//   with K = Ci_g*kh*kw, P = oh*ow, col_g[(c*kh + i)*kw + j][y*ow + x] = in[c, y*sh-ph+i*dh, x*sw-pw+j*dw].
// Backward:  dcol_g = W_g^T * dout_g, scattered back by col2im  -> din
//            dW_g  += sum_n dout_{n,g} * col_{n,g}^T            (col kept transposed: P x K)
//            dbias += sum_{n,p} dout
// Threads: samples are independent in forward and din; dW is split by output channels and each
// output channel sums the samples in order 0..N-1, so results are identical for any thread count.
#include "kernels/conv2d.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"
#include "normnet/error.h"

namespace normnet::kernels {

void Conv2dShape::validate(const char* who) const {
  check(n >= 0 && c_in > 0 && h > 0 && w > 0 && c_out > 0, who, ": empty or negative sizes");
  check(kernel_h > 0 && kernel_w > 0 && stride_h > 0 && stride_w > 0 && dilation_h > 0 &&
            dilation_w > 0 && pad_h >= 0 && pad_w >= 0,
        who, ": kernel, stride and dilation must be positive, padding non-negative");
  check(groups > 0 && c_in % groups == 0 && c_out % groups == 0, who, ": groups=", groups,
        " must divide in_channels=", c_in, " and out_channels=", c_out);
  check(out_h() > 0 && out_w() > 0, who, ": input ", h, "x", w, " is smaller than the kernel ",
        kernel_h, "x", kernel_w, " (dilation ", dilation_h, "x", dilation_w, ", padding ", pad_h,
        "x", pad_w, ")");
}

namespace {

bool is_pointwise(const Conv2dShape& s) {
  return s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
         s.pad_h == 0 && s.pad_w == 0;
}

// col (K x P) for input channels [c0, c0 + cg) of one sample.
template <typename T>
void im2col(T* col, const T* in, int64_t cg, const Conv2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
  for (int64_t c = 0; c < cg; ++c)
    for (int64_t i = 0; i < s.kernel_h; ++i)
      for (int64_t j = 0; j < s.kernel_w; ++j) {
        T* row = col + ((c * s.kernel_h + i) * s.kernel_w + j) * oh * ow;
        const T* plane = in + c * s.h * s.w;
        for (int64_t y = 0; y < oh; ++y) {
          const int64_t iy = y * s.stride_h - s.pad_h + i * s.dilation_h;
          T* r = row + y * ow;
          if (iy < 0 || iy >= s.h) {
            std::fill(r, r + ow, T(0));
            continue;
          }
          const T* src = plane + iy * s.w;
          for (int64_t x = 0; x < ow; ++x) {
            const int64_t ix = x * s.stride_w - s.pad_w + j * s.dilation_w;
            r[x] = (ix >= 0 && ix < s.w) ? src[ix] : T(0);
          }
        }
      }
}

// din += col2im(dcol) for one sample's group channels.
template <typename T>
void col2im_add(T* din, const T* col, int64_t cg, const Conv2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
  for (int64_t c = 0; c < cg; ++c)
    for (int64_t i = 0; i < s.kernel_h; ++i)
      for (int64_t j = 0; j < s.kernel_w; ++j) {
        const T* row = col + ((c * s.kernel_h + i) * s.kernel_w + j) * oh * ow;
        T* plane = din + c * s.h * s.w;
        for (int64_t y = 0; y < oh; ++y) {
          const int64_t iy = y * s.stride_h - s.pad_h + i * s.dilation_h;
          if (iy < 0 || iy >= s.h) continue;
          const T* r = row + y * ow;
          T* dst = plane + iy * s.w;
          for (int64_t x = 0; x < ow; ++x) {
            const int64_t ix = x * s.stride_w - s.pad_w + j * s.dilation_w;
            if (ix >= 0 && ix < s.w) dst[ix] += r[x];
          }
        }
      }
}

template <typename T>
void transpose(T* dst, const T* src, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

}  // namespace

template <typename T>
void conv2d_forward(T* out, const T* in, const T* weight, const T* bias, const Conv2dShape& s) {
  const int64_t G = s.groups, cig = s.c_in / G, cog = s.c_out / G;
  const int64_t K = cig * s.kernel_h * s.kernel_w, P = s.out_h() * s.out_w();
  const bool pointwise = is_pointwise(s);
#pragma omp parallel
  {
    std::vector<T> col(pointwise ? 0 : static_cast<size_t>(K * P));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t g = 0; g < G; ++g) {
        const T* x = in + (n * s.c_in + g * cig) * s.h * s.w;
        T* y = out + (n * s.c_out + g * cog) * P;
        const T* cols = x;
        if (!pointwise) {
          im2col(col.data(), x, cig, s);
          cols = col.data();
        }
        gemm(false, false, cog, P, K, weight + g * cog * K, K, cols, P, T(0), y, P);
        if (bias)
          for (int64_t o = 0; o < cog; ++o) {
            const T b = bias[g * cog + o];
            for (int64_t p = 0; p < P; ++p) y[o * P + p] += b;
          }
      }
  }
}

template <typename T>
void conv2d_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                     const Conv2dShape& s) {
  const int64_t G = s.groups, cig = s.c_in / G, cog = s.c_out / G;
  const int64_t K = cig * s.kernel_h * s.kernel_w, P = s.out_h() * s.out_w();

  if (dbias) {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < s.c_out; ++o) {
      double acc = 0.0;
      for (int64_t n = 0; n < s.n; ++n) {
        const T* d = dout + (n * s.c_out + o) * P;
        for (int64_t p = 0; p < P; ++p) acc += d[p];
      }
      dbias[o] += static_cast<T>(acc);
    }
  }

  // Transposed columns of every sample and group: colT[n][g] is P x K.
  std::vector<T> colT(static_cast<size_t>(s.n * G * P * K));
  if (din) std::memset(din, 0, sizeof(T) * static_cast<size_t>(s.n * s.c_in * s.h * s.w));
#pragma omp parallel
  {
    std::vector<T> col(static_cast<size_t>(K * P));
    std::vector<T> wt;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t g = 0; g < G; ++g) {
        const T* x = in + (n * s.c_in + g * cig) * s.h * s.w;
        im2col(col.data(), x, cig, s);
        transpose(colT.data() + (n * G + g) * P * K, col.data(), K, P);
        if (din) {
          // dcol (K x P) = W_g^T (K x Co_g) * dout_g (Co_g x P)
          gemm(true, false, K, P, cog, weight + g * cog * K, K, dout + (n * s.c_out + g * cog) * P,
               P, T(0), col.data(), P);
          col2im_add(din + (n * s.c_in + g * cig) * s.h * s.w, col.data(), cig, s);
        }
      }
  }

  // dW_g rows [o0, o1) += sum_n dout_{n,g}[o0:o1] (rows x P) * colT[n][g] (P x K)
  const int64_t kRows = 16;  // any size gives the same sums; 16 rows reuse each colT load
  const int64_t row_blocks = (cog + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < G * row_blocks; ++b) {
    const int64_t g = b / row_blocks, o0 = (b % row_blocks) * kRows;
    const int64_t rows = std::min(kRows, cog - o0);
    T* dw = dweight + (g * cog + o0) * K;
    for (int64_t n = 0; n < s.n; ++n)
      gemm(false, false, rows, K, P, dout + (n * s.c_out + g * cog + o0) * P, P,
           colT.data() + (n * G + g) * P * K, K, T(1), dw, K);
  }
}

template void conv2d_forward<float>(float*, const float*, const float*, const float*, const Conv2dShape&);
template void conv2d_forward<double>(double*, const double*, const double*, const double*, const Conv2dShape&);
template void conv2d_backward<float>(float*, float*, float*, const float*, const float*, const float*, const Conv2dShape&);
template void conv2d_backward<double>(double*, double*, double*, const double*, const double*, const double*, const Conv2dShape&);

}  // namespace normnet::kernels

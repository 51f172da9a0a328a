// Reference kernels: plain loops in double. See reference.h.
#include "ref/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace normnet::ref {

// ---------------------------------------------------------------- gemm

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = trans_a ? A[k * lda + m] : A[m * lda + k];
        const double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      C[m * ldc + j] = beta == 0 ? acc : acc + beta * C[m * ldc + j];
    }
  }
}

// ---------------------------------------------------------------- conv2d

int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation) {
  return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
}

void conv2d_forward(double* out, const double* in, const double* weight, const double* bias,
                    const Conv2dShape& s) {
  const int64_t OH = conv_out_size(s.h, s.kernel_h, s.stride_h, s.pad_h, s.dilation_h);
  const int64_t OW = conv_out_size(s.w, s.kernel_w, s.stride_w, s.pad_w, s.dilation_w);
  const int64_t cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t o = 0; o < s.c_out; ++o)
      for (int64_t y = 0; y < OH; ++y)
        for (int64_t x = 0; x < OW; ++x) {
          double acc = bias ? bias[o] : 0.0;
          const int64_t g = o / cout_g;
          for (int64_t cg = 0; cg < cin_g; ++cg)
            for (int64_t i = 0; i < s.kernel_h; ++i)
              for (int64_t j = 0; j < s.kernel_w; ++j) {
                const int64_t iy = y * s.stride_h - s.pad_h + i * s.dilation_h;
                const int64_t ix = x * s.stride_w - s.pad_w + j * s.dilation_w;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                const int64_t c = g * cin_g + cg;
                acc += weight[((o * cin_g + cg) * s.kernel_h + i) * s.kernel_w + j] *
                       in[((n * s.c_in + c) * s.h + iy) * s.w + ix];
              }
          out[((n * s.c_out + o) * OH + y) * OW + x] = acc;
        }
}

// The forward's loops again, scattering each output gradient to the terms it came from.
void conv2d_backward(double* din, double* dweight, double* dbias, const double* dout,
                     const double* in, const double* weight, const Conv2dShape& s) {
  const int64_t OH = conv_out_size(s.h, s.kernel_h, s.stride_h, s.pad_h, s.dilation_h);
  const int64_t OW = conv_out_size(s.w, s.kernel_w, s.stride_w, s.pad_w, s.dilation_w);
  const int64_t cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  if (din)
    for (int64_t k = 0; k < s.n * s.c_in * s.h * s.w; ++k) din[k] = 0;
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t o = 0; o < s.c_out; ++o)
      for (int64_t y = 0; y < OH; ++y)
        for (int64_t x = 0; x < OW; ++x) {
          const double dy = dout[((n * s.c_out + o) * OH + y) * OW + x];
          if (dbias) dbias[o] += dy;
          const int64_t g = o / cout_g;
          for (int64_t cg = 0; cg < cin_g; ++cg)
            for (int64_t i = 0; i < s.kernel_h; ++i)
              for (int64_t j = 0; j < s.kernel_w; ++j) {
                const int64_t iy = y * s.stride_h - s.pad_h + i * s.dilation_h;
                const int64_t ix = x * s.stride_w - s.pad_w + j * s.dilation_w;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                const int64_t c = g * cin_g + cg;
                const int64_t wi = ((o * cin_g + cg) * s.kernel_h + i) * s.kernel_w + j;
                const int64_t xi = ((n * s.c_in + c) * s.h + iy) * s.w + ix;
                dweight[wi] += dy * in[xi];
                if (din) din[xi] += dy * weight[wi];
              }
        }
}

// ---------------------------------------------------------------- linear

void linear_forward(double* out, const double* in, const double* weight, const double* bias,
                    int64_t n, int64_t in_f, int64_t out_f) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out_f; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < in_f; ++i) acc += in[r * in_f + i] * weight[o * in_f + i];
      out[r * out_f + o] = acc;
    }
}

void linear_backward(double* din, double* dweight, double* dbias, const double* dout,
                     const double* in, const double* weight, int64_t n, int64_t in_f,
                     int64_t out_f) {
  if (din)
    for (int64_t k = 0; k < n * in_f; ++k) din[k] = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out_f; ++o) {
      const double dy = dout[r * out_f + o];
      if (dbias) dbias[o] += dy;
      for (int64_t i = 0; i < in_f; ++i) {
        dweight[o * in_f + i] += dy * in[r * in_f + i];
        if (din) din[r * in_f + i] += dy * weight[o * in_f + i];
      }
    }
}

// ---------------------------------------------------------------- batchnorm

static int64_t bn_index(const BatchNormShape& s, int64_t n, int64_t c, int64_t k) {
  return (n * s.c + c) * s.spatial + k;
}

void batchnorm_forward_train(double* out, double* mean, double* var, double* invstd,
                             const double* in, const double* gamma, const double* beta, double eps,
                             const BatchNormShape& s) {
  const double M = static_cast<double>(s.n * s.spatial);
  for (int64_t c = 0; c < s.c; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t k = 0; k < s.spatial; ++k) sum += in[bn_index(s, n, c, k)];
    const double m = sum / M;
    double sq = 0;
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t k = 0; k < s.spatial; ++k) {
        const double d = in[bn_index(s, n, c, k)] - m;
        sq += d * d;
      }
    mean[c] = m;
    var[c] = sq / M;
    invstd[c] = 1.0 / std::sqrt(var[c] + eps);
  }
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t k = 0; k < s.spatial; ++k) {
        const int64_t i = bn_index(s, n, c, k);
        const double xhat = (in[i] - mean[c]) * invstd[c];
        out[i] = xhat * (gamma ? gamma[c] : 1.0) + (beta ? beta[c] : 0.0);
      }
}

void batchnorm_forward_eval(double* out, const double* in, const double* mean, const double* var,
                            const double* gamma, const double* beta, double eps,
                            const BatchNormShape& s) {
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t k = 0; k < s.spatial; ++k) {
        const int64_t i = bn_index(s, n, c, k);
        const double xhat = (in[i] - mean[c]) / std::sqrt(var[c] + eps);
        out[i] = xhat * (gamma ? gamma[c] : 1.0) + (beta ? beta[c] : 0.0);
      }
}

// dx = gamma * invstd / M * (M * dy - sum dy - xhat * sum(dy * xhat)).
void batchnorm_backward_train(double* din, double* dgamma, double* dbeta, const double* dout,
                              const double* in, const double* mean, const double* invstd,
                              const double* gamma, const BatchNormShape& s) {
  const double M = static_cast<double>(s.n * s.spatial);
  for (int64_t c = 0; c < s.c; ++c) {
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t k = 0; k < s.spatial; ++k) {
        const int64_t i = bn_index(s, n, c, k);
        sum_dy += dout[i];
        sum_dy_xhat += dout[i] * (in[i] - mean[c]) * invstd[c];
      }
    if (dbeta) dbeta[c] += sum_dy;
    if (dgamma) dgamma[c] += sum_dy_xhat;
    const double g = gamma ? gamma[c] : 1.0;
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t k = 0; k < s.spatial; ++k) {
        const int64_t i = bn_index(s, n, c, k);
        const double xhat = (in[i] - mean[c]) * invstd[c];
        din[i] = g * invstd[c] / M * (M * dout[i] - sum_dy - xhat * sum_dy_xhat);
      }
  }
}

void batchnorm_backward_eval(double* din, double* dgamma, double* dbeta, const double* dout,
                             const double* in, const double* mean, const double* var,
                             const double* gamma, double eps, const BatchNormShape& s) {
  for (int64_t c = 0; c < s.c; ++c) {
    const double inv = 1.0 / std::sqrt(var[c] + eps);
    const double g = gamma ? gamma[c] : 1.0;
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t k = 0; k < s.spatial; ++k) {
        const int64_t i = bn_index(s, n, c, k);
        if (dbeta) dbeta[c] += dout[i];
        if (dgamma) dgamma[c] += dout[i] * (in[i] - mean[c]) * inv;
        din[i] = dout[i] * g * inv;
      }
  }
}

void batchnorm_update_running(double* running_mean, double* running_var, const double* mean,
                              const double* var, int64_t channels, int64_t count, double factor) {
  for (int64_t c = 0; c < channels; ++c) {
    const double unbiased = var[c] * count / (count - 1);
    running_mean[c] = (1 - factor) * running_mean[c] + factor * mean[c];
    running_var[c] = (1 - factor) * running_var[c] + factor * unbiased;
  }
}

// ---------------------------------------------------------------- activations

// PyTorch's rules, also for special values: relu keeps -0 and NaN (only x < 0 becomes 0);
// its backward blocks where the output is <= 0 (so passes at NaN). ELU's backward gives NaN at
// a NaN output, as torch's vectorized kernel.
void relu_forward(double* out, const double* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::signbit(in[i]) && in[i] != 0 ? 0.0 : in[i];
}
void relu_backward(double* din, const double* dout, const double* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) din[i] = std::isnan(out[i]) || out[i] > 0 ? dout[i] : 0.0;
}
void leaky_relu_forward(double* out, const double* in, double slope, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] > 0 ? in[i] : slope * in[i];
}
void leaky_relu_backward(double* din, const double* dout, const double* in, double slope,
                         int64_t n) {
  for (int64_t i = 0; i < n; ++i) din[i] = dout[i] * (in[i] > 0 ? 1.0 : slope);
}
void elu_forward(double* out, const double* in, double alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] > 0 ? in[i] : alpha * (std::exp(in[i]) - 1);
}
void elu_backward(double* din, const double* dout, const double* out, double alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) din[i] = dout[i] * (out[i] > 0 ? 1.0 : out[i] + alpha);
}

// ---------------------------------------------------------------- pooling

// PyTorch's pooling_output_shape: with ceil_mode the last window must start inside the input
// or its left padding.
int64_t pool_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                      bool ceil_mode) {
  // PyTorch divides rounding down (div_rtn): a negative span (input smaller than the window)
  // gives no output.
  const double span = static_cast<double>(in + 2 * pad - dilation * (k - 1) - 1);
  int64_t out = static_cast<int64_t>(ceil_mode ? std::ceil(span / stride) : std::floor(span / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

void maxpool2d_forward(double* out, int32_t* argmax, const double* in, const Pool2dShape& s) {
  const int64_t OH = pool_out_size(s.h, s.kernel_h, s.stride_h, s.pad_h, s.dilation_h, s.ceil_mode);
  const int64_t OW = pool_out_size(s.w, s.kernel_w, s.stride_w, s.pad_w, s.dilation_w, s.ceil_mode);
  for (int64_t p = 0; p < s.n * s.c; ++p)
    for (int64_t y = 0; y < OH; ++y)
      for (int64_t x = 0; x < OW; ++x) {
        double best = -std::numeric_limits<double>::infinity();
        int32_t best_i = -1;
        for (int64_t i = 0; i < s.kernel_h; ++i)
          for (int64_t j = 0; j < s.kernel_w; ++j) {
            const int64_t iy = y * s.stride_h - s.pad_h + i * s.dilation_h;
            const int64_t ix = x * s.stride_w - s.pad_w + j * s.dilation_w;
            if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;  // padding: -inf
            const double v = in[p * s.h * s.w + iy * s.w + ix];
            if (best_i < 0 || v > best) {  // strict: the first maximum wins ties
              best = v;
              best_i = static_cast<int32_t>(iy * s.w + ix);
            }
          }
        out[(p * OH + y) * OW + x] = best;
        argmax[(p * OH + y) * OW + x] = best_i;
      }
}

void maxpool2d_backward(double* din, const double* dout, const int32_t* argmax,
                        const Pool2dShape& s) {
  const int64_t OH = pool_out_size(s.h, s.kernel_h, s.stride_h, s.pad_h, s.dilation_h, s.ceil_mode);
  const int64_t OW = pool_out_size(s.w, s.kernel_w, s.stride_w, s.pad_w, s.dilation_w, s.ceil_mode);
  for (int64_t k = 0; k < s.n * s.c * s.h * s.w; ++k) din[k] = 0;
  for (int64_t p = 0; p < s.n * s.c; ++p)
    for (int64_t o = 0; o < OH * OW; ++o) {
      const int32_t a = argmax[p * OH * OW + o];
      if (a >= 0) din[p * s.h * s.w + a] += dout[p * OH * OW + o];  // -1: window all padding
    }
}

// The window of output (y, x) along one axis: [start, end) clipped to input+padding, and the
// part of it inside the input.
struct AvgWindow {
  int64_t lo, hi, padded;  // input part [lo, hi), length clipped to input+padding
};
static AvgWindow avg_window(int64_t o, int64_t in, int64_t k, int64_t stride, int64_t pad) {
  const int64_t start = o * stride - pad;
  const int64_t end = std::min(start + k, in + pad);
  return {std::max<int64_t>(start, 0), std::min(end, in), end - start};
}

static double avg_divisor(const AvgWindow& wy, const AvgWindow& wx, bool count_include_pad) {
  if (count_include_pad) return double(wy.padded * wx.padded);
  return double((wy.hi - wy.lo) * (wx.hi - wx.lo));
}

void avgpool2d_forward(double* out, const double* in, const Pool2dShape& s) {
  if (s.dilation_h != 1 || s.dilation_w != 1) throw std::invalid_argument("ref avgpool: dilation");
  const int64_t OH = pool_out_size(s.h, s.kernel_h, s.stride_h, s.pad_h, 1, s.ceil_mode);
  const int64_t OW = pool_out_size(s.w, s.kernel_w, s.stride_w, s.pad_w, 1, s.ceil_mode);
  for (int64_t p = 0; p < s.n * s.c; ++p)
    for (int64_t y = 0; y < OH; ++y)
      for (int64_t x = 0; x < OW; ++x) {
        const AvgWindow wy = avg_window(y, s.h, s.kernel_h, s.stride_h, s.pad_h);
        const AvgWindow wx = avg_window(x, s.w, s.kernel_w, s.stride_w, s.pad_w);
        double sum = 0;
        for (int64_t iy = wy.lo; iy < wy.hi; ++iy)
          for (int64_t ix = wx.lo; ix < wx.hi; ++ix) sum += in[p * s.h * s.w + iy * s.w + ix];
        out[(p * OH + y) * OW + x] = sum / avg_divisor(wy, wx, s.count_include_pad);
      }
}

void avgpool2d_backward(double* din, const double* dout, const Pool2dShape& s) {
  if (s.dilation_h != 1 || s.dilation_w != 1) throw std::invalid_argument("ref avgpool: dilation");
  const int64_t OH = pool_out_size(s.h, s.kernel_h, s.stride_h, s.pad_h, 1, s.ceil_mode);
  const int64_t OW = pool_out_size(s.w, s.kernel_w, s.stride_w, s.pad_w, 1, s.ceil_mode);
  for (int64_t k = 0; k < s.n * s.c * s.h * s.w; ++k) din[k] = 0;
  for (int64_t p = 0; p < s.n * s.c; ++p)
    for (int64_t y = 0; y < OH; ++y)
      for (int64_t x = 0; x < OW; ++x) {
        const AvgWindow wy = avg_window(y, s.h, s.kernel_h, s.stride_h, s.pad_h);
        const AvgWindow wx = avg_window(x, s.w, s.kernel_w, s.stride_w, s.pad_w);
        const double g = dout[(p * OH + y) * OW + x] / avg_divisor(wy, wx, s.count_include_pad);
        for (int64_t iy = wy.lo; iy < wy.hi; ++iy)
          for (int64_t ix = wx.lo; ix < wx.hi; ++ix) din[p * s.h * s.w + iy * s.w + ix] += g;
      }
}

void global_avgpool_forward(double* out, const double* in, int64_t n, int64_t c, int64_t hw) {
  for (int64_t p = 0; p < n * c; ++p) {
    double sum = 0;
    for (int64_t k = 0; k < hw; ++k) sum += in[p * hw + k];
    out[p] = sum / hw;
  }
}

void global_avgpool_backward(double* din, const double* dout, int64_t n, int64_t c, int64_t hw) {
  for (int64_t p = 0; p < n * c; ++p)
    for (int64_t k = 0; k < hw; ++k) din[p * hw + k] = dout[p] / hw;
}

// ---------------------------------------------------------------- cross entropy

double cross_entropy_forward(double* probs, const double* logits, const int32_t* labels, int64_t n,
                             int64_t classes, double label_smoothing) {
  double total = 0;
  for (int64_t r = 0; r < n; ++r) {
    const double* z = logits + r * classes;
    double zmax = z[0];
    for (int64_t k = 1; k < classes; ++k) zmax = std::max(zmax, z[k]);
    double sum_exp = 0;
    for (int64_t k = 0; k < classes; ++k) sum_exp += std::exp(z[k] - zmax);
    for (int64_t k = 0; k < classes; ++k) {
      const double log_p = (z[k] - zmax) - std::log(sum_exp);
      const double q = (1 - label_smoothing) * (k == labels[r]) + label_smoothing / classes;
      probs[r * classes + k] = std::exp(log_p);
      total -= q * log_p;
    }
  }
  return total / n;
}

void cross_entropy_backward(double* dlogits, const double* probs, const int32_t* labels, int64_t n,
                            int64_t classes, double label_smoothing) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k = 0; k < classes; ++k) {
      const double q = (1 - label_smoothing) * (k == labels[r]) + label_smoothing / classes;
      dlogits[r * classes + k] = (probs[r * classes + k] - q) / n;
    }
}

}  // namespace normnet::ref

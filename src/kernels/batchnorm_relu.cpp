// Fused BatchNorm + ReLU and BatchNorm + add + ReLU; the math is derived in batchnorm_relu.h.
// Every arithmetic expression is written exactly as in batchnorm.cpp, relu.cpp and
// elementwise.cpp (same operands, same order, same roundings to T), which is what makes the
// fused results bit-identical to the unfused sequence.
#include "kernels/batchnorm_relu.h"
#include "kernels/channel_stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace normnet::kernels {

namespace {

// Per-channel coefficients of z = (x - mu) * alpha + offset, rounded to T as batchnorm.cpp does.
template <typename T>
struct Coefficients {
  std::vector<T> mu, alpha, offset;
  explicit Coefficients(int64_t c) : mu(c), alpha(c), offset(c) {}
};

// The statistics pass of batchnorm_forward_train, channel by channel.
template <typename T>
void train_statistics(Coefficients<T>& k, T* mean, T* var, T* invstd, const T* in, const T* gamma,
                      const T* beta, double eps, const BatchNormShape& s) {
  const int64_t S = s.spatial, C = s.c;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const ChannelMoments mv = channel_moments(in, s.n, C, S, c);
    const double is = 1.0 / std::sqrt(mv.var + eps);
    mean[c] = static_cast<T>(mv.mean);
    var[c] = static_cast<T>(mv.var);
    invstd[c] = static_cast<T>(is);
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const double b = beta ? static_cast<double>(beta[c]) : 0.0;
    k.alpha[c] = static_cast<T>(is * g);
    k.offset[c] = static_cast<T>(b);
    k.mu[c] = mean[c];
  }
}

// The coefficients batchnorm_forward_eval uses, from given statistics.
template <typename T>
void eval_coefficients(Coefficients<T>& k, const T* mean, const T* var, const T* gamma, const T* beta,
                       double eps, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    const double is = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const double b = beta ? static_cast<double>(beta[c]) : 0.0;
    k.alpha[c] = static_cast<T>(is * g);
    k.offset[c] = static_cast<T>(b);
    k.mu[c] = mean[c];
  }
}

// The output pass: t = z (+ residual), out = max(t, 0), mask bits = t > 0. One task per mask
// word (64 consecutive elements, which may span channel rows), so no word has two writers.
template <typename T, bool kResidual>
void normalize_relu(T* out, uint64_t* mask, const T* in, const T* residual, const Coefficients<T>& k,
                    const BatchNormShape& s) {
  const int64_t S = s.spatial, C = s.c, total = s.n * C * S, words = relu_mask_words(total);
#pragma omp parallel for schedule(static)
  for (int64_t w = 0; w < words; ++w) {
    const int64_t begin = w * 64, end = std::min(total, begin + 64);
    int64_t row = begin / S, i = begin;  // row = n * C + c
    uint64_t bits = 0;
    while (i < end) {
      const int64_t c = row % C, stop = std::min(end, (row + 1) * S);
      bits |= normalize_relu_range(out, in, kResidual ? residual : static_cast<const T*>(nullptr), i,
                                   stop, k.mu[c], k.alpha[c], k.offset[c]);
      i = stop;
      ++row;
    }
    if (mask) mask[w] = bits;
  }
}

template <typename T>
void backward_train(T* din, T* dresidual, T* dgamma, T* dbeta, const T* dout, const uint64_t* mask,
                    const T* in, const T* mean, const T* invstd, const T* gamma, const BatchNormShape& s) {
  const int64_t M = s.count(), S = s.spatial, C = s.c;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double m = mean[c], is = invstd[c];
    const ChannelGradSums gs = channel_grad_sums(dout, in, m, s.n, C, S, c, mask);
    const double sum_dy = gs.sum_dy, sum_dy_xhat = gs.sum_dy_xc * is;
    if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
    if ((!din && !dresidual) || M == 0) continue;
    const double gm = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const T k_dy = static_cast<T>(gm * is);
    const T k_x = static_cast<T>(gm * is * is * sum_dy_xhat / M);
    const T k_0 = static_cast<T>(-gm * is * sum_dy / M);
    const T mu = mean[c];
    for (int64_t n = 0; n < s.n; ++n)
      bn_dx_add(din, dresidual, dout, in, mask, (n * C + c) * S, (n * C + c + 1) * S, k_dy, mu, k_x, k_0);
  }
}

template <typename T>
void backward_eval(T* din, T* dresidual, T* dgamma, T* dbeta, const T* dout, const uint64_t* mask,
                   const T* in, const T* mean, const T* var, const T* gamma, double eps,
                   const BatchNormShape& s) {
  const int64_t S = s.spatial, C = s.c;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double is = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    const double m = mean[c];
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    const T k = static_cast<T>(is * (gamma ? static_cast<double>(gamma[c]) : 1.0));
    for (int64_t n = 0; n < s.n; ++n) {
      const int64_t row = (n * C + c) * S;
      const T* x = in + row;
      const T* dy = dout + row;
      for (int64_t i = 0; i < S; ++i) {
        const T g = relu_mask_bit(mask, row + i) ? dy[i] : T(0);
        sum_dy += g;
        sum_dy_xhat += static_cast<double>(g) * (static_cast<double>(x[i]) - m) * is;
        if (dresidual) dresidual[row + i] = g;
        if (din) din[row + i] = g * k;
      }
    }
    if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
  }
}

}  // namespace

template <typename T>
void batchnorm_relu_forward_train(T* out, uint64_t* mask, T* mean, T* var, T* invstd, const T* in,
                                  const T* gamma, const T* beta, double eps, const BatchNormShape& s) {
  Coefficients<T> k(s.c);
  train_statistics(k, mean, var, invstd, in, gamma, beta, eps, s);
  normalize_relu<T, false>(out, mask, in, nullptr, k, s);
}

template <typename T>
void batchnorm_relu_forward_eval(T* out, uint64_t* mask, const T* in, const T* mean, const T* var,
                                 const T* gamma, const T* beta, double eps, const BatchNormShape& s) {
  Coefficients<T> k(s.c);
  eval_coefficients(k, mean, var, gamma, beta, eps, s.c);
  normalize_relu<T, false>(out, mask, in, nullptr, k, s);
}

template <typename T>
void batchnorm_relu_backward_train(T* din, T* dgamma, T* dbeta, const T* dout, const uint64_t* mask,
                                   const T* in, const T* mean, const T* invstd, const T* gamma,
                                   const BatchNormShape& s) {
  backward_train(din, static_cast<T*>(nullptr), dgamma, dbeta, dout, mask, in, mean, invstd, gamma, s);
}

template <typename T>
void batchnorm_relu_backward_eval(T* din, T* dgamma, T* dbeta, const T* dout, const uint64_t* mask,
                                  const T* in, const T* mean, const T* var, const T* gamma, double eps,
                                  const BatchNormShape& s) {
  backward_eval(din, static_cast<T*>(nullptr), dgamma, dbeta, dout, mask, in, mean, var, gamma, eps, s);
}

template <typename T>
void batchnorm_add_relu_forward_train(T* out, uint64_t* mask, T* mean, T* var, T* invstd, const T* in,
                                      const T* residual, const T* gamma, const T* beta, double eps,
                                      const BatchNormShape& s) {
  Coefficients<T> k(s.c);
  train_statistics(k, mean, var, invstd, in, gamma, beta, eps, s);
  normalize_relu<T, true>(out, mask, in, residual, k, s);
}

template <typename T>
void batchnorm_add_relu_forward_eval(T* out, uint64_t* mask, const T* in, const T* residual,
                                     const T* mean, const T* var, const T* gamma, const T* beta,
                                     double eps, const BatchNormShape& s) {
  Coefficients<T> k(s.c);
  eval_coefficients(k, mean, var, gamma, beta, eps, s.c);
  normalize_relu<T, true>(out, mask, in, residual, k, s);
}

template <typename T>
void batchnorm_add_relu_backward_train(T* din, T* dresidual, T* dgamma, T* dbeta, const T* dout,
                                       const uint64_t* mask, const T* in, const T* mean,
                                       const T* invstd, const T* gamma, const BatchNormShape& s) {
  backward_train(din, dresidual, dgamma, dbeta, dout, mask, in, mean, invstd, gamma, s);
}

template <typename T>
void batchnorm_add_relu_backward_eval(T* din, T* dresidual, T* dgamma, T* dbeta, const T* dout,
                                      const uint64_t* mask, const T* in, const T* mean, const T* var,
                                      const T* gamma, double eps, const BatchNormShape& s) {
  backward_eval(din, dresidual, dgamma, dbeta, dout, mask, in, mean, var, gamma, eps, s);
}

#define INSTANTIATE(T)                                                                             \
  template void batchnorm_relu_forward_train<T>(T*, uint64_t*, T*, T*, T*, const T*, const T*,      \
                                                const T*, double, const BatchNormShape&);          \
  template void batchnorm_relu_forward_eval<T>(T*, uint64_t*, const T*, const T*, const T*,         \
                                               const T*, const T*, double, const BatchNormShape&); \
  template void batchnorm_relu_backward_train<T>(T*, T*, T*, const T*, const uint64_t*, const T*,   \
                                                 const T*, const T*, const T*,                     \
                                                 const BatchNormShape&);                           \
  template void batchnorm_relu_backward_eval<T>(T*, T*, T*, const T*, const uint64_t*, const T*,    \
                                                const T*, const T*, const T*, double,              \
                                                const BatchNormShape&);                            \
  template void batchnorm_add_relu_forward_train<T>(T*, uint64_t*, T*, T*, T*, const T*, const T*,  \
                                                    const T*, const T*, double,                    \
                                                    const BatchNormShape&);                        \
  template void batchnorm_add_relu_forward_eval<T>(T*, uint64_t*, const T*, const T*, const T*,     \
                                                   const T*, const T*, const T*, double,           \
                                                   const BatchNormShape&);                         \
  template void batchnorm_add_relu_backward_train<T>(T*, T*, T*, T*, const T*, const uint64_t*,     \
                                                     const T*, const T*, const T*, const T*,       \
                                                     const BatchNormShape&);                       \
  template void batchnorm_add_relu_backward_eval<T>(T*, T*, T*, T*, const T*, const uint64_t*,      \
                                                    const T*, const T*, const T*, const T*,        \
                                                    double, const BatchNormShape&);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace normnet::kernels

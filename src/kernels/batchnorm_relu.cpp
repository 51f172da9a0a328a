// Fused BatchNorm + ReLU and BatchNorm + add + ReLU; the math is derived in batchnorm_relu.h.
// Every arithmetic expression is written exactly as in batchnorm.cpp, relu.cpp and
// elementwise.cpp (same operands, same order, same roundings to T), which is what makes the
// fused results bit-identical to the unfused sequence.
#include "kernels/batchnorm_relu.h"
#include "kernels/channel_stats.h"
#include "kernels/relu_pool2x2.h"

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

// The statistics pass of batchnorm_forward_train (the same function).
template <typename T>
void train_statistics(Coefficients<T>& k, T* mean, T* var, T* invstd, const T* in, const T* gamma,
                      const T* beta, double eps, const BatchNormShape& s) {
  batchnorm_train_statistics(mean, var, invstd, k.alpha.data(), k.offset.data(), in, gamma, beta, eps, s);
  for (int64_t c = 0; c < s.c; ++c) k.mu[c] = mean[c];
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

// Channel c's training-mode backward coefficients from its gradient sums (dgamma, dbeta added):
// dx = g * k_dy - (x - mu) * k_x + k_0.
template <typename T>
struct DxCoefficients {
  T k_dy, mu, k_x, k_0;
};

template <typename T>
DxCoefficients<T> train_dx_coefficients(T* dgamma, T* dbeta, const ChannelGradSums& gs, int64_t c,
                                        int64_t M, const T* mean, const T* invstd, const T* gamma) {
  const double is = invstd[c];
  const double sum_dy = gs.sum_dy, sum_dy_xhat = gs.sum_dy_xc * is;
  if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
  if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
  const double gm = gamma ? static_cast<double>(gamma[c]) : 1.0;
  const double m = M > 0 ? static_cast<double>(M) : 1.0;
  return {static_cast<T>(gm * is), mean[c], static_cast<T>(gm * is * is * sum_dy_xhat / m),
          static_cast<T>(-gm * is * sum_dy / m)};
}

template <typename T>
void backward_train(T* din, T* dresidual, T* dgamma, T* dbeta, const T* dout, const uint64_t* mask,
                    const T* in, const T* mean, const T* invstd, const T* gamma, const BatchNormShape& s) {
  const int64_t M = s.count(), S = s.spatial, C = s.c;
#pragma omp parallel
  {
    const ChannelBlock b = thread_channels(C);
    std::vector<ChannelGradSums> gs(static_cast<size_t>(b.size()));
    std::vector<DxCoefficients<T>> k(gs.size());
    block_grad_sums(gs.data(), dout, in, mean, s.n, C, S, b, mask);
    for (int64_t c = b.begin; c < b.end; ++c)
      k[c - b.begin] = train_dx_coefficients(dgamma, dbeta, gs[c - b.begin], c, M, mean, invstd, gamma);
    if ((din || dresidual) && M > 0)
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t c = b.begin; c < b.end; ++c) {
          const DxCoefficients<T>& q = k[c - b.begin];
          bn_dx_add(din, dresidual, dout, in, mask, (n * C + c) * S, (n * C + c + 1) * S, q.k_dy, q.mu, q.k_x, q.k_0);
        }
  }
}

// --- BatchNorm + ReLU + MaxPool2d(2). A plane's elements [start, start + S) of the tensor go
// to scratch[ph, ph + S) with ph = start % kLanes: index k there has the lane and the 16-block
// that element start - ph + k has in the tensor, so the loops of channel_stats.h treat it
// exactly as they treat the element in place (the tensor pointers passed are shifted by
// start - ph, which stays inside the tensor).

// Plane nc: relu(BN) into z, pooled into out / win; winners whose value is <= 0 get -1.
template <typename T>
void pool_plane(T* out, int32_t* win, const T* in, T* z, int64_t nc, const Coefficients<T>& k,
                int64_t C, int64_t h, int64_t w) {
  const int64_t S = h * w, start = nc * S, ph = start % kLanes, c = nc % C;
  normalize_relu_values(z, in + start - ph, ph, ph + S, k.mu[c], k.alpha[c], k.offset[c]);
  relu_pool2x2_plane(out, win, z + ph, h, w);
}

// Scratch for a plane of S values at phase ph < kLanes, with room for relu_pool2x2_plane's
// reads past the end.
inline size_t scratch_size(int64_t S) { return static_cast<size_t>(S + 3 * kLanes); }

template <typename T>
void pool_planes(T* out, int32_t* win, const T* in, const Coefficients<T>& k, const BatchNormShape& s,
                 int64_t h, int64_t w) {
  const int64_t os = (h / 2) * (w / 2);
#pragma omp parallel
  {
    std::vector<T> z(scratch_size(s.spatial));
#pragma omp for schedule(static)
    for (int64_t nc = 0; nc < s.n * s.c; ++nc) pool_plane(out + nc * os, win + nc * os, in, z.data(), nc, k, s.c, h, w);
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

template <typename T>
void batchnorm_relu_maxpool_forward_train(T* out, int32_t* win, T* mean, T* var, T* invstd,
                                          const T* in, const T* gamma, const T* beta, double eps,
                                          const BatchNormShape& s, int64_t h, int64_t w) {
  Coefficients<T> k(s.c);
  train_statistics(k, mean, var, invstd, in, gamma, beta, eps, s);
  pool_planes(out, win, in, k, s, h, w);
}

template <typename T>
void batchnorm_relu_maxpool_forward_eval(T* out, int32_t* win, const T* in, const T* mean,
                                         const T* var, const T* gamma, const T* beta, double eps,
                                         const BatchNormShape& s, int64_t h, int64_t w) {
  Coefficients<T> k(s.c);
  eval_coefficients(k, mean, var, gamma, beta, eps, s.c);
  pool_planes(out, win, in, k, s, h, w);
}

template <typename T>
void batchnorm_relu_maxpool_backward_train(T* din, T* dgamma, T* dbeta, const T* dout,
                                           const int32_t* win, const T* in, const T* mean,
                                           const T* invstd, const T* gamma, const BatchNormShape& s,
                                           int64_t h, int64_t w) {
  const int64_t M = s.count(), S = s.spatial, C = s.c, os = (h / 2) * (w / 2);
#pragma omp parallel
  {
    const ChannelBlock b = thread_channels(C);
    std::vector<T> g(scratch_size(S));
    std::vector<LaneSums> sums(static_cast<size_t>(b.size()));
    std::vector<DxCoefficients<T>> k(sums.size());
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t c = b.begin; c < b.end; ++c) {
        const int64_t nc = n * C + c, ph = (nc * S) % kLanes;
        relu_pool2x2_grad(g.data() + ph, dout + nc * os, win + nc * os, h, w);
        grad_sums_add(sums[c - b.begin], g.data(), in + nc * S - ph, static_cast<const uint64_t*>(nullptr),
                      ph, ph + S, static_cast<double>(mean[c]));
      }
    for (int64_t c = b.begin; c < b.end; ++c) {
      const LaneSums& q = sums[c - b.begin];
      k[c - b.begin] = train_dx_coefficients(dgamma, dbeta, ChannelGradSums{q.total_a(), q.total_b()},
                                             c, M, mean, invstd, gamma);
    }
    if (din && M > 0)
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t c = b.begin; c < b.end; ++c) {
          const int64_t nc = n * C + c, ph = (nc * S) % kLanes;
          const DxCoefficients<T>& q = k[c - b.begin];
          relu_pool2x2_grad(g.data() + ph, dout + nc * os, win + nc * os, h, w);
          bn_dx_add(din + nc * S - ph, static_cast<T*>(nullptr), g.data(), in + nc * S - ph,
                    static_cast<const uint64_t*>(nullptr), ph, ph + S, q.k_dy, q.mu, q.k_x, q.k_0);
        }
  }
}

template <typename T>
void relu_maxpool_scatter(T* g, const T* dout, const int32_t* win, int64_t planes, int64_t h, int64_t w) {
  const int64_t S = h * w, os = (h / 2) * (w / 2);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < planes; ++nc) relu_pool2x2_grad(g + nc * S, dout + nc * os, win + nc * os, h, w);
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
                                                    double, const BatchNormShape&);            \
  template void batchnorm_relu_maxpool_forward_train<T>(T*, int32_t*, T*, T*, T*, const T*,      \
                                                        const T*, const T*, double,               \
                                                        const BatchNormShape&, int64_t, int64_t); \
  template void batchnorm_relu_maxpool_forward_eval<T>(T*, int32_t*, const T*, const T*, const T*, \
                                                       const T*, const T*, double,                \
                                                       const BatchNormShape&, int64_t, int64_t);  \
  template void batchnorm_relu_maxpool_backward_train<T>(T*, T*, T*, const T*, const int32_t*,     \
                                                         const T*, const T*, const T*, const T*,   \
                                                         const BatchNormShape&, int64_t, int64_t); \
  template void relu_maxpool_scatter<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace normnet::kernels

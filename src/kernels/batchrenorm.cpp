// Batch Renormalization kernels over (N, C, S); the math is derived in batchrenorm.h.
// The batch statistics are computed exactly as batchnorm_forward_train computes them (shifted
// one-pass sums in double), so that r = 1, d = 0 reproduces BatchNorm bit for bit.
#include "kernels/batchrenorm.h"
#include "kernels/channel_stats.h"

#include <algorithm>
#include <cmath>

namespace normnet::kernels {

template <typename T>
void batchrenorm_forward_train(T* out, T* mean, T* var, T* invstd, T* r, T* d, const T* in,
                               const T* gamma, const T* beta, const T* running_mean,
                               const T* running_var, double eps, const RenormLimits& lim,
                               const BatchNormShape& s) {
  const int64_t S = s.spatial, C = s.c;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const ChannelMoments mv = channel_moments(in, s.n, C, S, c);
    const double v = mv.var;
    const double is = 1.0 / std::sqrt(v + eps);
    mean[c] = static_cast<T>(mv.mean);
    var[c] = static_cast<T>(v);
    invstd[c] = static_cast<T>(is);
    // r and d from the running statistics before this batch's update.
    const double sigma_batch = std::sqrt(v + eps);
    const double sigma = std::sqrt(static_cast<double>(running_var[c]) + eps);
    const double rc = std::clamp(sigma_batch / sigma, 1.0 / lim.r_max, lim.r_max);
    const double dc =
        std::clamp((mv.mean - static_cast<double>(running_mean[c])) / sigma, -lim.d_max, lim.d_max);
    r[c] = static_cast<T>(rc);
    d[c] = static_cast<T>(dc);
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const double b = beta ? static_cast<double>(beta[c]) : 0.0;
    // y = (x - mean) * (invstd * gamma * r) + (beta + gamma * d).
    const T alpha = static_cast<T>(is * g * rc), offset = static_cast<T>(b + g * dc), mu = mean[c];
    for (int64_t n = 0; n < s.n; ++n)
      normalize_range(out, in, (n * C + c) * S, (n * C + c + 1) * S, mu, alpha, offset);
  }
}

template <typename T>
void batchrenorm_backward_train(T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                                const T* mean, const T* invstd, const T* r, const T* d,
                                const T* gamma, const BatchNormShape& s) {
  const int64_t M = s.count(), S = s.spatial, C = s.c;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double is = invstd[c], rc = r[c], dc = d[c];
    const ChannelGradSums gs = channel_grad_sums(dout, in, static_cast<double>(mean[c]), s.n, C, S, c);
    const double sum_dy = gs.sum_dy, sum_dy_xhat = gs.sum_dy_xc * is;
    // dgamma = sum dy * (xhat * r + d); dbeta = sum dy.
    if (dgamma) dgamma[c] += static_cast<T>(rc * sum_dy_xhat + dc * sum_dy);
    if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
    if (!din || M == 0) continue;
    // BatchNorm's input gradient with gamma * r in place of gamma.
    const double g = (gamma ? static_cast<double>(gamma[c]) : 1.0) * rc;
    const T k_dy = static_cast<T>(g * is);
    const T k_x = static_cast<T>(g * is * is * sum_dy_xhat / M);
    const T k_0 = static_cast<T>(-g * is * sum_dy / M);
    const T mu = mean[c];
    for (int64_t n = 0; n < s.n; ++n)
      bn_dx_add(din, static_cast<T*>(nullptr), dout, in, static_cast<const uint64_t*>(nullptr),
                (n * C + c) * S, (n * C + c + 1) * S, k_dy, mu, k_x, k_0);
  }
}

#define INSTANTIATE(T)                                                                         \
  template void batchrenorm_forward_train<T>(T*, T*, T*, T*, T*, T*, const T*, const T*,      \
                                             const T*, const T*, const T*, double,            \
                                             const RenormLimits&, const BatchNormShape&);     \
  template void batchrenorm_backward_train<T>(T*, T*, T*, const T*, const T*, const T*,       \
                                              const T*, const T*, const T*, const T*,         \
                                              const BatchNormShape&);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace normnet::kernels

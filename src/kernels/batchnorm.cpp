// BatchNorm kernels over (N, C, S); the math is derived in batchnorm.h.
// Each thread takes a block of channels (thread_channels); the sums are channel_stats.h's, so
// the statistics are the same for any thread count.
#include "kernels/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/channel_stats.h"

namespace normnet::kernels {

template <typename T>
void batchnorm_train_statistics(T* mean, T* var, T* invstd, T* alpha, T* offset, const T* in,
                                const T* gamma, const T* beta, double eps, const BatchNormShape& s) {
#pragma omp parallel
  {
    const ChannelBlock b = thread_channels(s.c);
    std::vector<ChannelMoments> mv(static_cast<size_t>(b.size()));
    block_moments(mv.data(), in, s.n, s.c, s.spatial, b);
    for (int64_t c = b.begin; c < b.end; ++c) {
      const ChannelMoments& m = mv[c - b.begin];
      const double is = 1.0 / std::sqrt(m.var + eps);
      mean[c] = static_cast<T>(m.mean);
      var[c] = static_cast<T>(m.var);
      invstd[c] = static_cast<T>(is);
      alpha[c] = static_cast<T>(is * (gamma ? static_cast<double>(gamma[c]) : 1.0));
      offset[c] = static_cast<T>(beta ? static_cast<double>(beta[c]) : 0.0);
    }
  }
}

template <typename T>
void batchnorm_forward_train(T* out, T* mean, T* var, T* invstd, const T* in, const T* gamma,
                             const T* beta, double eps, const BatchNormShape& s) {
  const int64_t S = s.spatial, C = s.c;
  std::vector<T> alpha(static_cast<size_t>(C)), offset(static_cast<size_t>(C));
  batchnorm_train_statistics(mean, var, invstd, alpha.data(), offset.data(), in, gamma, beta, eps, s);
#pragma omp parallel
  {
    const ChannelBlock b = thread_channels(C);  // the planes the statistics pass just read
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t c = b.begin; c < b.end; ++c)
        normalize_range(out, in, (n * C + c) * S, (n * C + c + 1) * S, mean[c], alpha[c], offset[c]);
  }
}

template <typename T>
void batchnorm_forward_eval(T* out, const T* in, const T* mean, const T* var, const T* gamma,
                            const T* beta, double eps, const BatchNormShape& s) {
  const int64_t S = s.spatial, C = s.c;
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const double is = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
      const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
      const double b = beta ? static_cast<double>(beta[c]) : 0.0;
      const T alpha = static_cast<T>(is * g), offset = static_cast<T>(b), mu = mean[c];
      normalize_range(out, in, (n * C + c) * S, (n * C + c + 1) * S, mu, alpha, offset);
    }
}

template <typename T>
void batchnorm_backward_train(T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                              const T* mean, const T* invstd, const T* gamma,
                              const BatchNormShape& s) {
  const int64_t M = s.count(), S = s.spatial, C = s.c;
#pragma omp parallel
  {
    const ChannelBlock b = thread_channels(C);
    std::vector<ChannelGradSums> gs(static_cast<size_t>(b.size()));
    std::vector<T> k_dy(gs.size()), k_x(gs.size()), k_0(gs.size());
    block_grad_sums(gs.data(), dout, in, mean, s.n, C, S, b);
    for (int64_t c = b.begin; c < b.end; ++c) {
      const int64_t i = c - b.begin;
      const double is = invstd[c];
      const double sum_dy = gs[i].sum_dy, sum_dy_xhat = gs[i].sum_dy_xc * is;
      if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
      if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
      if (!din || M == 0) continue;
      const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
      // dx = g*is*dy - g*is*sum_dy/M - (x - m) * g*is^2*sum_dy_xhat/M
      k_dy[i] = static_cast<T>(g * is);
      k_x[i] = static_cast<T>(g * is * is * sum_dy_xhat / M);
      k_0[i] = static_cast<T>(-g * is * sum_dy / M);
    }
    if (din && M > 0)
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t c = b.begin; c < b.end; ++c)
          bn_dx_add(din, static_cast<T*>(nullptr), dout, in, static_cast<const uint64_t*>(nullptr),
                    (n * C + c) * S, (n * C + c + 1) * S, k_dy[c - b.begin], mean[c],
                    k_x[c - b.begin], k_0[c - b.begin]);
  }
}

template <typename T>
void batchnorm_backward_eval(T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                             const T* mean, const T* var, const T* gamma, double eps,
                             const BatchNormShape& s) {
  const int64_t S = s.spatial, C = s.c;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double is = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    const double m = mean[c];
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    const T k = static_cast<T>(is * (gamma ? static_cast<double>(gamma[c]) : 1.0));
    for (int64_t n = 0; n < s.n; ++n) {
      const T* x = in + (n * C + c) * S;
      const T* dy = dout + (n * C + c) * S;
      T* dx = din ? din + (n * C + c) * S : nullptr;
      for (int64_t i = 0; i < S; ++i) {
        sum_dy += dy[i];
        sum_dy_xhat += static_cast<double>(dy[i]) * (static_cast<double>(x[i]) - m) * is;
        if (dx) dx[i] = dy[i] * k;
      }
    }
    if (dgamma) dgamma[c] += static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
  }
}

template <typename T>
void batchnorm_update_running(T* running_mean, T* running_var, const T* mean, const T* var,
                              int64_t channels, int64_t count, double factor) {
  const double unbias = count > 1 ? static_cast<double>(count) / (count - 1) : 1.0;
  for (int64_t c = 0; c < channels; ++c) {
    running_mean[c] = static_cast<T>((1.0 - factor) * running_mean[c] + factor * mean[c]);
    running_var[c] = static_cast<T>((1.0 - factor) * running_var[c] + factor * var[c] * unbias);
  }
}

#define INSTANTIATE(T)                                                                          \
  template void batchnorm_train_statistics<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*,  \
                                              double, const BatchNormShape&);                   \
  template void batchnorm_forward_train<T>(T*, T*, T*, T*, const T*, const T*, const T*, double, \
                                           const BatchNormShape&);                             \
  template void batchnorm_forward_eval<T>(T*, const T*, const T*, const T*, const T*, const T*, \
                                          double, const BatchNormShape&);                       \
  template void batchnorm_backward_train<T>(T*, T*, T*, const T*, const T*, const T*, const T*,  \
                                            const T*, const BatchNormShape&);                   \
  template void batchnorm_backward_eval<T>(T*, T*, T*, const T*, const T*, const T*, const T*,   \
                                           const T*, double, const BatchNormShape&);            \
  template void batchnorm_update_running<T>(T*, T*, const T*, const T*, int64_t, int64_t, double);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace normnet::kernels

// SyncBatchNorm's local statistics, moment merge and backward from given sums; the math is in
// batchnorm_sync.h. The sums are channel_stats.h's (the same lanes and order as BatchNorm).
#include "kernels/batchnorm_sync.h"

#include <algorithm>
#include <vector>

#include "kernels/channel_stats.h"

namespace normnet::kernels {

template <typename T>
void batchnorm_local_moments(double* mean, double* m2, const T* in, const BatchNormShape& s) {
  const int64_t C = s.c;
  const double M = static_cast<double>(s.count());
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const ChannelMoments mv = channel_moments(in, s.n, C, s.spatial, c);
    mean[c] = mv.mean;
    m2[c] = mv.var * M;
  }
}

template <typename T>
void batchnorm_normalize_given(T* out, uint64_t* mask, const T* in, const T* residual, const T* mean,
                               const double* invstd, const T* gamma, const T* beta, int epilogue,
                               const BatchNormShape& s) {
  const int64_t S = s.spatial, C = s.c;
  std::vector<T> mu(static_cast<size_t>(C)), alpha(mu.size()), offset(mu.size());
  for (int64_t c = 0; c < C; ++c) {
    mu[c] = mean[c];
    alpha[c] = static_cast<T>(invstd[c] * (gamma ? static_cast<double>(gamma[c]) : 1.0));
    offset[c] = static_cast<T>(beta ? static_cast<double>(beta[c]) : 0.0);
  }
  if (epilogue == 0) {
#pragma omp parallel for schedule(static) collapse(2)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t c = 0; c < C; ++c)
        normalize_range(out, in, (n * C + c) * S, (n * C + c + 1) * S, mu[c], alpha[c], offset[c]);
    return;
  }
  // One task per 64-element mask word, as batchnorm_relu.cpp's output pass.
  const int64_t total = s.n * C * S, words = (total + 63) / 64;
  const T* r = epilogue == 2 ? residual : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t w = 0; w < words; ++w) {
    const int64_t begin = w * 64, end = std::min(total, begin + 64);
    int64_t row = begin / S, i = begin;
    uint64_t bits = 0;
    while (i < end) {
      const int64_t c = row % C, stop = std::min(end, (row + 1) * S);
      bits |= normalize_relu_range(out, in, r, i, stop, mu[c], alpha[c], offset[c]);
      i = stop;
      ++row;
    }
    if (mask) mask[w] = bits;
  }
}

void merge_moments(double& count_a, double& mean_a, double& m2_a, double count_b, double mean_b,
                   double m2_b) {
  if (count_b == 0) return;
  if (count_a == 0) {
    count_a = count_b;
    mean_a = mean_b;
    m2_a = m2_b;
    return;
  }
  const double n = count_a + count_b, d = mean_b - mean_a;
  mean_a += d * (count_b / n);
  m2_a += m2_b + d * d * (count_a * count_b / n);
  count_a = n;
}

template <typename T>
void batchnorm_grad_sums(double* sum_dy, double* sum_dy_xc, const T* dout, const uint64_t* mask,
                         const T* in, const T* mean, const BatchNormShape& s) {
  const int64_t C = s.c;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const ChannelGradSums gs =
        channel_grad_sums(dout, in, static_cast<double>(mean[c]), s.n, C, s.spatial, c, mask);
    sum_dy[c] = gs.sum_dy;
    sum_dy_xc[c] = gs.sum_dy_xc;
  }
}

template <typename T>
void batchnorm_backward_given_sums(T* din, T* dresidual, T* dgamma, T* dbeta, const T* dout,
                                   const uint64_t* mask, const T* in, const T* mean,
                                   const T* invstd, const T* gamma, const double* local_sum_dy,
                                   const double* local_sum_dy_xc, const double* sum_dy,
                                   const double* sum_dy_xc, int64_t total_count,
                                   const BatchNormShape& s) {
  const int64_t S = s.spatial, C = s.c;
  const double M = static_cast<double>(total_count);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double is = invstd[c];
    if (dgamma) dgamma[c] += static_cast<T>(local_sum_dy_xc[c] * is);
    if (dbeta) dbeta[c] += static_cast<T>(local_sum_dy[c]);
    if ((!din && !dresidual) || s.count() == 0 || total_count == 0) continue;
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const double sum_dy_xhat = sum_dy_xc[c] * is;
    const T k_dy = static_cast<T>(g * is);
    const T k_x = static_cast<T>(g * is * is * sum_dy_xhat / M);
    const T k_0 = static_cast<T>(-g * is * sum_dy[c] / M);
    const T mu = mean[c];
    for (int64_t n = 0; n < s.n; ++n)
      bn_dx_add(din, dresidual, dout, in, mask, (n * C + c) * S, (n * C + c + 1) * S, k_dy, mu, k_x, k_0);
  }
}

#define INSTANTIATE(T)                                                                           \
  template void batchnorm_local_moments<T>(double*, double*, const T*, const BatchNormShape&);   \
  template void batchnorm_normalize_given<T>(T*, uint64_t*, const T*, const T*, const T*,         \
                                             const double*, const T*, const T*, int,             \
                                             const BatchNormShape&);                             \
  template void batchnorm_grad_sums<T>(double*, double*, const T*, const uint64_t*, const T*,    \
                                       const T*, const BatchNormShape&);                         \
  template void batchnorm_backward_given_sums<T>(T*, T*, T*, T*, const T*, const uint64_t*,      \
                                                 const T*, const T*, const T*, const T*,         \
                                                 const double*, const double*, const double*,    \
                                                 const double*, int64_t, const BatchNormShape&);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace normnet::kernels

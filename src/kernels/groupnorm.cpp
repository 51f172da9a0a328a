// GroupNorm kernels over (N, C, S); the math is derived in groupnorm.h.
// One (sample, group) per task: each group's sums run over its channels then positions, in
// double, so the statistics and din are the same for any thread count. The parameter gradients
// are summed per channel over the samples in increasing order, one channel per task.
#include "kernels/groupnorm.h"
#include "kernels/channel_stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace normnet::kernels {

template <typename T>
void groupnorm_forward(T* out, T* mean, T* var, T* invstd, const T* in, const T* gamma,
                       const T* beta, double eps, const GroupNormShape& s) {
  const int64_t S = s.spatial, C = s.c, G = s.groups, Cg = s.channels_per_group();
  const int64_t D = s.group_size();
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < s.n * G; ++ng) {
    const int64_t n = ng / G, g = ng % G;
    const T* x = in + (n * C + g * Cg) * S;  // the group's D values, contiguous
    T* y = out + (n * C + g * Cg) * S;
    // The group's D values as one contiguous "channel" (channel_stats.h's shifted sums).
    const ChannelMoments mv = channel_moments(x, 1, 1, D, 0);
    const double is = 1.0 / std::sqrt(mv.var + eps);
    mean[ng] = static_cast<T>(mv.mean);
    var[ng] = static_cast<T>(mv.var);
    invstd[ng] = static_cast<T>(is);
    const T mu = mean[ng];
    for (int64_t k = 0; k < Cg; ++k) {
      const int64_t c = g * Cg + k;
      const double gm = gamma ? static_cast<double>(gamma[c]) : 1.0;
      const double b = beta ? static_cast<double>(beta[c]) : 0.0;
      // (x - mean) first: for |mean| >> std the subtraction is exact, x * alpha would not be.
      const T alpha = static_cast<T>(is * gm), offset = static_cast<T>(b);
      const T* xc = x + k * S;
      T* yc = y + k * S;
      for (int64_t i = 0; i < S; ++i) yc[i] = (xc[i] - mu) * alpha + offset;
    }
  }
}

template <typename T>
void groupnorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean,
                        const T* invstd, const T* gamma, const GroupNormShape& s) {
  const int64_t S = s.spatial, C = s.c, G = s.groups, Cg = s.channels_per_group();
  const int64_t D = s.group_size();
  // Per (n, c): sum_s dy and sum_s dy * (x - mean_ng), each written by the task of its group.
  std::vector<double> sum_dy(static_cast<size_t>(s.n * C)), sum_dy_xc(static_cast<size_t>(s.n * C));
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < s.n * G; ++ng) {
    const int64_t n = ng / G, g = ng % G;
    const double m = mean[ng], is = invstd[ng];
    double group_g = 0.0, group_gx = 0.0;  // sum gamma*dy, sum gamma*dy*(x - mean)
    for (int64_t k = 0; k < Cg; ++k) {
      const int64_t c = g * Cg + k;
      const T* x = in + (n * C + c) * S;
      const T* dy = dout + (n * C + c) * S;
      double a = 0.0, b = 0.0;
      for (int64_t i = 0; i < S; ++i) {
        a += dy[i];
        b += static_cast<double>(dy[i]) * (static_cast<double>(x[i]) - m);
      }
      sum_dy[n * C + c] = a;
      sum_dy_xc[n * C + c] = b;
      const double gm = gamma ? static_cast<double>(gamma[c]) : 1.0;
      group_g += gm * a;
      group_gx += gm * b;
    }
    if (!din || D == 0) continue;
    // dx = is * ((gamma_c*dy - group_g/D) - (x - m) * is^2*group_gx/D), in double: the terms
    // cancel almost exactly in small groups (exactly for D = 1, where dx = 0; float
    // coefficients as in batchnorm.cpp would leave is * ulp(gamma*dy) there, with is up to
    // 1/sqrt(eps)). gamma_c*dy and x - m are exact in double, so contraction changes nothing.
    const double mean_g = group_g / D, k_x = is * is * group_gx / D;
    for (int64_t k = 0; k < Cg; ++k) {
      const int64_t c = g * Cg + k;
      const double gm = gamma ? static_cast<double>(gamma[c]) : 1.0;
      const T* x = in + (n * C + c) * S;
      const T* dy = dout + (n * C + c) * S;
      T* dx = din + (n * C + c) * S;
      for (int64_t i = 0; i < S; ++i)
        dx[i] =
            static_cast<T>(is * ((gm * dy[i] - mean_g) - (static_cast<double>(x[i]) - m) * k_x));
    }
  }
  if (!dgamma && !dbeta) return;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const int64_t g = c / Cg;
    double dg = 0.0, db = 0.0;
    for (int64_t n = 0; n < s.n; ++n) {
      dg += sum_dy_xc[n * C + c] * static_cast<double>(invstd[n * G + g]);
      db += sum_dy[n * C + c];
    }
    if (dgamma) dgamma[c] += static_cast<T>(dg);
    if (dbeta) dbeta[c] += static_cast<T>(db);
  }
}

template <typename T>
void instancenorm_update_running(T* running_mean, T* running_var, const T* mean, const T* var,
                                 int64_t n, int64_t channels, int64_t spatial, double factor) {
  if (n == 0) return;
  const double unbias = spatial > 1 ? static_cast<double>(spatial) / (spatial - 1) : 1.0;
  for (int64_t c = 0; c < channels; ++c) {
    double m = 0.0, v = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      m += mean[i * channels + c];
      v += var[i * channels + c];
    }
    m /= n;
    v = v / n * unbias;
    running_mean[c] = static_cast<T>((1.0 - factor) * running_mean[c] + factor * m);
    running_var[c] = static_cast<T>((1.0 - factor) * running_var[c] + factor * v);
  }
}

#define INSTANTIATE(T)                                                                       \
  template void groupnorm_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, double,   \
                                     const GroupNormShape&);                                 \
  template void groupnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,    \
                                      const T*, const GroupNormShape&);                      \
  template void instancenorm_update_running<T>(T*, T*, const T*, const T*, int64_t, int64_t, \
                                               int64_t, double);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace normnet::kernels

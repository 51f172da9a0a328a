// LayerNorm kernels over (R, D) rows; the math is derived in layernorm.h.
// Statistics and din: one row per task, summed over j in increasing order in double. dgamma and
// dbeta: one block of kColBlock positions per task, each position summed over r in increasing
// order. Both give the same bits for any thread count.
#include "kernels/layernorm.h"
#include "kernels/channel_stats.h"

#include <algorithm>
#include <cmath>

namespace normnet::kernels {

namespace {
constexpr int64_t kColBlock = 256;  // positions per task in the parameter-gradient pass
}

template <typename T>
void layernorm_forward(T* out, T* mean, T* var, T* invstd, const T* in, const T* gamma,
                       const T* beta, double eps, const LayerNormShape& s) {
  const int64_t D = s.cols;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* x = in + r * D;
    T* y = out + r * D;
    const ChannelMoments mv = channel_moments(x, 1, 1, D, 0);  // the row as one "channel"
    const double is = 1.0 / std::sqrt(mv.var + eps);
    mean[r] = static_cast<T>(mv.mean);
    var[r] = static_cast<T>(mv.var);
    invstd[r] = static_cast<T>(is);
    const T mu = mean[r], ist = invstd[r];
    // (x - mean) first, as in batchnorm.cpp; then the per-position scale and shift.
    if (gamma && beta)
      for (int64_t j = 0; j < D; ++j) y[j] = (x[j] - mu) * ist * gamma[j] + beta[j];
    else if (gamma)
      for (int64_t j = 0; j < D; ++j) y[j] = (x[j] - mu) * ist * gamma[j];
    else
      for (int64_t j = 0; j < D; ++j) y[j] = (x[j] - mu) * ist + (beta ? beta[j] : T(0));
  }
}

template <typename T>
void layernorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean,
                        const T* invstd, const T* gamma, const LayerNormShape& s) {
  const int64_t D = s.cols, R = s.rows;
  if (din && D > 0) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      const T* x = in + r * D;
      const T* dy = dout + r * D;
      T* dx = din + r * D;
      const double m = mean[r], is = invstd[r];
      double sum_g = 0.0, sum_gx = 0.0;  // sum gamma*dy, sum gamma*dy*(x - mean)
      for (int64_t j = 0; j < D; ++j) {
        const double g = static_cast<double>(dy[j]) * (gamma ? static_cast<double>(gamma[j]) : 1.0);
        sum_g += g;
        sum_gx += g * (static_cast<double>(x[j]) - m);
      }
      // dx = is * ((gamma*dy - sum_g/D) - (x - m) * is^2*sum_gx/D), in double as in
      // groupnorm.cpp (the terms cancel almost exactly in short rows, exactly for D = 1).
      const double mean_g = sum_g / D, k_x = is * is * sum_gx / D;
      if (gamma)
        for (int64_t j = 0; j < D; ++j)
          dx[j] = static_cast<T>(is * ((static_cast<double>(gamma[j]) * dy[j] - mean_g) -
                                       (static_cast<double>(x[j]) - m) * k_x));
      else
        for (int64_t j = 0; j < D; ++j)
          dx[j] = static_cast<T>(
              is * ((static_cast<double>(dy[j]) - mean_g) - (static_cast<double>(x[j]) - m) * k_x));
    }
  }
  if (!dgamma && !dbeta) return;
  const int64_t blocks = (D + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kColBlock, j1 = std::min(D, j0 + kColBlock);
    double dg[kColBlock] = {}, db[kColBlock] = {};
    for (int64_t r = 0; r < R; ++r) {
      const T* x = in + r * D;
      const T* dy = dout + r * D;
      const double m = mean[r], is = invstd[r];
      for (int64_t j = j0; j < j1; ++j) {
        db[j - j0] += dy[j];
        dg[j - j0] += static_cast<double>(dy[j]) * ((static_cast<double>(x[j]) - m) * is);
      }
    }
    for (int64_t j = j0; j < j1; ++j) {
      if (dgamma) dgamma[j] += static_cast<T>(dg[j - j0]);
      if (dbeta) dbeta[j] += static_cast<T>(db[j - j0]);
    }
  }
}

#define INSTANTIATE(T)                                                                     \
  template void layernorm_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, double, \
                                     const LayerNormShape&);                               \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,  \
                                      const T*, const LayerNormShape&);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace normnet::kernels

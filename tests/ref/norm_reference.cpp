// Plain-loop double references for GroupNorm, LayerNorm and InstanceNorm running statistics;
// see norm_reference.h.
#include "ref/norm_reference.h"

#include <cmath>
#include <vector>

namespace normnet::ref {

namespace {
int64_t gn_index(const GroupNormShape& s, int64_t n, int64_t c, int64_t k) {
  return (n * s.c + c) * s.spatial + k;
}
}  // namespace

void groupnorm_forward(double* out, double* mean, double* var, double* invstd, const double* in,
                       const double* gamma, const double* beta, double eps,
                       const GroupNormShape& s) {
  const int64_t cg = s.c / s.groups;
  const double count = static_cast<double>(cg * s.spatial);
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t g = 0; g < s.groups; ++g) {
      double sum = 0;
      for (int64_t c = g * cg; c < (g + 1) * cg; ++c)
        for (int64_t k = 0; k < s.spatial; ++k) sum += in[gn_index(s, n, c, k)];
      const double m = sum / count;
      double sq = 0;
      for (int64_t c = g * cg; c < (g + 1) * cg; ++c)
        for (int64_t k = 0; k < s.spatial; ++k) {
          const double d = in[gn_index(s, n, c, k)] - m;
          sq += d * d;
        }
      const int64_t ng = n * s.groups + g;
      mean[ng] = m;
      var[ng] = sq / count;
      invstd[ng] = 1.0 / std::sqrt(var[ng] + eps);
      for (int64_t c = g * cg; c < (g + 1) * cg; ++c)
        for (int64_t k = 0; k < s.spatial; ++k) {
          const int64_t i = gn_index(s, n, c, k);
          const double xhat = (in[i] - m) * invstd[ng];
          out[i] = xhat * (gamma ? gamma[c] : 1.0) + (beta ? beta[c] : 0.0);
        }
    }
}

void groupnorm_backward(double* din, double* dgamma, double* dbeta, const double* dout,
                        const double* in, const double* mean, const double* invstd,
                        const double* gamma, const GroupNormShape& s) {
  const int64_t cg = s.c / s.groups;
  const double count = static_cast<double>(cg * s.spatial);
  for (int64_t c = 0; c < s.c; ++c) {
    const int64_t g = c / cg;
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t k = 0; k < s.spatial; ++k) {
        const int64_t i = gn_index(s, n, c, k), ng = n * s.groups + g;
        const double xhat = (in[i] - mean[ng]) * invstd[ng];
        if (dgamma) dgamma[c] += dout[i] * xhat;
        if (dbeta) dbeta[c] += dout[i];
      }
  }
  if (!din) return;
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t g = 0; g < s.groups; ++g) {
      const int64_t ng = n * s.groups + g;
      double mean_g = 0, mean_gxhat = 0;  // means over the group of g = gamma*dy and g*xhat
      for (int64_t c = g * cg; c < (g + 1) * cg; ++c)
        for (int64_t k = 0; k < s.spatial; ++k) {
          const int64_t i = gn_index(s, n, c, k);
          const double gi = (gamma ? gamma[c] : 1.0) * dout[i];
          mean_g += gi / count;
          mean_gxhat += gi * (in[i] - mean[ng]) * invstd[ng] / count;
        }
      for (int64_t c = g * cg; c < (g + 1) * cg; ++c)
        for (int64_t k = 0; k < s.spatial; ++k) {
          const int64_t i = gn_index(s, n, c, k);
          const double gi = (gamma ? gamma[c] : 1.0) * dout[i];
          const double xhat = (in[i] - mean[ng]) * invstd[ng];
          din[i] = invstd[ng] * (gi - mean_g - xhat * mean_gxhat);
        }
    }
}

void layernorm_forward(double* out, double* mean, double* var, double* invstd, const double* in,
                       const double* gamma, const double* beta, double eps,
                       const LayerNormShape& s) {
  const double count = static_cast<double>(s.cols);
  for (int64_t r = 0; r < s.rows; ++r) {
    double sum = 0;
    for (int64_t j = 0; j < s.cols; ++j) sum += in[r * s.cols + j];
    const double m = sum / count;
    double sq = 0;
    for (int64_t j = 0; j < s.cols; ++j) {
      const double d = in[r * s.cols + j] - m;
      sq += d * d;
    }
    mean[r] = m;
    var[r] = sq / count;
    invstd[r] = 1.0 / std::sqrt(var[r] + eps);
    for (int64_t j = 0; j < s.cols; ++j) {
      const double xhat = (in[r * s.cols + j] - m) * invstd[r];
      out[r * s.cols + j] = xhat * (gamma ? gamma[j] : 1.0) + (beta ? beta[j] : 0.0);
    }
  }
}

void layernorm_backward(double* din, double* dgamma, double* dbeta, const double* dout,
                        const double* in, const double* mean, const double* invstd,
                        const double* gamma, const LayerNormShape& s) {
  const double count = static_cast<double>(s.cols);
  for (int64_t r = 0; r < s.rows; ++r) {
    double mean_g = 0, mean_gxhat = 0;
    for (int64_t j = 0; j < s.cols; ++j) {
      const int64_t i = r * s.cols + j;
      const double xhat = (in[i] - mean[r]) * invstd[r];
      const double gi = (gamma ? gamma[j] : 1.0) * dout[i];
      mean_g += gi / count;
      mean_gxhat += gi * xhat / count;
      if (dgamma) dgamma[j] += dout[i] * xhat;
      if (dbeta) dbeta[j] += dout[i];
    }
    if (!din) continue;
    for (int64_t j = 0; j < s.cols; ++j) {
      const int64_t i = r * s.cols + j;
      const double xhat = (in[i] - mean[r]) * invstd[r];
      const double gi = (gamma ? gamma[j] : 1.0) * dout[i];
      din[i] = invstd[r] * (gi - mean_g - xhat * mean_gxhat);
    }
  }
}

void instancenorm_update_running(double* running_mean, double* running_var, const double* mean,
                                 const double* var, int64_t n, int64_t channels, int64_t spatial,
                                 double momentum) {
  // torch.instance_norm: running stats repeated per sample, updated as BatchNorm over the
  // (1, N*C, S) view (unbiased variance over S), then averaged over the batch.
  for (int64_t c = 0; c < channels; ++c) {
    std::vector<double> rm(n), rv(n);
    for (int64_t i = 0; i < n; ++i) {
      const double unbiased = var[i * channels + c] * spatial / (spatial - 1);
      rm[i] = (1 - momentum) * running_mean[c] + momentum * mean[i * channels + c];
      rv[i] = (1 - momentum) * running_var[c] + momentum * unbiased;
    }
    double sm = 0, sv = 0;
    for (int64_t i = 0; i < n; ++i) sm += rm[i], sv += rv[i];
    running_mean[c] = sm / n;
    running_var[c] = sv / n;
  }
}

}  // namespace normnet::ref

// Batch normalization over (N, C, S) tensors: S = H*W for BatchNorm2d, L for BatchNorm1d on
// (N, C, L), 1 for BatchNorm1d on (N, C). Statistics are per channel over M = N*S values.
//
// Training forward (torch.nn.BatchNorm*d in train mode):
//   mean_c = (1/M) sum x            var_c = (1/M) sum (x - mean_c)^2     (biased)
//   invstd_c = 1 / sqrt(var_c + eps)
//   y = (x - mean_c) * invstd_c * gamma_c + beta_c          (gamma = 1, beta = 0 without affine)
// Sums run in double, shifted by the channel's first value, so that a large mean costs no
// precision; each channel is reduced in one fixed order whatever the thread count.
//
// Training backward, with xhat = (x - mean) * invstd and g = gamma * dy:
//   dbeta = sum dy       dgamma = sum dy * xhat
//   dx = invstd * (g - mean(g) - xhat * mean(g * xhat))
//      = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma)
// since mean and var depend on x: d mean/dx_i = 1/M, d var/dx_i = 2 (x_i - mean) / M.
//
// Evaluation uses given statistics (running_mean, running_var) as constants:
//   y = (x - rm) / sqrt(rv + eps) * gamma + beta;  dx = dy * gamma / sqrt(rv + eps).
//
// dgamma and dbeta accumulate (+=) and may be null (affine off); din is overwritten.
#pragma once
#include <cstdint>

namespace normnet::kernels {

struct BatchNormShape {
  int64_t n = 1, c = 1, spatial = 1;
  int64_t count() const { return n * spatial; }  // values per channel
};

// Writes out, and per channel: mean, var (biased), invstd.
template <typename T>
void batchnorm_forward_train(T* out, T* mean, T* var, T* invstd, const T* in, const T* gamma,
                             const T* beta, double eps, const BatchNormShape& s);

// The statistics pass of batchnorm_forward_train: mean, var (biased), invstd per channel, and
// the normalization's coefficients alpha = invstd * gamma and offset = beta (each rounded to T
// once), so that out = (in - mean) * alpha + offset. The fused kernels share it.
template <typename T>
void batchnorm_train_statistics(T* mean, T* var, T* invstd, T* alpha, T* offset, const T* in,
                                const T* gamma, const T* beta, double eps, const BatchNormShape& s);

template <typename T>
void batchnorm_forward_eval(T* out, const T* in, const T* mean, const T* var, const T* gamma,
                            const T* beta, double eps, const BatchNormShape& s);

template <typename T>
void batchnorm_backward_train(T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                              const T* mean, const T* invstd, const T* gamma,
                              const BatchNormShape& s);

template <typename T>
void batchnorm_backward_eval(T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                             const T* mean, const T* var, const T* gamma, double eps,
                             const BatchNormShape& s);

// running = (1 - factor) * running + factor * batch, with the unbiased batch variance
// var * M / (M - 1). factor is momentum, or 1 / num_batches_tracked for the cumulative average.
template <typename T>
void batchnorm_update_running(T* running_mean, T* running_var, const T* mean, const T* var,
                              int64_t channels, int64_t count, double factor);

}  // namespace normnet::kernels

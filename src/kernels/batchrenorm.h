// Batch Renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch
// Dependence in Batch-Normalized Models") over (N, C, S) tensors, as BatchNorm (batchnorm.h):
// S = H*W for BatchRenorm2d, L or 1 for BatchRenorm1d; statistics per channel over M = N*S.
//
// Training forward, with the running statistics (rm, rv) of BEFORE this batch's update:
//   mean_c = (1/M) sum x      var_c = (1/M) sum (x - mean_c)^2   (biased, as BatchNorm)
//   sigma_B = sqrt(var_c + eps)       sigma = sqrt(rv_c + eps)      invstd_c = 1 / sigma_B
//   r_c = clip(sigma_B / sigma, 1/r_max, r_max)
//   d_c = clip((mean_c - rm_c) / sigma, -d_max, d_max)
//   xhat = (x - mean_c) * invstd_c
//   y = gamma_c * (xhat * r_c + d_c) + beta_c          (gamma = 1, beta = 0 without affine)
// computed as (x - mean) * (invstd * gamma * r) + (beta + gamma * d), so with r = 1 and d = 0
// (r_max = 1, d_max = 0) every operation is the BatchNorm kernel's and the output is identical.
// The running statistics are then updated by the caller as BatchNorm's
// (batchnorm_update_running: unbiased variance).
//
// Backward. The paper treats r and d as constants (stop_gradient): they carry no gradient to
// x although they are functions of the batch. With r, d constant the output is
//   y = (gamma * r) * xhat + (gamma * d + beta),
// which is BatchNorm's training output with gamma' = gamma * r and beta' = gamma * d + beta.
// So, with g = gamma * r * dy and the sums over the channel's M values:
//   dx = invstd * (g - mean(g) - xhat * mean(g * xhat))
//      = gamma * r * invstd / M * (M * dy - sum dy - xhat * sum(dy * xhat))
//   dbeta  = sum dy
//   dgamma = sum dy * (xhat * r + d) = r * sum(dy * xhat) + d * sum dy
// (the paper's Algorithm 1 gradients). This is NOT the true gradient of the forward as a
// function of x (r and d depend on mean and var): the gradient check treats them as constants.
//
// Evaluation is BatchNorm's: batchnorm_forward_eval / batchnorm_backward_eval with the running
// statistics.
//
// One channel per task; each channel's sums run over n then s in that order, in double, so the
// results are the same for any thread count. dgamma and dbeta accumulate (+=) and may be null
// (affine off); din is overwritten.
#pragma once
#include <cstdint>

#include "kernels/batchnorm.h"

namespace normnet::kernels {

struct RenormLimits {
  double r_max = 3.0;  // r in [1/r_max, r_max]; r_max >= 1
  double d_max = 5.0;  // d in [-d_max, d_max]; d_max >= 0
};

// Writes out and, per channel: mean, var (biased), invstd = 1/sqrt(var + eps), r, d.
// running_mean and running_var are only read.
template <typename T>
void batchrenorm_forward_train(T* out, T* mean, T* var, T* invstd, T* r, T* d, const T* in,
                               const T* gamma, const T* beta, const T* running_mean,
                               const T* running_var, double eps, const RenormLimits& lim,
                               const BatchNormShape& s);

// r and d are the forward's, used as constants.
template <typename T>
void batchrenorm_backward_train(T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                                const T* mean, const T* invstd, const T* r, const T* d,
                                const T* gamma, const BatchNormShape& s);

}  // namespace normnet::kernels

// The pieces of BatchNorm's training forward and backward that SyncBatchNorm splits around its
// exchanges between ranks (docs/distributed.md). Shapes as batchnorm.h: (N, C, S), M = N * S
// values per channel on this rank, M_all = the sum of M over the ranks.
//
// Forward. Each rank computes, per channel, its count M_r, mean m_r and M2_r = sum (x - m_r)^2
// (in double, with channel_stats.h's sums); the ranks' triples are merged in rank order (Chan
// et al.'s pairwise update):
//   n = n_a + n_b   d = m_b - m_a   m = m_a + d * n_b / n   M2 = M2_a + M2_b + d^2 n_a n_b / n
// which gives the mean and biased variance M2 / M_all of the whole global batch. The output is
// then batchnorm.h's with those statistics.
//
// Backward. With g the (masked, batchnorm_relu.h) output gradient and xhat = (x - mean) * invstd
// over the global statistics, batchnorm.h's formula needs the global sums
//   A = sum g      B = sum g * (x - mean)        (over every rank's values)
//   dx = gamma * invstd * g - (x - mean) * gamma * invstd^2 * B / M_all - gamma * invstd * A / M_all
// Each rank computes its local A_r, B_r (batchnorm_grad_sums), the caller sums them over the
// ranks, and batchnorm_backward_given_sums writes dx (and dresidual). dgamma += B_r * invstd and
// dbeta += A_r take this rank's share only: the gradient exchange of the trainer adds the ranks'
// parameter gradients, which completes them.
//
// din, dresidual overwritten (either may be null); dgamma, dbeta accumulate and may be null;
// mask may be null (no fused ReLU). Channels run in parallel, each in one fixed order, so no
// result depends on the thread count.
#pragma once
#include <cstdint>

#include "kernels/batchnorm.h"

namespace normnet::kernels {

// Per channel c: mean[c] and m2[c] of this rank's M values (both 0 when M = 0).
template <typename T>
void batchnorm_local_moments(double* mean, double* m2, const T* in, const BatchNormShape& s);

// The output of the training forward from given statistics: mean (rounded to T by the caller)
// and invstd in double, with alpha = T(invstd * gamma) and offset = T(beta) rounded as
// batchnorm_forward_train and the fused kernels round them. epilogue 0: BN; 1: ReLU(BN), mask
// bits as batchnorm_relu.h; 2: ReLU(BN + residual).
template <typename T>
void batchnorm_normalize_given(T* out, uint64_t* mask, const T* in, const T* residual, const T* mean,
                               const double* invstd, const T* gamma, const T* beta, int epilogue,
                               const BatchNormShape& s);

// Merges (count, mean, m2) triples: a += b (Chan et al.); a count of 0 on either side is exact.
void merge_moments(double& count_a, double& mean_a, double& m2_a, double count_b, double mean_b,
                   double m2_b);

// Per channel: sum_dy[c] = sum g, sum_dy_xc[c] = sum g * (x - mean[c]), in double.
template <typename T>
void batchnorm_grad_sums(double* sum_dy, double* sum_dy_xc, const T* dout, const uint64_t* mask,
                         const T* in, const T* mean, const BatchNormShape& s);

// dx (and dresidual = g) from the global sums over total_count values per channel; dgamma and
// dbeta get this rank's sums local_sum_dy, local_sum_dy_xc.
template <typename T>
void batchnorm_backward_given_sums(T* din, T* dresidual, T* dgamma, T* dbeta, const T* dout,
                                   const uint64_t* mask, const T* in, const T* mean,
                                   const T* invstd, const T* gamma, const double* local_sum_dy,
                                   const double* local_sum_dy_xc, const double* sum_dy,
                                   const double* sum_dy_xc, int64_t total_count,
                                   const BatchNormShape& s);

}  // namespace normnet::kernels

// normnet::ref: slow, obviously-correct references for GroupNorm, LayerNorm and the
// InstanceNorm running statistics, in double (see reference.h for the conventions: outputs
// first, din overwritten, parameter gradients accumulated with +=, null gamma/beta = no affine).
//
// Written from the definitions, not from the kernels: statistics in two passes (mean, then the
// mean of squared deviations), indices spelled out per (n, c, s), the backward from
// dx = invstd * (g - mean(g) - xhat * mean(g * xhat)) with g = gamma * dy over each
// normalization set, and the InstanceNorm update in PyTorch's own order (every sample updates
// its copy of the running statistics, the copies are then averaged).
#pragma once
#include <cstdint>

#include "kernels/groupnorm.h"
#include "kernels/layernorm.h"

namespace normnet::ref {

using kernels::GroupNormShape;
using kernels::LayerNormShape;

// (N, C, S), groups of C / G channels; mean, var (biased), invstd per (n, g).
void groupnorm_forward(double* out, double* mean, double* var, double* invstd, const double* in,
                       const double* gamma, const double* beta, double eps,
                       const GroupNormShape& s);
void groupnorm_backward(double* din, double* dgamma, double* dbeta, const double* dout,
                        const double* in, const double* mean, const double* invstd,
                        const double* gamma, const GroupNormShape& s);

// (R, D) rows; mean, var, invstd per row; gamma, beta per position (D).
void layernorm_forward(double* out, double* mean, double* var, double* invstd, const double* in,
                       const double* gamma, const double* beta, double eps,
                       const LayerNormShape& s);
void layernorm_backward(double* din, double* dgamma, double* dbeta, const double* dout,
                        const double* in, const double* mean, const double* invstd,
                        const double* gamma, const LayerNormShape& s);

// mean, var (biased): per (n, c) over `spatial` positions, index n * channels + c.
void instancenorm_update_running(double* running_mean, double* running_var, const double* mean,
                                 const double* var, int64_t n, int64_t channels, int64_t spatial,
                                 double momentum);

}  // namespace normnet::ref

// Fused BatchNorm + ReLU and BatchNorm + residual add + ReLU over (N, C, S) tensors (the shape
// conventions of batchnorm.h). They compute exactly what the unfused sequence computes, with
// the same float operations in the same order, so the results are bit-identical to
//   batchnorm_forward_* -> [add_forward] -> relu_forward   and
//   relu_backward -> [dresidual = that] -> batchnorm_backward_*
// (tested in kernels_fused_test); what changes is the memory traffic.
//
// Forward. With z = (x - mean_c) * alpha_c + beta_c, alpha_c = invstd_c * gamma_c (the BN
// output, rounded exactly as batchnorm_forward_* rounds it) and r the residual (0 without one):
//   t = z + r                      (only with a residual)
//   y = t < 0 ? 0 : t              mask bit = !(t <= 0)
// The output is written once; instead of a second copy of the activations, the ReLU's
// pass/block decision is kept as one bit per element: bit (i % 64) of mask[i / 64], i the flat
// index n*C*S + c*S + s (relu_mask_words(N*C*S) words; the padding bits of the last word are 0).
// As relu_forward and torch.relu, -0 and NaN pass through; as relu_backward (torch's
// threshold_backward), the gradient is blocked where the output is <= 0, so it passes at a NaN.
//
// Backward. The ReLU passes the gradient where its output is not <= 0:
//   g = dy * bit                   (= dL/dt; also dL/dr, the residual's gradient)
// and g is the gradient of the BN output, so BN's backward (derived in batchnorm.h) follows
// with dy replaced by g: with xhat = (x - mean) * invstd,
//   dbeta = sum g     dgamma = sum g * xhat
//   train: dx = gamma * invstd / M * (M * g - dbeta - xhat * dgamma)
//   eval:  dx = g * gamma / sqrt(running_var + eps)
// One pass per channel reads dy, the mask bits and x for the sums, a second writes dx (and
// dresidual); the masked gradient is never stored (except as dresidual, which is an output).
//
// Threads: the statistics and the backward give each thread a block of channels
// (thread_channels, channel_stats.h; each channel's sums in one fixed order, in double, as
// batchnorm.cpp); the forward's output pass runs over blocks of 64 elements, one mask word
// each, so no two threads write one word. Results do not depend on the thread count.
//
// din overwritten; dgamma, dbeta accumulate (+=) and may be null (affine off); gamma, beta may
// be null (affine off); dresidual (overwritten) may be null.
#pragma once
#include <cstdint>

#include "kernels/batchnorm.h"

namespace normnet::kernels {

inline int64_t relu_mask_words(int64_t elements) { return (elements + 63) / 64; }
inline bool relu_mask_bit(const uint64_t* mask, int64_t i) { return (mask[i >> 6] >> (i & 63)) & 1u; }

// --- BatchNorm + ReLU. mean, var (biased), invstd per channel as batchnorm_forward_train.
template <typename T>
void batchnorm_relu_forward_train(T* out, uint64_t* mask, T* mean, T* var, T* invstd, const T* in,
                                  const T* gamma, const T* beta, double eps, const BatchNormShape& s);
// mask may be null (inference that needs no backward).
template <typename T>
void batchnorm_relu_forward_eval(T* out, uint64_t* mask, const T* in, const T* mean, const T* var,
                                 const T* gamma, const T* beta, double eps, const BatchNormShape& s);
template <typename T>
void batchnorm_relu_backward_train(T* din, T* dgamma, T* dbeta, const T* dout, const uint64_t* mask,
                                   const T* in, const T* mean, const T* invstd, const T* gamma,
                                   const BatchNormShape& s);
template <typename T>
void batchnorm_relu_backward_eval(T* din, T* dgamma, T* dbeta, const T* dout, const uint64_t* mask,
                                  const T* in, const T* mean, const T* var, const T* gamma, double eps,
                                  const BatchNormShape& s);

// --- BatchNorm + residual add + ReLU: out = relu(BN(in) + residual).
template <typename T>
void batchnorm_add_relu_forward_train(T* out, uint64_t* mask, T* mean, T* var, T* invstd, const T* in,
                                      const T* residual, const T* gamma, const T* beta, double eps,
                                      const BatchNormShape& s);
template <typename T>
void batchnorm_add_relu_forward_eval(T* out, uint64_t* mask, const T* in, const T* residual,
                                     const T* mean, const T* var, const T* gamma, const T* beta,
                                     double eps, const BatchNormShape& s);
template <typename T>
void batchnorm_add_relu_backward_train(T* din, T* dresidual, T* dgamma, T* dbeta, const T* dout,
                                       const uint64_t* mask, const T* in, const T* mean,
                                       const T* invstd, const T* gamma, const BatchNormShape& s);
template <typename T>
void batchnorm_add_relu_backward_eval(T* din, T* dresidual, T* dgamma, T* dbeta, const T* dout,
                                      const uint64_t* mask, const T* in, const T* mean, const T* var,
                                      const T* gamma, double eps, const BatchNormShape& s);

// --- BatchNorm + ReLU + MaxPool2d(kernel 2, stride 2) over (N, C, H, W), spatial = H*W:
//   out (N, C, H/2, W/2) = maxpool(relu(BN(in))), bit-identical to the unfused sequence
//   batchnorm_forward_* -> relu_forward -> maxpool2d_forward (kernel 2x2, stride 2, no padding,
//   no ceil_mode) and, backward, maxpool2d_backward -> relu_backward -> batchnorm_backward_*.
// Each (n, c) plane is normalized into a per-thread scratch plane that stays in cache and pooled
// from there (relu_pool2x2_plane), so the full-size activation is never written, nor read again;
// the scratch plane keeps the plane's place modulo 16, so every element takes the vector or
// scalar path it takes in the unfused kernels.
// win (one int32 per pooled output): the winner's flat index y*W + x in its plane, as
// maxpool2d_forward's argmax, or -1 where the pooled value is <= 0. The windows do not
// overlap, so the gradient at the BN output is dout at each winner that is not -1 (a winner
// with pooled value 0 had BN output <= 0, which the ReLU blocks) and 0 everywhere else:
//   g[win] = 0 + dout  (as maxpool2d_backward adds into a zeroed plane; it makes -0 into +0)
// Backward (training) rebuilds g one plane at a time in scratch (relu_pool2x2_grad) for the sums
// and again for dx, with the sums in the order of batchnorm_relu_backward_train.
template <typename T>
void batchnorm_relu_maxpool_forward_train(T* out, int32_t* win, T* mean, T* var, T* invstd,
                                          const T* in, const T* gamma, const T* beta, double eps,
                                          const BatchNormShape& s, int64_t h, int64_t w);
template <typename T>
void batchnorm_relu_maxpool_forward_eval(T* out, int32_t* win, const T* in, const T* mean,
                                         const T* var, const T* gamma, const T* beta, double eps,
                                         const BatchNormShape& s, int64_t h, int64_t w);
template <typename T>
void batchnorm_relu_maxpool_backward_train(T* din, T* dgamma, T* dbeta, const T* dout,
                                           const int32_t* win, const T* in, const T* mean,
                                           const T* invstd, const T* gamma, const BatchNormShape& s,
                                           int64_t h, int64_t w);
// g (planes x H*W) = the gradient at the BN output as above, for the paths that run the BN
// backward on a full-size gradient (evaluation mode, synchronized BatchNorm).
template <typename T>
void relu_maxpool_scatter(T* g, const T* dout, const int32_t* win, int64_t planes, int64_t h, int64_t w);

}  // namespace normnet::kernels

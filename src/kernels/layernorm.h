// Layer normalization (torch.nn.LayerNorm) over a (R, D) view of a contiguous tensor: the
// trailing dimensions named by normalized_shape flatten to D = their product, the leading ones
// to R rows (an (N, C, H, W) input with normalized_shape [C, H, W] is R = N, D = C*H*W; with
// [W], R = N*C*H, D = W). Each row is normalized over its D values; the affine weight and bias
// have one value per position j of normalized_shape (D values), not per channel.
//
// Forward (the same in training and evaluation: the statistics are always the row's own):
//   mean_r = (1/D) sum_j x_rj       var_r = (1/D) sum_j (x_rj - mean_r)^2      (biased)
//   invstd_r = 1 / sqrt(var_r + eps),  xhat_rj = (x_rj - mean_r) * invstd_r
//   y_rj = xhat_rj * gamma_j + beta_j          (gamma = 1, beta = 0 without elementwise_affine)
// Row sums run in double, shifted by the row's first value, in increasing j on one thread.
//
// Backward. As for GroupNorm (groupnorm.h) with a group = a row, d xhat_ri / d x_rj =
// invstd_r * ([i == j] - 1/D - xhat_ri xhat_rj / D); with g_rj = gamma_j * dy_rj:
//   dx_rj = invstd_r * (g_rj - (1/D) sum_i g_ri - xhat_rj (1/D) sum_i g_ri xhat_ri)
//   dbeta_j = sum_r dy_rj             dgamma_j = sum_r dy_rj * xhat_rj
// din: one row per task, evaluated in double before its final rounding (the terms cancel
// almost exactly in short rows; see groupnorm.h). dgamma/dbeta: one block of positions j per task,
// each summed over the rows in increasing r; every sum has one fixed order whatever the thread
// count.
//
// dgamma and dbeta accumulate (+=) and may be null (no affine); din is overwritten and may be
// null.
#pragma once
#include <cstdint>

namespace normnet::kernels {

struct LayerNormShape {
  int64_t rows = 1;  // R: product of the leading (not normalized) dimensions
  int64_t cols = 1;  // D: product of normalized_shape
};

// Writes out, and per row: mean, var (biased), invstd.
template <typename T>
void layernorm_forward(T* out, T* mean, T* var, T* invstd, const T* in, const T* gamma,
                       const T* beta, double eps, const LayerNormShape& s);

template <typename T>
void layernorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean,
                        const T* invstd, const T* gamma, const LayerNormShape& s);

}  // namespace normnet::kernels

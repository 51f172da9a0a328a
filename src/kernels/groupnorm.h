// Group normalization over (N, C, S) tensors, S = the product of the spatial sizes (1 for
// (N, C)). The C channels are split into G groups of Cg = C / G consecutive channels; each
// (sample n, group g) is normalized over its D = Cg * S values, which are contiguous in memory
// (channels g*Cg .. (g+1)*Cg - 1 of sample n). torch.nn.GroupNorm, and with G = C
// torch.nn.InstanceNorm1d/2d in training mode (or without running statistics): InstanceNorm
// runs through these kernels with groups = channels, one group per (sample, channel).
//
// Forward (there is no separate evaluation mode: the statistics are always the input's own):
//   mean_ng = (1/D) sum x           var_ng = (1/D) sum (x - mean_ng)^2     (biased)
//   invstd_ng = 1 / sqrt(var_ng + eps)
//   xhat = (x - mean_ng) * invstd_ng
//   y = xhat * gamma_c + beta_c     (per-channel affine; gamma = 1, beta = 0 without affine)
// Sums run in double, shifted by the group's first value (a large mean costs no precision), in
// one fixed order (channel, then position) on one thread per (n, g): the statistics and the
// output do not depend on the thread count.
//
// Backward. Within one group (D values, mean and invstd depending on every x_j of the group):
//   d mean / d x_j = 1/D,   d var / d x_j = 2 (x_j - mean) / D,
//   d invstd / d x_j = -invstd^3 (x_j - mean) / D = -invstd^2 xhat_j / D,
//   d xhat_i / d x_j = invstd * ([i == j] - 1/D - xhat_i xhat_j / D).
// With g_i = gamma_c(i) * dy_i (the gradient reaching xhat_i):
//   dx_j = sum_i g_i d xhat_i / d x_j
//        = invstd * (g_j - (1/D) sum_i g_i - xhat_j (1/D) sum_i g_i xhat_i)
// and, per channel over every sample and position of that channel:
//   dbeta_c = sum_{n,s} dy        dgamma_c = sum_{n,s} dy * xhat.
// Implementation: per (n, c), sum_dy[n,c] = sum_s dy and sum_dy_xc[n,c] = sum_s dy * (x - mean_ng)
// (double, one thread per (n, g)); the group sums are then sum_c gamma_c * sum_dy[n,c] and
// invstd * sum_c gamma_c * sum_dy_xc[n,c]. dx is evaluated in double before its final rounding:
// its terms cancel almost exactly in small groups (exactly when D = 1, where y = beta whatever
// x and dx = 0; on D = 2 values xhat = +-1 and dx ~ 0). dgamma_c and dbeta_c add the
// per-sample sums over n in increasing order (one thread per channel), so the parameter
// gradients are deterministic too.
//
// dgamma and dbeta accumulate (+=) and may be null (affine off); din is overwritten and may be
// null (parameter gradients only).
#pragma once
#include <cstdint>

namespace normnet::kernels {

struct GroupNormShape {
  int64_t n = 1, c = 1, spatial = 1, groups = 1;  // requires c % groups == 0
  int64_t channels_per_group() const { return c / groups; }
  int64_t group_size() const { return c / groups * spatial; }  // D: values per (n, g)
};

// Writes out, and per (n, g) (index n * groups + g): mean, var (biased), invstd.
template <typename T>
void groupnorm_forward(T* out, T* mean, T* var, T* invstd, const T* in, const T* gamma,
                       const T* beta, double eps, const GroupNormShape& s);

template <typename T>
void groupnorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean,
                        const T* invstd, const T* gamma, const GroupNormShape& s);

// InstanceNorm running statistics, as torch.instance_norm updates them: every sample's
// statistics update its own copy of the running statistics, and the copies are averaged over
// the batch. That is, with the per-(n, c) statistics of groupnorm_forward (groups = channels)
// over S positions and factor = momentum:
//   running_mean_c = (1 - f) * running_mean_c + f * (1/N) sum_n mean_nc
//   running_var_c  = (1 - f) * running_var_c  + f * (1/N) sum_n var_nc * S / (S - 1)  (unbiased)
template <typename T>
void instancenorm_update_running(T* running_mean, T* running_var, const T* mean, const T* var,
                                 int64_t n, int64_t channels, int64_t spatial, double factor);

}  // namespace normnet::kernels

// Per-channel sums over an (N, C, S) tensor, shared by the batch-statistics kernels
// (BatchNorm, Batch Renormalization, the fused BN kernels). Each runs over n, then s, in that
// order, in double, so a channel's result never depends on the thread count.
#pragma once
#include <algorithm>
#include <cstdint>

namespace normnet::kernels {

struct ChannelMoments {
  double mean = 0.0;
  double var = 0.0;  // biased (divided by the count)
};

// Mean and biased variance of channel c over n samples. The sums are shifted by the channel's
// first value, which keeps E[x^2] - E[x]^2 exact enough when |mean| >> std.
template <typename T>
inline ChannelMoments channel_moments(const T* in, int64_t n, int64_t C, int64_t S, int64_t c) {
  const int64_t M = n * S;
  if (M == 0) return {};
  const double shift = static_cast<double>(in[c * S]);
  double s1 = 0.0, s2 = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    const T* x = in + (k * C + c) * S;
    for (int64_t i = 0; i < S; ++i) {
      const double d = static_cast<double>(x[i]) - shift;
      s1 += d;
      s2 += d * d;
    }
  }
  const double m = s1 / static_cast<double>(M);
  return {shift + m, std::max(0.0, (s2 - s1 * m) / static_cast<double>(M))};
}

struct ChannelGradSums {
  double sum_dy = 0.0;     // sum of dy
  double sum_dy_xc = 0.0;  // sum of dy * (x - mean)
};

template <typename T>
inline ChannelGradSums channel_grad_sums(const T* dout, const T* in, double mean, int64_t n,
                                         int64_t C, int64_t S, int64_t c) {
  ChannelGradSums r;
  for (int64_t k = 0; k < n; ++k) {
    const T* x = in + (k * C + c) * S;
    const T* dy = dout + (k * C + c) * S;
    for (int64_t i = 0; i < S; ++i) {
      r.sum_dy += dy[i];
      r.sum_dy_xc += static_cast<double>(dy[i]) * (static_cast<double>(x[i]) - mean);
    }
  }
  return r;
}

}  // namespace normnet::kernels

// Per-channel sums and per-row loops shared by the batch-statistics kernels (BatchNorm, Batch
// Renormalization, the fused BN kernels, GroupNorm, LayerNorm).
//
// Sums run in double over 16 lanes: element k of the array (k counted from the pointer the
// caller passes, the tensor's start for BatchNorm) goes to lane k % 16, each lane adds its
// elements in increasing k, and the 16 lanes are added in order 0..15 at the end. The order is
// fixed by the data layout alone, so a channel's result never depends on the thread count (a
// channel is never split across threads), and 16 independent lanes let the loop run at vector
// width instead of one dependent addition per element.
//
// The float versions are compiled for AVX-512, AVX2+FMA and baseline x86-64 and chosen at run
// time (channel_stats.cpp); double uses the generic templates below (the gradient checks). A
// machine with another instruction set may round the sums of squares differently (a fused
// multiply-add), never differently between thread counts on one machine.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace normnet::kernels {

constexpr int kLanes = 16;

struct LaneSums {
  alignas(64) double a[kLanes] = {};
  alignas(64) double b[kLanes] = {};
  double total_a() const {
    double t = 0.0;
    for (int l = 0; l < kLanes; ++l) t += a[l];
    return t;
  }
  double total_b() const {
    double t = 0.0;
    for (int l = 0; l < kLanes; ++l) t += b[l];
    return t;
  }
};

// Elements [begin, end) of x: a += d, b += d * d with d = x - shift (in double).
template <typename T>
inline void moments_add(LaneSums& s, const T* x, int64_t begin, int64_t end, double shift) {
  for (int64_t k = begin; k < end; ++k) {
    const double d = static_cast<double>(x[k]) - shift;
    s.a[k % kLanes] += d;
    s.b[k % kLanes] += d * d;
  }
}
void moments_add(LaneSums& s, const float* x, int64_t begin, int64_t end, double shift);

// Elements [begin, end): with g = dy (or, given a ReLU mask, dy where bit k of the mask is set
// and 0 elsewhere; see batchnorm_relu.h), a += g and b += g * (x - mean), in double.
template <typename T>
inline void grad_sums_add(LaneSums& s, const T* dy, const T* x, const uint64_t* mask, int64_t begin,
                          int64_t end, double mean) {
  for (int64_t k = begin; k < end; ++k) {
    const T g = !mask || ((mask[k >> 6] >> (k & 63)) & 1u) ? dy[k] : T(0);
    s.a[k % kLanes] += static_cast<double>(g);
    s.b[k % kLanes] += static_cast<double>(g) * (static_cast<double>(x[k]) - mean);
  }
}
void grad_sums_add(LaneSums& s, const float* dy, const float* x, const uint64_t* mask, int64_t begin,
                   int64_t end, double mean);

// y[k] = (x[k] - mu) * alpha + offset for k in [begin, end): the normalization of every
// BN-like layer. (x - mu) first: for |mean| >> std the subtraction is exact, x * alpha would
// not be. Elements are classified by position (the aligned 16-blocks inside [begin, end) take
// the vector path), so every kernel that normalizes element k rounds it the same way.
template <typename T>
inline void normalize_range(T* y, const T* x, int64_t begin, int64_t end, T mu, T alpha, T offset) {
  for (int64_t k = begin; k < end; ++k) y[k] = (x[k] - mu) * alpha + offset;
}
void normalize_range(float* y, const float* x, int64_t begin, int64_t end, float mu, float alpha,
                     float offset);

// The fused BN (+ residual) + ReLU output over [begin, end), a range inside one 64-element
// mask word: t = (x - mu) * alpha + offset (+ residual), y = t < 0 ? 0 : t (as relu_forward and
// torch.relu: -0 and NaN pass); returns the mask bits (bit k % 64 set where !(t <= 0), the
// elements relu_backward passes the gradient at: positives and NaN).
template <typename T>
inline uint64_t normalize_relu_range(T* y, const T* x, const T* residual, int64_t begin, int64_t end,
                                     T mu, T alpha, T offset) {
  uint64_t bits = 0;
  for (int64_t k = begin; k < end; ++k) {
    T t = (x[k] - mu) * alpha + offset;
    if (residual) t = t + residual[k];
    y[k] = t < T(0) ? T(0) : t;  // as relu_forward: -0 and NaN pass
    bits |= static_cast<uint64_t>(!(t <= T(0))) << (k & 63);
  }
  return bits;
}
uint64_t normalize_relu_range(float* y, const float* x, const float* residual, int64_t begin,
                              int64_t end, float mu, float alpha, float offset);

// normalize_relu_range without the mask bits (and without a residual), for any range: the
// same values, element for element.
template <typename T>
inline void normalize_relu_values(T* y, const T* x, int64_t begin, int64_t end, T mu, T alpha, T offset) {
  for (int64_t k = begin; k < end; ++k) {
    const T t = (x[k] - mu) * alpha + offset;
    y[k] = t < T(0) ? T(0) : t;
  }
}
void normalize_relu_values(float* y, const float* x, int64_t begin, int64_t end, float mu, float alpha,
                           float offset);

// The training-mode input gradient of BN: dx[k] = g * k_dy - (x[k] - mu) * k_x + k_0 for k in
// [begin, end), g as in grad_sums_add (mask may be null). dresidual, if not null, gets g.
template <typename T>
inline void bn_dx_add(T* dx, T* dresidual, const T* dy, const T* x, const uint64_t* mask,
                      int64_t begin, int64_t end, T k_dy, T mu, T k_x, T k_0) {
  for (int64_t k = begin; k < end; ++k) {
    const T g = !mask || ((mask[k >> 6] >> (k & 63)) & 1u) ? dy[k] : T(0);
    if (dresidual) dresidual[k] = g;
    if (dx) dx[k] = g * k_dy - (x[k] - mu) * k_x + k_0;
  }
}
void bn_dx_add(float* dx, float* dresidual, const float* dy, const float* x, const uint64_t* mask,
               int64_t begin, int64_t end, float k_dy, float mu, float k_x, float k_0);

struct ChannelMoments {
  double mean = 0.0;
  double var = 0.0;  // biased (divided by the count)
};

// Mean and biased variance of channel c of an (n, C, S) tensor. The sums are shifted by the
// channel's first value, which keeps E[x^2] - E[x]^2 exact enough when |mean| >> std.
template <typename T>
inline ChannelMoments channel_moments(const T* in, int64_t n, int64_t C, int64_t S, int64_t c) {
  const int64_t M = n * S;
  if (M == 0) return {};
  const double shift = static_cast<double>(in[c * S]);
  LaneSums s;
  for (int64_t k = 0; k < n; ++k) moments_add(s, in, (k * C + c) * S, (k * C + c + 1) * S, shift);
  const double s1 = s.total_a(), s2 = s.total_b();
  const double m = s1 / static_cast<double>(M);
  return {shift + m, std::max(0.0, (s2 - s1 * m) / static_cast<double>(M))};
}

struct ChannelGradSums {
  double sum_dy = 0.0;     // sum of g
  double sum_dy_xc = 0.0;  // sum of g * (x - mean)
};

// mask: a ReLU mask over the whole tensor (batchnorm_relu.h) or null.
template <typename T>
inline ChannelGradSums channel_grad_sums(const T* dout, const T* in, double mean, int64_t n,
                                         int64_t C, int64_t S, int64_t c,
                                         const uint64_t* mask = nullptr) {
  LaneSums s;
  for (int64_t k = 0; k < n; ++k)
    grad_sums_add(s, dout, in, mask, (k * C + c) * S, (k * C + c + 1) * S, mean);
  return {s.total_a(), s.total_b()};
}

// Channels [begin, end) of an (n, C, S) tensor, for the block-wise versions below.
struct ChannelBlock {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// This thread's channels inside a parallel region: C split into contiguous blocks, one per
// thread (some may be empty). A channel is still summed by one thread in one order, so the
// results stay those of channel_moments / channel_grad_sums for any thread count; what the
// blocks change is the memory order: the block-wise loops below run over the samples outside
// and the block's channels inside, reading one sample's run of planes after another instead
// of one short plane per channel and sample, which the hardware prefetchers follow far better.
ChannelBlock thread_channels(int64_t C);

// channel_moments for every channel of the block: mv[c - b.begin], the same bits.
template <typename T>
inline void block_moments(ChannelMoments* mv, const T* in, int64_t n, int64_t C, int64_t S, ChannelBlock b) {
  const int64_t M = n * S;
  if (M == 0) {
    for (int64_t c = b.begin; c < b.end; ++c) mv[c - b.begin] = {};
    return;
  }
  std::vector<LaneSums> s(static_cast<size_t>(b.size()));
  std::vector<double> shift(static_cast<size_t>(b.size()));
  for (int64_t c = b.begin; c < b.end; ++c) shift[c - b.begin] = static_cast<double>(in[c * S]);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t c = b.begin; c < b.end; ++c)
      moments_add(s[c - b.begin], in, (k * C + c) * S, (k * C + c + 1) * S, shift[c - b.begin]);
  for (int64_t c = b.begin; c < b.end; ++c) {
    const double s1 = s[c - b.begin].total_a(), s2 = s[c - b.begin].total_b();
    const double m = s1 / static_cast<double>(M);
    mv[c - b.begin] = {shift[c - b.begin] + m, std::max(0.0, (s2 - s1 * m) / static_cast<double>(M))};
  }
}

// channel_grad_sums for every channel of the block (mean: the whole tensor's C means).
template <typename T>
inline void block_grad_sums(ChannelGradSums* gs, const T* dout, const T* in, const T* mean, int64_t n,
                            int64_t C, int64_t S, ChannelBlock b, const uint64_t* mask = nullptr) {
  std::vector<LaneSums> s(static_cast<size_t>(b.size()));
  for (int64_t k = 0; k < n; ++k)
    for (int64_t c = b.begin; c < b.end; ++c)
      grad_sums_add(s[c - b.begin], dout, in, mask, (k * C + c) * S, (k * C + c + 1) * S,
                    static_cast<double>(mean[c]));
  for (int64_t c = b.begin; c < b.end; ++c) gs[c - b.begin] = {s[c - b.begin].total_a(), s[c - b.begin].total_b()};
}

}  // namespace normnet::kernels

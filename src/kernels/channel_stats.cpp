// float versions of channel_stats.h's loops, compiled for AVX-512, AVX2+FMA and baseline x86-64
// (chosen at run time). They compute what the generic templates compute, lane for lane: the
// aligned middle runs 16 elements (one per lane) per iteration with GCC vector extensions, the
// ragged head and tail run element by element into the same lanes.
#include "kernels/channel_stats.h"
#include "kernels/multiversion.h"

#include <omp.h>

#include <cstring>

namespace normnet::kernels {

#pragma GCC diagnostic ignored "-Wpsabi"
typedef float f16 __attribute__((vector_size(64)));
typedef int32_t i16 __attribute__((vector_size(64)));

namespace {

NORMNET_INLINE f16 load(const float* p) {
  f16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
NORMNET_INLINE void store(float* p, f16 v) { std::memcpy(p, &v, sizeof v); }
typedef double d8 __attribute__((vector_size(64)));
NORMNET_INLINE d8 load8d(const double* p) {
  d8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
NORMNET_INLINE void store8d(double* p, d8 v) { std::memcpy(p, &v, sizeof v); }

// The 16 mask bits of elements [k, k + 16), k a multiple of 16, as all-ones / zero lanes.
NORMNET_INLINE i16 mask_lanes(const uint64_t* mask, int64_t k) {
  const int32_t bits = static_cast<int32_t>((mask[k >> 6] >> (k & 63)) & 0xffffu);
  const i16 one = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  return (bits & one) != 0;
}

NORMNET_INLINE int64_t head_end(int64_t begin, int64_t end) {
  return std::min(end, (begin + kLanes - 1) / kLanes * kLanes);
}

}  // namespace

ChannelBlock thread_channels(int64_t C) {
  const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
  return {C * t / T, C * (t + 1) / T};
}

// The lane sums run as two 8-double halves (lanes 0-7, 8-15): GCC keeps those in registers,
// while 16-double vectors it kept on the stack, a store and reload in every iteration's
// dependency chain (3x slower). Lane for lane the same additions.
// The conversion goes through one 16-double vector: GCC 12 compiles that to two vcvtps2pd
// (8 floats -> 8 doubles each) on AVX-512, where converting each 8-float half on its own became
// four 4-wide conversions with inserts and extracts (the sums ran 1.5x slower).
typedef double d16 __attribute__((vector_size(128)));
struct Halves {
  d8 lo, hi;
};
NORMNET_INLINE Halves halves(f16 v) {
  const d16 w = __builtin_convertvector(v, d16);
  return {__builtin_shufflevector(w, w, 0, 1, 2, 3, 4, 5, 6, 7),
          __builtin_shufflevector(w, w, 8, 9, 10, 11, 12, 13, 14, 15)};
}

// A range's ragged ends (a plane of 196 values has up to 30) go through the vector code too, as
// one 16-block each: the valid elements copied to a zeroed block (nothing is read outside the
// range), and the other lanes adding exactly 0. Each lane still receives its elements in
// increasing k, and a lane sum, which starts at +0, is never -0, so adding +0 (or 0 * a finite
// value) leaves it unchanged: the same sums as element by element, much faster for small planes.
typedef int64_t l8 __attribute__((vector_size(64)));

// Lanes [lo, hi) of a block, as all-ones / zero 64-bit lanes for the two halves.
NORMNET_INLINE void valid_lanes(int64_t lo, int64_t hi, l8& v0, l8& v1) {
  const l8 i0 = {0, 1, 2, 3, 4, 5, 6, 7}, i1 = i0 + 8;
  v0 = (i0 >= lo) & (i0 < hi);
  v1 = (i1 >= lo) & (i1 < hi);
}

// Splits [begin, end) into the partial block at its start, the whole 16-blocks, and the partial
// block at its end: whole(k) for each whole block at k, part(k0, lo, hi) for lanes [lo, hi) of
// the block at k0.
template <typename Whole, typename Part>
NORMNET_INLINE void blocks(int64_t begin, int64_t end, Whole whole, Part part) {
  if (begin >= end) return;
  int64_t k = begin;
  if (k % kLanes) {
    const int64_t k0 = k - k % kLanes, stop = std::min(end, k0 + kLanes);
    part(k0, k - k0, stop - k0);
    k = stop;
  }
  for (; k + kLanes <= end; k += kLanes) whole(k);
  if (k < end) part(k, int64_t{0}, end - k);
}

NORMNET_INLINE void moments_step(f16 v, d8 sh, d8& a0, d8& a1, d8& b0, d8& b1, l8 v0, l8 v1) {
  const Halves h = halves(v);
  const d8 d0 = reinterpret_cast<d8>(reinterpret_cast<l8>(h.lo - sh) & v0);
  const d8 d1 = reinterpret_cast<d8>(reinterpret_cast<l8>(h.hi - sh) & v1);
  a0 += d0;
  a1 += d1;
  b0 += d0 * d0;
  b1 += d1 * d1;
}

NORMNET_MULTIVERSION
void moments_add(LaneSums& s, const float* x, int64_t begin, int64_t end, double shift) {
  d8 a0 = load8d(s.a), a1 = load8d(s.a + 8), b0 = load8d(s.b), b1 = load8d(s.b + 8);
  const d8 sh = shift - d8{};
  const l8 all = l8{} - 1;
  blocks(
      begin, end, [&](int64_t k) { moments_step(load(x + k), sh, a0, a1, b0, b1, all, all); },
      [&](int64_t k0, int64_t lo, int64_t hi) {
        float t[kLanes] = {};
        for (int64_t l = lo; l < hi; ++l) t[l] = x[k0 + l];
        l8 v0, v1;
        valid_lanes(lo, hi, v0, v1);
        moments_step(load(t), sh, a0, a1, b0, b1, v0, v1);
      });
  store8d(s.a, a0), store8d(s.a + 8, a1), store8d(s.b, b0), store8d(s.b + 8, b1);
}

// Invalid lanes have g = 0 and x - mean masked to 0 (even for a non-finite mean).
NORMNET_INLINE void grad_step(f16 g, f16 v, d8 m, d8& a0, d8& a1, d8& b0, d8& b1, l8 v0, l8 v1) {
  const Halves gh = halves(g), vh = halves(v);
  a0 += gh.lo;
  a1 += gh.hi;
  b0 += gh.lo * reinterpret_cast<d8>(reinterpret_cast<l8>(vh.lo - m) & v0);
  b1 += gh.hi * reinterpret_cast<d8>(reinterpret_cast<l8>(vh.hi - m) & v1);
}

NORMNET_MULTIVERSION
void grad_sums_add(LaneSums& s, const float* dy, const float* x, const uint64_t* mask, int64_t begin,
                   int64_t end, double mean) {
  d8 a0 = load8d(s.a), a1 = load8d(s.a + 8), b0 = load8d(s.b), b1 = load8d(s.b + 8);
  const d8 m = mean - d8{};
  const l8 all = l8{} - 1;
  blocks(
      begin, end,
      [&](int64_t k) {
        f16 g = load(dy + k);
        if (mask) g = reinterpret_cast<f16>(reinterpret_cast<i16>(g) & mask_lanes(mask, k));
        grad_step(g, load(x + k), m, a0, a1, b0, b1, all, all);
      },
      [&](int64_t k0, int64_t lo, int64_t hi) {
        float tg[kLanes] = {}, tx[kLanes] = {};
        for (int64_t l = lo; l < hi; ++l) {
          const int64_t k = k0 + l;
          tg[l] = !mask || ((mask[k >> 6] >> (k & 63)) & 1u) ? dy[k] : 0.0f;
          tx[l] = x[k];
        }
        l8 v0, v1;
        valid_lanes(lo, hi, v0, v1);
        grad_step(load(tg), load(tx), m, a0, a1, b0, b1, v0, v1);
      });
  store8d(s.a, a0), store8d(s.a + 8, a1), store8d(s.b, b0), store8d(s.b + 8, b1);
}

NORMNET_MULTIVERSION
void normalize_range(float* y, const float* x, int64_t begin, int64_t end, float mu, float alpha,
                     float offset) {
  int64_t k = head_end(begin, end);
  normalize_range<float>(y, x, begin, k, mu, alpha, offset);
  for (; k + kLanes <= end; k += kLanes) store(y + k, (load(x + k) - mu) * alpha + offset);
  normalize_range<float>(y, x, k, end, mu, alpha, offset);
}

NORMNET_MULTIVERSION
uint64_t normalize_relu_range(float* y, const float* x, const float* residual, int64_t begin,
                              int64_t end, float mu, float alpha, float offset) {
  int64_t k = head_end(begin, end);
  uint64_t bits = normalize_relu_range<float>(y, x, residual, begin, k, mu, alpha, offset);
  const i16 one = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  for (; k + kLanes <= end; k += kLanes) {
    f16 t = (load(x + k) - mu) * alpha + offset;
    if (residual) t = t + load(residual + k);
    const i16 pass = ~(t <= 0.0f);
    store(y + k, reinterpret_cast<f16>(reinterpret_cast<i16>(t) & ~(t < 0.0f)));
    const i16 b = pass & one;
    int32_t word = 0;
    for (int j = 0; j < kLanes; ++j) word |= b[j];
    bits |= static_cast<uint64_t>(static_cast<uint32_t>(word)) << (k & 63);
  }
  return bits | normalize_relu_range<float>(y, x, residual, k, end, mu, alpha, offset);
}

NORMNET_MULTIVERSION
void normalize_relu_values(float* y, const float* x, int64_t begin, int64_t end, float mu, float alpha,
                           float offset) {
  int64_t k = head_end(begin, end);
  normalize_relu_values<float>(y, x, begin, k, mu, alpha, offset);
  for (; k + kLanes <= end; k += kLanes) {
    const f16 t = (load(x + k) - mu) * alpha + offset;
    store(y + k, reinterpret_cast<f16>(reinterpret_cast<i16>(t) & ~(t < 0.0f)));
  }
  normalize_relu_values<float>(y, x, k, end, mu, alpha, offset);
}

NORMNET_MULTIVERSION
void bn_dx_add(float* dx, float* dresidual, const float* dy, const float* x, const uint64_t* mask,
               int64_t begin, int64_t end, float k_dy, float mu, float k_x, float k_0) {
  int64_t k = head_end(begin, end);
  bn_dx_add<float>(dx, dresidual, dy, x, mask, begin, k, k_dy, mu, k_x, k_0);
  for (; k + kLanes <= end; k += kLanes) {
    f16 g = load(dy + k);
    if (mask) g = reinterpret_cast<f16>(reinterpret_cast<i16>(g) & mask_lanes(mask, k));
    if (dresidual) store(dresidual + k, g);
    if (dx) store(dx + k, g * k_dy - (load(x + k) - mu) * k_x + k_0);
  }
  bn_dx_add<float>(dx, dresidual, dy, x, mask, k, end, k_dy, mu, k_x, k_0);
}

}  // namespace normnet::kernels

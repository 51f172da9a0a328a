// Float convolution on the padded input in place of im2col (conv2d_direct.h).
#include "kernels/conv2d_direct.h"

#include <algorithm>

#include "kernels/multiversion.h"
#include "kernels/vec16.h"

namespace normnet::kernels::direct {

namespace {

constexpr int64_t kMR = 8;  // rows of a register tile

}  // namespace

void tap_offsets(std::vector<int64_t>& off, const Plan& p) {
  off.resize(static_cast<size_t>(p.taps()));
  const int64_t plane = p.hp() * p.wp();
  for (int64_t c = 0, k = 0; c < p.cin; ++c)
    for (int64_t i = 0; i < p.kh; ++i)
      for (int64_t j = 0; j < p.kw; ++j)
        off[k++] = p.strided() ? (c * p.phases() + (i % p.sh) * p.sw + j % p.sw) * plane +
                                     (i / p.sh) * p.wp() + j / p.sw
                               : c * plane + i * p.dh * p.wp() + j * p.dw;
}

namespace {

// The phase planes of a strided layer (conv2d_direct.h), then zero slack. Column t of phase b
// holds input column t*sw + b - pw, inside the input for t in [lo, hi) (computed once per phase
// instead of testing every element).
NORMNET_MULTIVERSION void phase_planes(float* d, const float* x, const Plan& p) {
  const int64_t hp = p.hp(), wp = p.wp();
  for (int64_t b = 0; b < p.sw; ++b) {
    const int64_t first = b - p.pw;  // input column of t = 0
    const int64_t lo = std::min(wp, first >= 0 ? 0 : (-first + p.sw - 1) / p.sw);
    const int64_t hi = std::max(lo, std::min(wp, p.w - first <= 0 ? 0 : (p.w - first + p.sw - 1) / p.sw));
    for (int64_t c = 0; c < p.cin; ++c)
      for (int64_t a = 0; a < p.sh; ++a) {
        float* plane = d + (c * p.phases() + a * p.sw + b) * hp * wp;
        for (int64_t r = 0; r < hp; ++r) {
          const int64_t iy = r * p.sh + a - p.ph;
          float* row = plane + r * wp;
          if (iy < 0 || iy >= p.h) {
            for (int64_t t = 0; t < wp; ++t) row[t] = 0.0f;
            continue;
          }
          const float* src = x + (c * p.h + iy) * p.w + first;
          for (int64_t t = 0; t < lo; ++t) row[t] = 0.0f;
          for (int64_t t = lo; t < hi; ++t) row[t] = src[t * p.sw];
          for (int64_t t = hi; t < wp; ++t) row[t] = 0.0f;
        }
      }
  }
  for (int64_t k = p.cin * p.phases() * hp * wp; k < p.padded_size(); ++k) d[k] = 0.0f;
}

// xpad = x with ph rows of zeros above and below every plane and pw zeros before every row,
// then zero slack.
// Rows are short (7 to 56 floats): plain loops, not a library call per row.
NORMNET_MULTIVERSION void pad_planes(float* d, const float* x, const Plan& p) {
  const int64_t hp = p.hp(), wp = p.wp();
  for (int64_t c = 0; c < p.cin; ++c) {
    float* plane = d + c * hp * wp;
    for (int64_t k = 0; k < p.ph * wp; ++k) plane[k] = 0.0f;
    for (int64_t y = 0; y < p.h; ++y) {
      float* row = plane + (y + p.ph) * wp;
      const float* src = x + (c * p.h + y) * p.w;
      for (int64_t j = 0; j < p.pw; ++j) row[j] = 0.0f;
      for (int64_t j = 0; j < p.w; ++j) row[p.pw + j] = src[j];
    }
    float* below = plane + (p.ph + p.h) * wp;
    for (int64_t k = 0; k < p.ph * wp; ++k) below[k] = 0.0f;
  }
  for (int64_t k = p.cin * hp * wp; k < p.padded_size(); ++k) d[k] = 0.0f;
}

void pad_input(std::vector<float>& xpad, const float* x, const Plan& p) {
  xpad.resize(static_cast<size_t>(p.padded_size()));
  if (p.strided())
    phase_planes(xpad.data(), x, p);
  else
    pad_planes(xpad.data(), x, p);
}

// out (cout x oh x ow) = the valid columns of tile (rows of `cols` flat positions) + bias.
NORMNET_MULTIVERSION void compact(float* out, const float* tile, const float* bias, const Plan& p) {
  const int64_t oh = p.oh(), ow = p.ow(), wp = p.wp(), cols = p.cols();
  for (int64_t o = 0; o < p.cout; ++o) {
    const float* src = tile + o * cols;
    float* dst = out + o * oh * ow;
    if (bias) {
      const float b = bias[o];
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t x = 0; x < ow; ++x) dst[y * ow + x] = src[y * wp + x] + b;
    } else {
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t x = 0; x < ow; ++x) dst[y * ow + x] = src[y * wp + x];
    }
  }
}

// tile (kMR x 32, row stride ld) = wp (K x kMR, packed) * rows (row k at b + off[k], 32 wide).
NORMNET_INLINE void forward_tile(int64_t K, const float* wp, const float* b, const int64_t* off,
                                 float* tile, int64_t ld) {
  v16 c[kMR][2] = {};
  for (int64_t k = 0; k < K; ++k) {
    const float* r = b + off[k];
    const v16 b0 = load16(r), b1 = load16(r + 16);
#pragma GCC unroll 8
    for (int64_t i = 0; i < kMR; ++i) {
      const float a = wp[k * kMR + i];
      c[i][0] += a * b0;
      c[i][1] += a * b1;
    }
  }
#pragma GCC unroll 8
  for (int64_t i = 0; i < kMR; ++i) {
    store16(tile + i * ld, c[i][0]);
    store16(tile + i * ld + 16, c[i][1]);
  }
}

NORMNET_MULTIVERSION void forward_all(float* tile, const float* xpad, const float* wpacked,
                                      const int64_t* off, const Plan& p) {
  const int64_t K = p.taps(), cols = p.cols(), tiles = (p.cout + kMR - 1) / kMR;
  for (int64_t j0 = 0; j0 < cols; j0 += 32)
    for (int64_t t = 0; t < tiles; ++t)
      forward_tile(K, wpacked + t * K * kMR, xpad + j0, off, tile + t * kMR * cols + j0, cols);
}

// acc (kMR x 16*NV) = sum over positions of a_i (input rows) * b (packed dy^T rows); dw += acc.
template <int NV>
NORMNET_INLINE void weight_tile(const float* const* a, const float* b, int64_t ldb,
                                const Plan& p, float* dw, int64_t ldw, int64_t rows) {
  v16 c[kMR][NV] = {};
  const int64_t oh = p.oh(), ow = p.ow(), wp = p.wp();
  for (int64_t y = 0; y < oh; ++y)
    for (int64_t x = 0; x < ow; ++x) {
      const int64_t q = y * wp + x;
      const float* br = b + (y * ow + x) * ldb;
      v16 bv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = load16(br + 16 * v);
#pragma GCC unroll 8
      for (int64_t i = 0; i < kMR; ++i) {
        const float s = a[i][q];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) c[i][v] += s * bv[v];
      }
    }
  for (int64_t i = 0; i < rows; ++i)
    for (int v = 0; v < NV; ++v) store16(dw + i * ldw + 16 * v, load16(dw + i * ldw + 16 * v) + c[i][v]);
}

// dwt (K x cpad, cpad = cout rounded up to 16) += col(xpad) * dyt.
NORMNET_MULTIVERSION void weight_all(float* dwt, int64_t cpad, const float* xpad,
                                     const float* dyt, const int64_t* off, const Plan& p) {
  const int64_t K = p.taps();
  const float* a[kMR];
  for (int64_t k0 = 0; k0 < K; k0 += kMR) {
    const int64_t rows = std::min(kMR, K - k0);
    for (int64_t i = 0; i < kMR; ++i) a[i] = xpad + off[std::min(k0 + i, K - 1)];
    int64_t o0 = 0;
    for (; o0 + 32 <= cpad; o0 += 32) weight_tile<2>(a, dyt + o0, cpad, p, dwt + k0 * cpad + o0, cpad, rows);
    if (o0 < cpad) weight_tile<1>(a, dyt + o0, cpad, p, dwt + k0 * cpad + o0, cpad, rows);
  }
}

// dyt (P x cpad) = dy (cout x P)^T with zero columns from cout to cpad (a multiple of 16), in
// 16 x 16 blocks; bsum (if not null) [o] = sum16(dy row o, P) from the same loads: the vector
// adds of a row's aligned 16-blocks in order, then its tail into lanes q % 16.
NORMNET_MULTIVERSION void transpose_dy(float* dyt, float* bsum, const float* dy, int64_t cout,
                                       int64_t P, int64_t cpad) {
  for (int64_t o0 = 0; o0 < cpad; o0 += 16) {
    const int64_t rows = std::min<int64_t>(16, cout - o0);
    v16 acc[16] = {};
    int64_t q0 = 0;
    for (; q0 + 16 <= P; q0 += 16) {
      v16 r[16];
#pragma GCC unroll 16
      for (int64_t i = 0; i < 16; ++i) {
        r[i] = i < rows ? load16(dy + (o0 + i) * P + q0) : v16{};
        acc[i] += r[i];
      }
      transpose16(r);
#pragma GCC unroll 16
      for (int64_t i = 0; i < 16; ++i) store16(dyt + (q0 + i) * cpad + o0, r[i]);
    }
    for (int64_t q = q0; q < P; ++q)
      for (int64_t i = 0; i < 16; ++i) dyt[q * cpad + o0 + i] = i < rows ? dy[(o0 + i) * P + q] : 0.0f;
    if (!bsum) continue;
    for (int64_t i = 0; i < rows; ++i) {
      float lanes[16];
      store16(lanes, acc[i]);
      for (int64_t q = q0; q < P; ++q) lanes[q % 16] += dy[(o0 + i) * P + q];
      float total = 0.0f;
      for (int l = 0; l < 16; ++l) total += lanes[l];
      bsum[o0 + i] = total;
    }
  }
}

}  // namespace

NORMNET_MULTIVERSION float sum16(const float* x, int64_t n) {
  v16 acc = {};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) acc += load16(x + k);
  float lanes[16];
  store16(lanes, acc);
  for (; k < n; ++k) lanes[k % 16] += x[k];
  float total = 0.0f;
  for (int l = 0; l < 16; ++l) total += lanes[l];
  return total;
}

void pack_weights(std::vector<float>& packed, const float* weight, const Plan& p) {
  const int64_t K = p.taps(), tiles = (p.cout + kMR - 1) / kMR;
  packed.assign(static_cast<size_t>(tiles * K * kMR), 0.0f);
  for (int64_t o = 0; o < p.cout; ++o)
    for (int64_t k = 0; k < K; ++k) packed[((o / kMR) * K + k) * kMR + o % kMR] = weight[o * K + k];
}

void forward(float* out, const float* x, const float* wpacked, const int64_t* off, const float* bias,
             const Plan& p, std::vector<float>& xpad, std::vector<float>& tile) {
  pad_input(xpad, x, p);
  const int64_t cols = p.cols(), tiles = (p.cout + kMR - 1) / kMR;
  tile.resize(static_cast<size_t>(tiles * kMR * cols));
  forward_all(tile.data(), xpad.data(), wpacked, off, p);
  compact(out, tile.data(), bias, p);
}

void weight_grad_t(float* dw, float* bsum, const float* x, const float* dy, const int64_t* off,
                   const Plan& p, std::vector<float>& xpad, std::vector<float>& dyt) {
  pad_input(xpad, x, p);
  const int64_t P = p.oh() * p.ow(), cpad = (p.cout + 15) / 16 * 16, K = p.taps();
  dyt.resize(static_cast<size_t>(P * cpad));
  transpose_dy(dyt.data(), bsum, dy, p.cout, P, cpad);
  if (cpad == p.cout) {
    weight_all(dw, cpad, xpad.data(), dyt.data(), off, p);
    return;
  }
  std::vector<float> acc(static_cast<size_t>(K * cpad));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t o = 0; o < cpad; ++o) acc[k * cpad + o] = o < p.cout ? dw[k * p.cout + o] : 0.0f;
  weight_all(acc.data(), cpad, xpad.data(), dyt.data(), off, p);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t o = 0; o < p.cout; ++o) dw[k * p.cout + o] = acc[k * cpad + o];
}

}  // namespace normnet::kernels::direct

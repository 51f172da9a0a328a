// Winograd F(2x2, 3x3) convolution (conv2d_winograd.h).
#include "kernels/conv2d_winograd.h"

#include <algorithm>

#include "kernels/multiversion.h"
#include "kernels/vec16.h"

namespace normnet::kernels::winograd {

namespace {

constexpr double kG[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

// grid (gh x gw positions of C channels) = src (ch x H x W) placed at row py, column px, zeros
// around it (grid channels past ch are zero too). One row of 16 channels x 16 columns per register
// transpose; a load that would read past src_end is taken from a copy instead.
NORMNET_MULTIVERSION void to_grid(float* grid, int64_t gh, int64_t gw, int64_t C, int64_t py,
                                  int64_t px, const float* src, const float* src_end, int64_t ch,
                                  int64_t H, int64_t W) {
  const int64_t P = H * W;
  auto zero = [&](int64_t from, int64_t to) {  // positions [from, to) of the grid
    for (float *d = grid + from * C, *e = grid + to * C; d < e; d += 16) store16(d, v16{});
  };
  zero(0, py * gw);
  for (int64_t y = 0; y < H; ++y) {
    zero((py + y) * gw, (py + y) * gw + px);
    zero((py + y) * gw + px + W, (py + y + 1) * gw);
  }
  zero((py + H) * gw, gh * gw);
  for (int64_t c0 = 0; c0 < C; c0 += 16) {
    const int64_t rows = std::max<int64_t>(0, std::min<int64_t>(16, ch - c0));
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x0 = 0; x0 < W; x0 += 16) {
        const int64_t n = std::min<int64_t>(16, W - x0);
        v16 r[16];
#pragma GCC unroll 16
        for (int64_t i = 0; i < 16; ++i) {
          const float* a = src + (c0 + i) * P + y * W + x0;
          if (i >= rows) {
            r[i] = v16{};
          } else if (a + 16 <= src_end) {
            r[i] = load16(a);
          } else {
            float tmp[16] = {};
            for (int64_t k = 0; k < n; ++k) tmp[k] = a[k];
            r[i] = load16(tmp);
          }
        }
        transpose16(r);
        float* g = grid + ((py + y) * gw + px + x0) * C + c0;
#pragma GCC unroll 16
        for (int64_t k = 0; k < 16; ++k)  // constant indices keep r in registers
          if (k < n) store16(g + k * C, r[k]);
      }
  }
}

// V[e][t][c] = (B^T d B)[e] for every tile t and 16-channel block (e stride R*C).
NORMNET_MULTIVERSION void transform_input(float* V, const float* xt, const Plan& p) {
  const int64_t C = p.ci16(), tw = p.tw(), xw = 2 * tw + 2, es = p.tiles_padded() * C;
  for (int64_t ty = 0; ty < p.th(); ++ty)
    for (int64_t tx = 0; tx < tw; ++tx) {
      const int64_t t = ty * tw + tx;
      for (int64_t c0 = 0; c0 < C; c0 += 16) {
        const float* base = xt + (2 * ty * xw + 2 * tx) * C + c0;
        v16 r[4][4];
#pragma GCC unroll 4
        for (int a = 0; a < 4; ++a) {
          const float* row = base + a * xw * C;
          const v16 d0 = load16(row), d1 = load16(row + C), d2 = load16(row + 2 * C),
                    d3 = load16(row + 3 * C);
          r[a][0] = d0 - d2, r[a][1] = d1 + d2, r[a][2] = d2 - d1, r[a][3] = d1 - d3;
        }
        float* out = V + t * C + c0;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          store16(out + (0 * 4 + j) * es, r[0][j] - r[2][j]);
          store16(out + (1 * 4 + j) * es, r[1][j] + r[2][j]);
          store16(out + (2 * 4 + j) * es, r[2][j] - r[1][j]);
          store16(out + (3 * 4 + j) * es, r[1][j] - r[3][j]);
        }
      }
    }
}

// The micro-kernel of both GEMM stages: c (RM x 16*NV, row stride ldc) = (or += when add) the
// sum over k < K of a[r*ar + k*ak] * b[k*ldb + 0 .. 16*NV), one scalar of a per row and step
// broadcast against 16*NV columns of b, k in increasing order.
template <int RM, int NV>
NORMNET_INLINE void tile(const float* a, int64_t ar, int64_t ak, const float* b, int64_t ldb,
                         int64_t K, float* c, int64_t ldc, bool add) {
  v16 acc[RM][NV] = {};
  for (int64_t k = 0; k < K; ++k) {
    v16 bk[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bk[j] = load16(b + k * ldb + 16 * j);
    const float* ak0 = a + k * ak;
#pragma GCC unroll 28
    for (int r = 0; r < RM; ++r) {
      const float s = ak0[r * ar];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] += s * bk[j];
    }
  }
#pragma GCC unroll 28
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      store16(c + r * ldc + 16 * j, add ? load16(c + r * ldc + 16 * j) + acc[r][j] : acc[r][j]);
}

// M[e] = V[e] * U[e] for the 16 positions e.
template <int RM, int NV>
NORMNET_INLINE void gemm_positions(float* M, const float* V, const float* U, const Plan& p) {
  const int64_t C = p.ci16(), O = p.co16(), R = p.tiles_padded();
  for (int64_t e = 0; e < 16; ++e)
    for (int64_t t0 = 0; t0 < R; t0 += RM)
      for (int64_t o0 = 0; o0 < O; o0 += 16 * NV)
        tile<RM, NV>(V + (e * R + t0) * C, C, 1, U + e * C * O + o0, O, p.cin,
                     M + (e * R + t0) * O + o0, O, false);
}

NORMNET_MULTIVERSION void gemm_all(float* M, const float* V, const float* U, const Plan& p) {
  switch (p.gemm_rows()) {
    case 7: return gemm_positions<7, 4>(M, V, U, p);
    case 14: return gemm_positions<14, 2>(M, V, U, p);
    default: return gemm_positions<28, 1>(M, V, U, p);
  }
}

// out (cout x oh x ow) = (A^T M A) + bias for every tile: 8 tiles (16 output columns) of one
// tile row and 16 channels at a time, transposed in registers to channel rows. A full 16-wide
// store runs past the row end into positions not yet written (later rows), which is safe,
// except past the channel plane, or from the top row of a chunk after the first (the row below
// has had its first chunk written): those stores are cut to the columns inside the row.
NORMNET_MULTIVERSION void transform_output(float* out, const float* M, const float* bias,
                                           const Plan& p) {
  const int64_t O = p.co16(), tw = p.tw(), es = p.tiles_padded() * O;
  const int64_t oh = p.oh(), ow = p.ow(), P = oh * ow;
  for (int64_t o0 = 0; o0 < p.cout; o0 += 16) {
    const int64_t rows = std::min<int64_t>(16, p.cout - o0);
    v16 bv = {};
    if (bias)
      for (int64_t l = 0; l < rows; ++l) bv[l] = bias[o0 + l];
    for (int64_t ty = 0; ty < p.th(); ++ty)
      for (int64_t x0 = 0; x0 < ow; x0 += 16) {
        const int64_t n = std::min<int64_t>(16, ow - x0), nt = (n + 1) / 2;
        const float* m = M + (ty * tw + x0 / 2) * O + o0;
        for (int a = 0; a < 2 && 2 * ty + a < oh; ++a) {
          // Row a of A^T M A for tiles k < nt: from the sums over rows i of M, s_j = m0j + m1j +
          // m2j (a = 0) or m1j - m2j - m3j (a = 1), then over columns the same way.
          v16 r[16];
#pragma GCC unroll 8
          for (int k = 0; k < 8; ++k) {
            if (k >= nt) {
              r[2 * k] = r[2 * k + 1] = v16{};
              continue;
            }
            const float* mk = m + k * O;
            v16 sj[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
              const v16 m1 = load16(mk + (1 * 4 + j) * es), m2 = load16(mk + (2 * 4 + j) * es);
              sj[j] = a == 0 ? load16(mk + j * es) + m1 + m2 : m1 - m2 - load16(mk + (3 * 4 + j) * es);
            }
            r[2 * k] = sj[0] + sj[1] + sj[2] + bv;
            r[2 * k + 1] = sj[1] - sj[2] - sj[3] + bv;
          }
          transpose16(r);
          const int64_t at = (2 * ty + a) * ow + x0;
          const bool full = at + 16 <= P && !(a == 0 && x0 > 0 && x0 + 16 > ow);
#pragma GCC unroll 16
          for (int64_t i = 0; i < 16; ++i) {  // constant indices keep r in registers
            if (i >= rows) continue;
            float* d = out + (o0 + i) * P + at;
            if (full) {
              store16(d, r[i]);
            } else {
              float tmp[16];
              store16(tmp, r[i]);
              for (int64_t k = 0; k < n; ++k) d[k] = tmp[k];
            }
          }
        }
      }
  }
}

// Mg[e][t][o] = (A dY A^T)[e] for every tile, dY the 2x2 block of the output gradient's grid.
NORMNET_MULTIVERSION void transform_dy(float* Mg, const Grid& g, const Plan& p) {
  const int64_t O = p.co16(), tw = p.tw(), gw = g.width, es = p.tiles_padded() * O;
  for (int64_t ty = 0; ty < p.th(); ++ty)
    for (int64_t tx = 0; tx < tw; ++tx) {
      const int64_t t = ty * tw + tx;
      for (int64_t o0 = 0; o0 < O; o0 += 16) {
        const float* d = g.data + ((g.row0 + 2 * ty) * gw + g.col0 + 2 * tx) * O + o0;
        v16 q[2][4];
#pragma GCC unroll 2
        for (int a = 0; a < 2; ++a) {
          const v16 d0 = load16(d + a * gw * O), d1 = load16(d + a * gw * O + O);
          q[a][0] = d0, q[a][1] = d0 + d1, q[a][2] = d0 - d1, q[a][3] = -d1;
        }
        float* out = Mg + t * O + o0;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          store16(out + (0 * 4 + j) * es, q[0][j]);
          store16(out + (1 * 4 + j) * es, q[0][j] + q[1][j]);
          store16(out + (2 * 4 + j) * es, q[0][j] - q[1][j]);
          store16(out + (3 * 4 + j) * es, -q[1][j]);
        }
      }
    }
}

// du[e] (co16 x ci16) += (= when !add) Mg[e]^T V[e], summed over the tiles: rows are output
// channels (RO per micro-kernel), columns input channels.
template <int RO, int NV>
NORMNET_INLINE void dw_positions(float* du, const float* Mg, const float* V, const Plan& p, bool add) {
  const int64_t C = p.ci16(), O = p.co16(), R = p.tiles_padded(), T = p.tiles();
  for (int64_t e = 0; e < 16; ++e)
    for (int64_t o0 = 0; o0 < O; o0 += RO)
      for (int64_t c0 = 0; c0 < C; c0 += 16 * NV)
        tile<RO, NV>(Mg + e * R * O + o0, 1, O, V + e * R * C + c0, C, T, du + (e * O + o0) * C + c0,
                     C, add);
}

NORMNET_MULTIVERSION void dw_all(float* du, const float* Mg, const float* V, const Plan& p, bool add) {
  if (p.ci16() % 32 == 0)
    dw_positions<8, 2>(du, Mg, V, p, add);
  else
    dw_positions<16, 1>(du, Mg, V, p, add);
}

// s.v = V of sample x (tiles past tiles() are zero rows of the GEMM's last block).
void input_stage(const float* x, const float* x_end, const Plan& p, Scratch& s) {
  const int64_t C = p.ci16(), T = p.tiles(), R = p.tiles_padded();
  const int64_t xh = 2 * p.th() + 2, xw = 2 * p.tw() + 2;
  s.xt.resize(static_cast<size_t>(xh * xw * C));
  to_grid(s.xt.data(), xh, xw, C, p.ph, p.pw, x, x_end, p.cin, p.h, p.w);
  s.v.resize(static_cast<size_t>(16 * R * C));
  for (int64_t e = 0; e < 16; ++e)
    std::fill(s.v.begin() + (e * R + T) * C, s.v.begin() + (e + 1) * R * C, 0.0f);
  transform_input(s.v.data(), s.xt.data(), p);
}

}  // namespace

void transform_weights(std::vector<float>& u, const float* weight, const Plan& p) {
  const int64_t C = p.ci16(), O = p.co16();
  u.assign(static_cast<size_t>(16 * C * O), 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < p.cout; ++o)
    for (int64_t c = 0; c < p.cin; ++c) {
      const float* g = weight + (o * p.cin + c) * 9;
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          double acc = 0;
          for (int k = 0; k < 3; ++k)
            for (int l = 0; l < 3; ++l) acc += kG[i][k] * double(g[k * 3 + l]) * kG[j][l];
          u[((i * 4 + j) * C + c) * O + o] = static_cast<float>(acc);
        }
    }
}

void forward(float* out, const float* x, const float* x_end, const float* u, const float* bias,
             const Plan& p, Scratch& s) {
  input_stage(x, x_end, p, s);
  s.m.resize(static_cast<size_t>(16 * p.tiles_padded() * p.co16()));
  gemm_all(s.m.data(), s.v.data(), u, p);
  transform_output(out, s.m.data(), bias, p);
}

Grid output_grid(std::vector<float>& buf, const float* dy, const float* dy_end, const Plan& p) {
  const int64_t th = p.th(), tw = p.tw();
  buf.resize(static_cast<size_t>(4 * th * tw * p.co16()));
  to_grid(buf.data(), 2 * th, 2 * tw, p.co16(), 0, 0, dy, dy_end, p.cout, p.oh(), p.ow());
  return {buf.data(), 2 * tw, 0, 0};
}

Grid input_grid(const Plan& p, const Scratch& s) {
  return {s.xt.data(), 2 * p.tw() + 2, p.ph, p.pw};
}

void weight_grad(float* du, const float* x, const float* x_end, const Grid& dy, const Plan& p,
                 Scratch& s, bool add) {
  input_stage(x, x_end, p, s);
  s.m.resize(static_cast<size_t>(16 * p.tiles_padded() * p.co16()));
  transform_dy(s.m.data(), dy, p);
  dw_all(du, s.m.data(), s.v.data(), p, add);
}

void weight_grad_finish(float* dw, const float* du, const Plan& p) {
  const int64_t C = p.ci16(), O = p.co16();
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < p.cout; ++o)
    for (int64_t c = 0; c < p.cin; ++c)
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) {
          double acc = 0;
          for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) acc += kG[i][k] * kG[j][l] * double(du[((i * 4 + j) * O + o) * C + c]);
          float& d = dw[(o * p.cin + c) * 9 + k * 3 + l];
          d = static_cast<float>(double(d) + acc);
        }
}

}  // namespace normnet::kernels::winograd

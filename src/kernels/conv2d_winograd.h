// Float 3x3 convolution, stride 1, dilation 1, by Winograd's minimal filtering F(2x2, 3x3)
// (used by conv2d.cpp; docs/performance.md, "Fourth tuning round"). Every 2x2 block of outputs
// (a "tile") comes from the 4x4 patch of padded input under it:
//   Y = A^T [ sum_c (G g_c G^T) .* (B^T d_c B) ] A
// 16 multiplies per channel pair and tile where the direct convolution has 36, and no
// output positions computed only to be dropped.
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// The weight gradient is the same algorithm run backwards: with Mg = A dY A^T per tile (dY the
// 2x2 output gradient), dU = sum over samples and tiles of Mg .* V, and dg = G^T dU G.
//
// Layouts (per sample; channels innermost, padded with zero channels to a multiple of 16):
//   xt[r][x][c]  the padded input, r < 2*th + 2, x < 2*tw + 2 (zeros outside the input)
//   V[e][t][c]   B^T d B for position e = 4*i + j of the 4x4 patch, tile t = ty*tw + tx
//   U[e][c][o]   G g G^T, computed in double and rounded once
//   M[e][t][o]   sum over c of V[e][t][c] * U[e][c][o]  (16 small GEMMs)
// Sums are in a fixed order (channels in increasing order; tiles, samples and chunks of samples
// in increasing order), so results do not depend on the thread count. They differ from the
// direct convolution's by rounding only; tests/unit/kernels_winograd_test.cpp bounds the
// difference by the magnitudes this algorithm actually sums.
#pragma once
#include <cstdint>
#include <vector>

namespace normnet::kernels::winograd {

struct Plan {
  int64_t cin = 0, h = 0, w = 0, cout = 0, ph = 0, pw = 0;
  int64_t oh() const { return h + 2 * ph - 2; }
  int64_t ow() const { return w + 2 * pw - 2; }
  int64_t th() const { return (oh() + 1) / 2; }  // tile rows
  int64_t tw() const { return (ow() + 1) / 2; }  // tile columns
  int64_t tiles() const { return th() * tw(); }
  int64_t ci16() const { return (cin + 15) / 16 * 16; }
  int64_t co16() const { return (cout + 15) / 16 * 16; }
  // Micro-kernel rows (tiles) of the forward GEMM for this width, and the tiles rounded up to it.
  int64_t gemm_rows() const { return co16() % 64 == 0 ? 7 : co16() % 32 == 0 ? 14 : 28; }
  int64_t tiles_padded() const { return (tiles() + gemm_rows() - 1) / gemm_rows() * gemm_rows(); }
};

// Scratch of one thread, resized as needed.
struct Scratch {
  std::vector<float> xt, v, m;
};

// U (16 x ci16 x co16) from weight (cout x cin x 3 x 3): the forward's operand (output channels
// in parallel: call it outside a parallel region).
void transform_weights(std::vector<float>& u, const float* weight, const Plan& p);

// out (cout x oh x ow) = conv(x (cin x h x w)) [+ bias[o]], one sample. x_end: one past the
// last float that may be read (the end of the whole input tensor): loads stop there.
void forward(float* out, const float* x, const float* x_end, const float* u, const float* bias,
             const Plan& p, Scratch& s);

// The output gradient dy (cout x oh x ow) of a sample on a grid of positions with co16 channels
// innermost: dy[o][y][x] at ((row0 + y) * width + col0 + x) * co16 + o, zeros on the rest of the
// tile rows and columns (2*th x 2*tw from row0, col0).
struct Grid {
  const float* data;
  int64_t width, row0, col0;
};
// dy's grid in buf.
Grid output_grid(std::vector<float>& buf, const float* dy, const float* dy_end, const Plan& p);
// The grid of the input that the last `forward` of plan p with scratch s built (its padded input,
// in s.xt): the input gradient's convolution reads dy padded by 2 - pad, which is dy's grid for
// the forward plan (with row0, col0 = 2 - pad). Valid until s is used again.
Grid input_grid(const Plan& p, const Scratch& s);

// du (16 x co16 x ci16) += the transformed weight gradient of one sample (du = it, when !add):
// x is its input (x_end as in forward), dy its output gradient's grid (not in s.xt: this call
// overwrites that).
void weight_grad(float* du, const float* x, const float* x_end, const Grid& dy, const Plan& p,
                 Scratch& s, bool add);
inline int64_t weight_grad_size(const Plan& p) { return 16 * p.co16() * p.ci16(); }

// dw (cout x cin x 3 x 3) += G^T du G, in double, rounded once (output channels in parallel:
// call it outside a parallel region).
void weight_grad_finish(float* dw, const float* du, const Plan& p);

}  // namespace normnet::kernels::winograd

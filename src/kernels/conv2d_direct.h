// Float convolution without im2col (used by conv2d.cpp; docs/performance.md).
//
// Stride 1: one sample's input (cin x h x w) is copied once into a zero-padded plane stack of
// hp = h + 2*ph rows by wp = w + pw columns: each row is pw zeros then the w inputs, so the
// zeros at the start of a row are both its left padding and the right padding of the row
// above. Output position (y, x) is then read at the flat index q = y*wp + x, and tap
// k = (c, i, j) of the kernel adds the input at q + off[k] with off[k] = c*hp*wp + i*dh*wp +
// j*dw: row k of the im2col matrix is the padded input itself, shifted by off[k]. The GEMM
// micro-kernels load those rows in place. Outputs with x >= ow (wp - ow columns per row) are
// computed and dropped.
//
// Stride s = (sh, sw) > 1 (dilation 1): the padded input (h + 2*ph by w + 2*pw) is split into
// sh*sw phase planes, plane (a, b) holding padded rows a, a+sh, ... and columns b, b+sw, ...
// (hp = ceil((h + 2*ph)/sh) rows of wp = ceil((w + 2*pw)/sw)). Tap (i, j) reads phase plane
// (i % sh, j % sw) at q + (i / sh)*wp + j / sw, q = y*wp + x: a stride-1 read again.
//
// Every output and weight-gradient element is summed over the same terms in the same order as
// im2col + gemm (k in increasing order; positions in increasing order), so results are those of
// the im2col path.
#pragma once
#include <cstdint>
#include <vector>

namespace normnet::kernels::direct {

// Geometry of one stride-1 convolution of one sample and group.
// Geometry of one convolution of one sample and group: stride 1, or dilation 1 (supported()).
struct Plan {
  int64_t cin = 0, h = 0, w = 0, cout = 0, kh = 1, kw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t sh = 1, sw = 1;
  bool supported() const { return (sh == 1 && sw == 1) || (dh == 1 && dw == 1); }
  bool strided() const { return sh > 1 || sw > 1; }
  int64_t phases() const { return sh * sw; }  // planes per input channel
  int64_t hp() const { return strided() ? (h + 2 * ph + sh - 1) / sh : h + 2 * ph; }
  int64_t wp() const { return strided() ? (w + 2 * pw + sw - 1) / sw : w + pw; }
  int64_t oh() const { return (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
  int64_t ow() const { return (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
  int64_t taps() const { return cin * kh * kw; }  // K
  // Flat output positions computed (oh rows of wp), rounded up to the 32-wide tile.
  int64_t cols() const { return (oh() * wp() + 31) / 32 * 32; }
  // Floats of the padded input buffer, with the slack the last tile reads past the planes.
  int64_t padded_size() const { return cin * phases() * hp() * wp() + 32 + wp() + kw * dw; }
};

// Weights (cout x K, row-major) packed for `forward`: tiles of 8 output channels, [tile][k][8],
// rows past cout zero.
void pack_weights(std::vector<float>& packed, const float* weight, const Plan& p);

// off (K entries) = each tap's offset in the padded input, im2col row order k = (c*kh + i)*kw + j.
// Computed once per plan and passed to forward / weight_grad_t.
void tap_offsets(std::vector<int64_t>& off, const Plan& p);

// out (cout x oh x ow) = conv(x (cin x h x w)) [+ bias[o]]. xpad and tile are scratch of the
// calling thread (resized here).
void forward(float* out, const float* x, const float* wpacked, const int64_t* off, const float* bias,
             const Plan& p, std::vector<float>& xpad, std::vector<float>& tile);

// dw (K x cout, row-major: the transposed weight gradient) += col(x) * dy^T, i.e.
// dw[k][o] += sum over output positions of x at that tap * dy[o]. dy is (cout x oh x ow).
// bsum, if not null, gets sum16(dy row o, oh*ow) for every o (the bias gradient's per-sample
// sums, read from the same loads as the transpose of dy the kernel needs anyway).
void weight_grad_t(float* dw, float* bsum, const float* x, const float* dy, const int64_t* off,
                   const Plan& p, std::vector<float>& xpad, std::vector<float>& dyt);

// The sum of x[0..n) in 16 float lanes (element k in lane k % 16, lanes added in order at the
// end), for the bias gradient: one sample's plane at a time, the planes added in double.
float sum16(const float* x, int64_t n);

}  // namespace normnet::kernels::direct

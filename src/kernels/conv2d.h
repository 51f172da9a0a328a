// Conv2d in NCHW with OIHW weights, as torch.nn.Conv2d (stride, zero padding, dilation,
// groups, optional bias). Conv1d runs through these with H = 1, kernel_h = 1.
//
// forward:  out[n, o, y, x] = bias[o] + sum_{c in group(o), i, j}
//              w[o, c', i, j] * in[n, c, y*sh - ph + i*dh, x*sw - pw + j*dw]
// backward: din (overwritten), dweight and dbias (accumulated, +=) from dout.
#pragma once
#include <cstdint>

#include "normnet/conv_algorithm.h"

namespace normnet::kernels {

struct Conv2dShape {
  int64_t n = 1, c_in = 1, h = 1, w = 1;
  int64_t c_out = 1, kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  int64_t out_h() const { return (h + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (w + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1; }
  void validate(const char* who) const;  // throws normnet::Error naming `who`
};

template <typename T>
void conv2d_forward(T* out, const T* in, const T* weight, const T* bias, const Conv2dShape& s);

// din may be null (first layer). dbias may be null (no bias).
template <typename T>
void conv2d_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                     const Conv2dShape& s);

// Float 3x3 layers with stride 1 and dilation 1 run by Winograd F(2x2, 3x3)
// (conv2d_winograd.h) under ConvAlgorithm::kFast (normnet/conv_algorithm.h) when they have at
// least kWinogradMinChannels input and output channels per group, padding at most 2 and at most
// kWinogradMaxPositions output positions per plane. Every
// other layer, and every double computation, takes the direct or im2col path.
inline constexpr int64_t kWinogradMinChannels = 16;
// Output planes larger than this (positions) stay direct: a sample's transformed operands no
// longer fit in L2 and Winograd was slower (64 -> 128 channels at 112x112: 116 vs 82 ms forward).
inline constexpr int64_t kWinogradMaxPositions = 64 * 64;
// Whether conv2d_forward<float> and conv2d_backward<float> run this shape by Winograd (forward,
// weight gradient, and the input gradient as the flipped convolution) under the current setting.
bool conv2d_uses_winograd(const Conv2dShape& s);

}  // namespace normnet::kernels

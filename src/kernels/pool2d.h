// Pooling in NCHW, as torch.nn.MaxPool2d / AvgPool2d (MaxPool1d runs with H = 1, kernel_h = 1).
// Output size: floor((H + 2p - d*(k-1) - 1) / s) + 1, or ceil with ceil_mode (a window must
// start inside the input or its left padding, as in PyTorch).
//   max: padding counts as -inf; argmax keeps the flat index (y*W + x) of the winner, first one
//        on ties; backward adds dout into din at argmax.
//   avg: divisor is the window size clipped to input+padding (count_include_pad) or to the
//        input alone; backward spreads dout / divisor over the window.
//   global average: (N, C, H, W) -> (N, C), mean over H*W.
#pragma once
#include <cstdint>

namespace normnet::kernels {

struct Pool2dShape {
  int64_t n = 1, c = 1, h = 1, w = 1;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool ceil_mode = false;
  bool count_include_pad = true;
  int64_t out_h() const;
  int64_t out_w() const;
  void validate(const char* who) const;
};

template <typename T>
void maxpool2d_forward(T* out, int32_t* argmax, const T* in, const Pool2dShape& s);
template <typename T>
void maxpool2d_backward(T* din, const T* dout, const int32_t* argmax, const Pool2dShape& s);

template <typename T>
void avgpool2d_forward(T* out, const T* in, const Pool2dShape& s);
template <typename T>
void avgpool2d_backward(T* din, const T* dout, const Pool2dShape& s);

template <typename T>
void global_avgpool_forward(T* out, const T* in, int64_t n, int64_t c, int64_t hw);
template <typename T>
void global_avgpool_backward(T* din, const T* dout, int64_t n, int64_t c, int64_t hw);

}  // namespace normnet::kernels

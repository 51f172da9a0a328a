// Shape rules shared by max and average pooling (PyTorch's pooling_output_shape).
#include "kernels/pool2d.h"

#include "normnet/error.h"

namespace normnet::kernels {

static int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil,
                           bool ceil_mode) {
  const int64_t span = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  // Division rounding down, also for a negative span (an input smaller than the window):
  // C++'s / rounds toward zero and would give 1 output instead of 0.
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  // With ceil_mode the last window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

int64_t Pool2dShape::out_h() const {
  return pooled_size(h, kernel_h, pad_h, stride_h, dilation_h, ceil_mode);
}
int64_t Pool2dShape::out_w() const {
  return pooled_size(w, kernel_w, pad_w, stride_w, dilation_w, ceil_mode);
}

void Pool2dShape::validate(const char* who) const {
  check(kernel_h > 0 && kernel_w > 0 && stride_h > 0 && stride_w > 0 && dilation_h > 0 &&
            dilation_w > 0,
        who, ": kernel, stride and dilation must be positive");
  check(pad_h >= 0 && pad_w >= 0 && 2 * pad_h <= kernel_h && 2 * pad_w <= kernel_w, who,
        ": padding must be at most half the kernel size (PyTorch's rule)");
  check(h > 0 && w > 0 && out_h() > 0 && out_w() > 0, who, ": input ", h, "x", w,
        " is too small for kernel ", kernel_h, "x", kernel_w);
}

}  // namespace normnet::kernels

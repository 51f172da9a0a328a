#include <cmath>
#include <sstream>

#include "kernels/conv2d.h"
#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet {

namespace {
kernels::Conv2dShape conv_shape(const ConvOptions& o, const Shape& in) {
  kernels::Conv2dShape s;
  s.n = in[0];
  s.c_in = in[1];
  s.h = o.dims == 1 ? 1 : in[2];
  s.w = o.dims == 1 ? in[2] : in[3];
  s.c_out = o.out_channels;
  s.kernel_h = o.kernel_h;
  s.kernel_w = o.kernel_w;
  s.stride_h = o.stride_h;
  s.stride_w = o.stride_w;
  s.pad_h = o.pad_h;
  s.pad_w = o.pad_w;
  s.dilation_h = o.dilation_h;
  s.dilation_w = o.dilation_w;
  s.groups = o.groups;
  return s;
}
Shape weight_shape(const ConvOptions& o) {
  const int64_t ig = o.groups > 0 ? o.in_channels / o.groups : 0;
  if (o.dims == 1) return Shape{o.out_channels, ig, o.kernel_w};
  return Shape{o.out_channels, ig, o.kernel_h, o.kernel_w};
}
}  // namespace

Conv::Conv(const ConvOptions& o) : opt(o) {
  if (opt.dims == 1) {
    opt.kernel_h = 1;
    opt.stride_h = 1;
    opt.pad_h = 0;
    opt.dilation_h = 1;
  }
  kernels::Conv2dShape s = conv_shape(opt, opt.dims == 1 ? Shape{1, opt.in_channels, 1 << 20}
                                                         : Shape{1, opt.in_channels, 1 << 20, 1 << 20});
  s.validate(kind().c_str());
  weight = Parameter("weight", weight_shape(opt));
  if (opt.bias) bias = Parameter("bias", Shape{opt.out_channels}, true);
}

std::string Conv::describe() const {
  // PyTorch's repr style, square sizes as one number, defaults left out.
  auto pair = [&](int64_t h, int64_t w) {
    return (opt.dims == 1 || h == w) ? std::to_string(w)
                                     : "(" + std::to_string(h) + ", " + std::to_string(w) + ")";
  };
  std::ostringstream s;
  s << kind() << "(" << opt.in_channels << ", " << opt.out_channels
    << ", kernel_size=" << pair(opt.kernel_h, opt.kernel_w);
  if (opt.stride_h != 1 || opt.stride_w != 1) s << ", stride=" << pair(opt.stride_h, opt.stride_w);
  if (opt.pad_h != 0 || opt.pad_w != 0) s << ", padding=" << pair(opt.pad_h, opt.pad_w);
  if (opt.dilation_h != 1 || opt.dilation_w != 1) s << ", dilation=" << pair(opt.dilation_h, opt.dilation_w);
  if (opt.groups != 1) s << ", groups=" << opt.groups;
  if (!opt.bias) s << ", bias=False";
  s << ")";
  return s.str();
}

Shape Conv::output_shape(const Shape& in) const {
  const int rank = opt.dims + 2;
  check(in.rank == rank, label(), ": expected a rank-", rank, " input ",
        opt.dims == 1 ? "(N, C, L)" : "(N, C, H, W)", ", got ", in.str());
  check(in[1] == opt.in_channels, label(), ": expected ", opt.in_channels,
        " input channels, got input ", in.str());
  kernels::Conv2dShape s = conv_shape(opt, in);
  s.validate(label().c_str());
  if (opt.dims == 1) return Shape{in[0], opt.out_channels, s.out_w()};
  return Shape{in[0], opt.out_channels, s.out_h(), s.out_w()};
}

Tensor Conv::forward(const Tensor& x) {
  Tensor out = Tensor::empty(output_shape(x.shape()));  // the GEMM overwrites it
  input_ = x.contiguous();
  kernels::conv2d_forward(out.data(), input_.data(), weight.value.data(),
                          opt.bias ? bias.value.data() : nullptr, conv_shape(opt, x.shape()));
  return out;
}

Tensor Conv::backward(const Tensor& dy) {
  check(input_.defined(), label(), ": backward called before forward");
  Tensor dx = needs_input_grad ? Tensor::empty(input_.shape()) : Tensor();  // zeroed by the kernel
  Tensor g = dy.contiguous();
  kernels::conv2d_backward(needs_input_grad ? dx.data() : nullptr, weight.grad.data(),
                           opt.bias ? bias.grad.data() : nullptr,
                           g.data(), input_.data(), weight.value.data(),
                           conv_shape(opt, input_.shape()));
  return dx;
}

void Conv::reset_parameters(Rng& rng) {
  const int64_t fan_in = weight.value.numel() / opt.out_channels;
  const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)));
  float* w = weight.value.data();
  for (int64_t i = 0; i < weight.value.numel(); ++i) w[i] = rng.uniform(-bound, bound);
  if (opt.bias)
    for (int64_t i = 0; i < opt.out_channels; ++i) bias.value.data()[i] = rng.uniform(-bound, bound);
}

std::vector<Parameter*> Conv::own_parameters() {
  if (opt.bias) return {&weight, &bias};
  return {&weight};
}

}  // namespace normnet

#include <sstream>

#include "kernels/pool2d.h"
#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet {

namespace {
kernels::Pool2dShape pool_shape(const PoolOptions& o, const Shape& in) {
  kernels::Pool2dShape s;
  s.n = in[0];
  s.c = in[1];
  s.h = o.dims == 1 ? 1 : in[2];
  s.w = o.dims == 1 ? in[2] : in[3];
  s.kernel_h = o.dims == 1 ? 1 : o.kernel_h;
  s.kernel_w = o.kernel_w;
  s.stride_h = o.dims == 1 ? 1 : o.stride_h;
  s.stride_w = o.stride_w;
  s.pad_h = o.dims == 1 ? 0 : o.pad_h;
  s.pad_w = o.pad_w;
  s.dilation_h = o.dims == 1 ? 1 : o.dilation_h;
  s.dilation_w = o.dilation_w;
  s.ceil_mode = o.ceil_mode;
  s.count_include_pad = o.count_include_pad;
  return s;
}
}  // namespace

std::string Pool::kind() const {
  return std::string(opt.max ? "MaxPool" : "AvgPool") + (opt.dims == 1 ? "1d" : "2d");
}

std::string Pool::describe() const {
  std::ostringstream s;
  s << kind() << "(kernel_size=" << opt.kernel_w;
  if (opt.stride_w != opt.kernel_w) s << ", stride=" << opt.stride_w;
  if (opt.pad_w != 0) s << ", padding=" << opt.pad_w;
  if (opt.ceil_mode) s << ", ceil_mode=True";
  s << ")";
  return s.str();
}

Shape Pool::output_shape(const Shape& in) const {
  const int rank = opt.dims + 2;
  check(in.rank == rank, label(), ": expected a rank-", rank, " input, got ", in.str());
  check(opt.max || (opt.dilation_h == 1 && opt.dilation_w == 1), label(),
        ": average pooling has no dilation");
  kernels::Pool2dShape s = pool_shape(opt, in);
  s.validate(label().c_str());
  if (opt.dims == 1) return Shape{in[0], in[1], s.out_w()};
  return Shape{in[0], in[1], s.out_h(), s.out_w()};
}

bool Pool::fusable_after_relu() const {
  return opt.max && opt.dims == 2 && opt.kernel_h == 2 && opt.kernel_w == 2 && opt.stride_h == 2 &&
         opt.stride_w == 2 && opt.pad_h == 0 && opt.pad_w == 0 && opt.dilation_h == 1 &&
         opt.dilation_w == 1 && !opt.ceil_mode;
}

Tensor Pool::forward(const Tensor& x) {
  if (pass_through) return x;  // the BatchNorm before it pooled already
  Tensor out = Tensor::empty(output_shape(x.shape()));  // the kernels write every output
  Tensor in = x.contiguous();
  in_shape_ = x.shape();
  const kernels::Pool2dShape s = pool_shape(opt, in_shape_);
  if (opt.max) {
    argmax_.assign(static_cast<size_t>(out.numel()), -1);
    kernels::maxpool2d_forward(out.data(), argmax_.data(), in.data(), s);
  } else {
    kernels::avgpool2d_forward(out.data(), in.data(), s);
  }
  return out;
}

Tensor Pool::backward(const Tensor& dy) {
  if (pass_through) return dy;
  check(in_shape_.rank > 0, label(), ": backward called before forward");
  Tensor dx = Tensor::empty(in_shape_);  // the kernels zero each plane first
  Tensor g = dy.contiguous();
  const kernels::Pool2dShape s = pool_shape(opt, in_shape_);
  if (opt.max) kernels::maxpool2d_backward(dx.data(), g.data(), argmax_.data(), s);
  else kernels::avgpool2d_backward(dx.data(), g.data(), s);
  return dx;
}

Shape GlobalAvgPool::output_shape(const Shape& in) const {
  check(in.rank == 3 || in.rank == 4, label(), ": expected (N, C, L) or (N, C, H, W), got ", in.str());
  check(in.numel() == 0 || in.numel() / (in[0] * in[1]) > 0, label(), ": empty spatial size");
  return Shape{in[0], in[1]};
}

Tensor GlobalAvgPool::forward(const Tensor& x) {
  Tensor out(output_shape(x.shape()));
  Tensor in = x.contiguous();
  in_shape_ = x.shape();
  const int64_t hw = in_shape_.numel() / std::max<int64_t>(1, in_shape_[0] * in_shape_[1]);
  kernels::global_avgpool_forward(out.data(), in.data(), in_shape_[0], in_shape_[1], hw);
  return out;
}

Tensor GlobalAvgPool::backward(const Tensor& dy) {
  Tensor dx(in_shape_);
  Tensor g = dy.contiguous();
  const int64_t hw = in_shape_.numel() / std::max<int64_t>(1, in_shape_[0] * in_shape_[1]);
  kernels::global_avgpool_backward(dx.data(), g.data(), in_shape_[0], in_shape_[1], hw);
  return dx;
}

}  // namespace normnet

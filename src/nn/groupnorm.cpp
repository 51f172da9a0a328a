// GroupNorm with torch.nn semantics; see docs/normalization.md.
#include <sstream>

#include "kernels/groupnorm.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "nn/norm_common.h"

namespace normnet {

namespace {
kernels::GroupNormShape gn_shape(const Shape& in, int64_t groups) {
  kernels::GroupNormShape s;
  s.n = in[0];
  s.c = in[1];
  s.spatial = 1;
  for (int i = 2; i < in.rank; ++i) s.spatial *= in[i];
  s.groups = groups;
  return s;
}
}  // namespace

GroupNorm::GroupNorm(const GroupNormOptions& o) : opt(o) {
  check(o.num_groups > 0, "GroupNorm: num_groups must be positive, got ", o.num_groups);
  check(o.num_channels > 0, "GroupNorm: num_channels must be positive, got ", o.num_channels);
  check(o.num_channels % o.num_groups == 0, "GroupNorm: num_channels (", o.num_channels,
        ") must be divisible by num_groups (", o.num_groups, ")");
  check(o.eps > 0, "GroupNorm: eps must be positive, got ", o.eps);
  if (opt.affine) norm::init_affine(weight, bias, Shape{o.num_channels});
}

std::string GroupNorm::describe() const {
  std::ostringstream s;
  s << kind() << "(" << opt.num_groups << ", " << opt.num_channels;
  if (opt.eps != 1e-5) s << ", eps=" << opt.eps;
  if (!opt.affine) s << ", affine=False";
  s << ")";
  return s.str();
}

Shape GroupNorm::output_shape(const Shape& in) const {
  check(in.rank >= 2, label(), ": expected input (N, C, *) with at least 2 dimensions, got ",
        in.str());
  check(in[1] == opt.num_channels, label(), ": expected ", opt.num_channels,
        " channels, got input ", in.str());
  return in;
}

Tensor GroupNorm::forward(const Tensor& x) {
  output_shape(x.shape());
  const kernels::GroupNormShape s = gn_shape(x.shape(), opt.num_groups);
  input_ = x.contiguous();
  Tensor out(x.shape());
  if (x.numel() == 0) return out;  // empty batch: empty output
  mean_ = Tensor(Shape{s.n, s.groups});
  var_ = Tensor(Shape{s.n, s.groups});
  invstd_ = Tensor(Shape{s.n, s.groups});
  kernels::groupnorm_forward(out.data(), mean_.data(), var_.data(), invstd_.data(), input_.data(),
                             opt.affine ? weight.value.data() : nullptr,
                             opt.affine ? bias.value.data() : nullptr, opt.eps, s);
  return out;
}

Tensor GroupNorm::backward(const Tensor& dy) {
  check(input_.defined(), label(), ": backward called before forward");
  check(dy.shape() == input_.shape(), label(), ": expected output gradient ", input_.shape().str(),
        ", got ", dy.shape().str());
  Tensor dx(input_.shape());
  if (input_.numel() == 0) return dx;
  const kernels::GroupNormShape s = gn_shape(input_.shape(), opt.num_groups);
  Tensor g = dy.contiguous();
  kernels::groupnorm_backward(dx.data(), opt.affine ? weight.grad.data() : nullptr,
                              opt.affine ? bias.grad.data() : nullptr, g.data(), input_.data(),
                              mean_.data(), invstd_.data(),
                              opt.affine ? weight.value.data() : nullptr, s);
  return dx;
}

std::vector<Parameter*> GroupNorm::own_parameters() {
  if (opt.affine) return {&weight, &bias};
  return {};
}

}  // namespace normnet

// LayerNorm with torch.nn semantics; see docs/normalization.md.
#include <sstream>

#include "kernels/layernorm.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "nn/norm_common.h"

namespace normnet {

namespace {
std::string dims_str(const std::vector<int64_t>& v) {  // "3, 4"
  std::ostringstream s;
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  return s.str();
}
std::string tuple_str(const std::vector<int64_t>& v) {  // PyTorch's tuple repr: (3,), (3, 4)
  std::ostringstream s;
  s << "(" << dims_str(v) << (v.size() == 1 ? ",)" : ")");
  return s.str();
}
}  // namespace

LayerNorm::LayerNorm(const LayerNormOptions& o) : opt(o) {
  const auto& ns = o.normalized_shape;
  check(!ns.empty() && static_cast<int>(ns.size()) < kMaxDims,
        "LayerNorm: normalized_shape must have 1 to ", kMaxDims - 1, " dimensions, got ",
        ns.size());
  for (int64_t d : ns)
    check(d > 0, "LayerNorm: normalized_shape sizes must be positive, got ", tuple_str(ns));
  check(o.eps > 0, "LayerNorm: eps must be positive, got ", o.eps);
  if (opt.elementwise_affine) norm::init_affine(weight, bias, Shape(ns));
}

std::string LayerNorm::describe() const {
  std::ostringstream s;
  s << kind() << "(" << tuple_str(opt.normalized_shape);
  if (opt.eps != 1e-5) s << ", eps=" << opt.eps;
  if (!opt.elementwise_affine) s << ", elementwise_affine=False";
  s << ")";
  return s.str();
}

Shape LayerNorm::output_shape(const Shape& in) const {
  const auto& ns = opt.normalized_shape;
  const int k = static_cast<int>(ns.size());
  bool ok = in.rank > k;
  for (int i = 0; ok && i < k; ++i) ok = in[in.rank - k + i] == ns[i];
  check(ok, label(), ": expected input (N, ..., ", dims_str(ns), ") ending in normalized_shape ",
        tuple_str(ns), ", got ", in.str());
  return in;
}

namespace {
kernels::LayerNormShape ln_shape(const Shape& in, size_t normalized_dims) {
  kernels::LayerNormShape s;
  s.rows = 1;
  s.cols = 1;
  const int lead = in.rank - static_cast<int>(normalized_dims);
  for (int i = 0; i < in.rank; ++i) (i < lead ? s.rows : s.cols) *= in[i];
  return s;
}
}  // namespace

Tensor LayerNorm::forward(const Tensor& x) {
  output_shape(x.shape());
  const kernels::LayerNormShape s = ln_shape(x.shape(), opt.normalized_shape.size());
  input_ = x.contiguous();
  Tensor out(x.shape());
  if (x.numel() == 0) return out;  // empty batch: empty output
  mean_ = Tensor(Shape{s.rows});
  var_ = Tensor(Shape{s.rows});
  invstd_ = Tensor(Shape{s.rows});
  const bool a = opt.elementwise_affine;
  kernels::layernorm_forward(out.data(), mean_.data(), var_.data(), invstd_.data(), input_.data(),
                             a ? weight.value.data() : nullptr, a ? bias.value.data() : nullptr,
                             opt.eps, s);
  return out;
}

Tensor LayerNorm::backward(const Tensor& dy) {
  check(input_.defined(), label(), ": backward called before forward");
  check(dy.shape() == input_.shape(), label(), ": expected output gradient ", input_.shape().str(),
        ", got ", dy.shape().str());
  Tensor dx(input_.shape());
  if (input_.numel() == 0) return dx;
  const kernels::LayerNormShape s = ln_shape(input_.shape(), opt.normalized_shape.size());
  Tensor g = dy.contiguous();
  const bool a = opt.elementwise_affine;
  kernels::layernorm_backward(dx.data(), a ? weight.grad.data() : nullptr,
                              a ? bias.grad.data() : nullptr, g.data(), input_.data(), mean_.data(),
                              invstd_.data(), a ? weight.value.data() : nullptr, s);
  return dx;
}

std::vector<Parameter*> LayerNorm::own_parameters() {
  if (opt.elementwise_affine) return {&weight, &bias};
  return {};
}

}  // namespace normnet

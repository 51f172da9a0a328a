// FrozenBatchNorm2d with torchvision.ops.FrozenBatchNorm2d semantics; see
// docs/normalization.md. Training and evaluation are BatchNorm's evaluation kernels with the
// four buffers; nothing is learned, so backward gives only the input gradient.
#include <sstream>

#include "kernels/batchnorm.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "nn/norm_common.h"

namespace normnet {

FrozenBatchNorm::FrozenBatchNorm(int64_t c, double e) : num_features(c), eps(e) {
  check(c > 0, "FrozenBatchNorm2d: num_features must be positive, got ", c);
  check(e > 0, "FrozenBatchNorm2d: eps must be positive, got ", e);
  weight = Tensor::full(Shape{c}, 1.0f);
  bias = Tensor(Shape{c});
  running_mean = Tensor(Shape{c});
  running_var = Tensor::full(Shape{c}, 1.0f);
}

std::string FrozenBatchNorm::describe() const {
  std::ostringstream s;
  s << kind() << "(" << num_features;
  if (eps != 1e-5) s << ", eps=" << eps;
  s << ")";
  return s.str();
}

Shape FrozenBatchNorm::output_shape(const Shape& in) const {
  check(in.rank == 4, label(), ": expected 4D input (N, C, H, W), got ", in.str());
  check(in[1] == num_features, label(), ": expected ", num_features, " channels, got input ",
        in.str());
  return in;
}


Tensor FrozenBatchNorm::forward(const Tensor& x) {
  output_shape(x.shape());
  input_ = x.contiguous();
  Tensor out(x.shape());
  if (x.numel() == 0) return out;
  kernels::batchnorm_forward_eval(out.data(), input_.data(), running_mean.data(), running_var.data(),
                                  weight.data(), bias.data(), eps, norm::channel_shape(x.shape()));
  return out;
}

Tensor FrozenBatchNorm::backward(const Tensor& dy) {
  check(input_.defined(), label(), ": backward called before forward");
  Tensor dx(input_.shape());
  if (dx.numel() == 0) return dx;
  Tensor g = dy.contiguous();
  // dx = dy * weight / sqrt(running_var + eps); no parameter gradients (all buffers).
  kernels::batchnorm_backward_eval<float>(dx.data(), nullptr, nullptr, g.data(), input_.data(),
                                   running_mean.data(), running_var.data(), weight.data(), eps,
                                   norm::channel_shape(input_.shape()));
  return dx;
}

std::vector<Buffer> FrozenBatchNorm::own_buffers() {
  return {Buffer{"weight", &weight, nullptr}, Buffer{"bias", &bias, nullptr},
          Buffer{"running_mean", &running_mean, nullptr},
          Buffer{"running_var", &running_var, nullptr}};
}

}  // namespace normnet

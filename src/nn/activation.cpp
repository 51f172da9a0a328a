#include "kernels/activation.h"
#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet {

Activation::Activation(ActivationKind k, double p) : act(k), param(p) {
  if (k == ActivationKind::ELU) check(p > 0, "ELU: alpha must be positive, got ", p);
}

std::string Activation::kind() const {
  switch (act) {
    case ActivationKind::ReLU: return "ReLU";
    case ActivationKind::LeakyReLU: return "LeakyReLU";
    case ActivationKind::ELU: return "ELU";
  }
  return "?";
}

std::string Activation::describe() const {
  if (act == ActivationKind::LeakyReLU) return "LeakyReLU(negative_slope=" + std::to_string(param) + ")";
  if (act == ActivationKind::ELU) return "ELU(alpha=" + std::to_string(param) + ")";
  return "ReLU()";
}

Tensor Activation::forward(const Tensor& x) {
  if (pass_through) return x;  // the BatchNorm before it already applied this ReLU
  Tensor in = x.contiguous();
  Tensor out(x.shape());
  const float p = static_cast<float>(param);
  switch (act) {
    case ActivationKind::ReLU:
      kernels::relu_forward(out.data(), in.data(), in.numel());
      saved_ = out;
      break;
    case ActivationKind::LeakyReLU:
      kernels::leaky_relu_forward(out.data(), in.data(), p, in.numel());
      saved_ = in;
      break;
    case ActivationKind::ELU:
      kernels::elu_forward(out.data(), in.data(), p, in.numel());
      saved_ = out;
      break;
  }
  return out;
}

Tensor Activation::backward(const Tensor& dy) {
  if (pass_through) return dy;
  check(saved_.defined(), label(), ": backward called before forward");
  Tensor g = dy.contiguous();
  Tensor dx(saved_.shape());
  const float p = static_cast<float>(param);
  switch (act) {
    case ActivationKind::ReLU: kernels::relu_backward(dx.data(), g.data(), saved_.data(), g.numel()); break;
    case ActivationKind::LeakyReLU:
      kernels::leaky_relu_backward(dx.data(), g.data(), saved_.data(), p, g.numel());
      break;
    case ActivationKind::ELU: kernels::elu_backward(dx.data(), g.data(), saved_.data(), p, g.numel()); break;
  }
  return dx;
}

}  // namespace normnet

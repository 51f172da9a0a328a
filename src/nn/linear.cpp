#include <cmath>

#include "kernels/linear.h"
#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet {

Linear::Linear(int64_t in_f, int64_t out_f, bool b)
    : in_features(in_f), out_features(out_f), has_bias(b) {
  check(in_f > 0 && out_f > 0, "Linear: in_features and out_features must be positive, got ", in_f,
        " and ", out_f);
  weight = Parameter("weight", Shape{out_f, in_f});
  if (b) bias = Parameter("bias", Shape{out_f}, true);
}

std::string Linear::describe() const {
  return "Linear(in_features=" + std::to_string(in_features) +
         ", out_features=" + std::to_string(out_features) + (has_bias ? ")" : ", bias=False)");
}

Shape Linear::output_shape(const Shape& in) const {
  check(in.rank == 2 && in[1] == in_features, label(), ": expected input (N, ", in_features,
        "), got ", in.str(), in.rank > 2 ? " (add a flatten layer before it)" : "");
  return Shape{in[0], out_features};
}

Tensor Linear::forward(const Tensor& x) {
  Tensor out(output_shape(x.shape()));
  input_ = x.contiguous();
  kernels::linear_forward(out.data(), input_.data(), weight.value.data(),
                          has_bias ? bias.value.data() : nullptr, x.dim(0), in_features,
                          out_features);
  return out;
}

Tensor Linear::backward(const Tensor& dy) {
  check(input_.defined(), label(), ": backward called before forward");
  Tensor dx(input_.shape());
  Tensor g = dy.contiguous();
  kernels::linear_backward(dx.data(), weight.grad.data(), has_bias ? bias.grad.data() : nullptr,
                           g.data(), input_.data(), weight.value.data(), input_.dim(0),
                           in_features, out_features);
  return dx;
}

void Linear::reset_parameters(Rng& rng) {
  const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(in_features)));
  for (int64_t i = 0; i < weight.value.numel(); ++i) weight.value.data()[i] = rng.uniform(-bound, bound);
  if (has_bias)
    for (int64_t i = 0; i < out_features; ++i) bias.value.data()[i] = rng.uniform(-bound, bound);
}

std::vector<Parameter*> Linear::own_parameters() {
  if (has_bias) return {&weight, &bias};
  return {&weight};
}

}  // namespace normnet

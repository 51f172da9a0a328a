#include "kernels/elementwise.h"
#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet {

std::string Dropout::describe() const { return "Dropout(p=" + std::to_string(p) + ")"; }

// In training each call draws a new mask keyed by (seed, call number); in evaluation (or p = 0)
// it is the identity, as torch.nn.Dropout.
Tensor Dropout::forward(const Tensor& x) {
  check(p >= 0 && p <= 1, label(), ": p must be in [0, 1], got ", p);
  dropped_ = training_ && p > 0;
  if (!dropped_) return x;
  Tensor in = x.contiguous();
  Tensor out(x.shape());
  mask_.resize(static_cast<size_t>(x.numel()));
  kernels::dropout_forward(out.data(), mask_.data(), in.data(), p, hash64(seed, calls++), x.numel());
  return out;
}

Tensor Dropout::backward(const Tensor& dy) {
  if (!dropped_) return dy;
  Tensor g = dy.contiguous();
  Tensor dx(dy.shape());
  kernels::dropout_backward(dx.data(), g.data(), mask_.data(), p, dy.numel());
  return dx;
}

}  // namespace normnet

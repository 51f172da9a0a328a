#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet {

std::string Reshape::describe() const {
  if (target.empty()) return "Flatten()";
  std::string s = "Reshape(";
  for (size_t i = 0; i < target.size(); ++i) s += (i ? ", " : "") + std::to_string(target[i]);
  return s + ")";
}

Shape Reshape::output_shape(const Shape& in) const {
  check(in.rank >= 1, label(), ": input needs a batch dimension");
  const int64_t per = in[0] > 0 ? in.numel() / in[0] : [&] {
    int64_t p = 1;
    for (int i = 1; i < in.rank; ++i) p *= in[i];
    return p;
  }();
  if (target.empty()) return Shape{in[0], per};
  std::vector<int64_t> d{in[0]};
  int64_t prod = 1;
  for (int64_t t : target) {
    d.push_back(t);
    prod *= t;
  }
  check(prod == per, label(), ": cannot reshape ", in.str(), " to (N, ...) with ", prod,
        " values per sample");
  return Shape(d);
}

Tensor Reshape::forward(const Tensor& x) {
  in_shape_ = x.shape();
  return x.reshape(output_shape(x.shape()));
}

Tensor Reshape::backward(const Tensor& dy) { return dy.reshape(in_shape_); }

}  // namespace normnet

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
  int64_t per = 1;  // values per sample
  for (int i = 1; i < in.rank; ++i)
    check(!__builtin_mul_overflow(per, in[i], &per), label(), ": input ", in.str(), " overflows int64");
  if (target.empty()) return Shape{in[0], per};
  std::vector<int64_t> d{in[0]};
  int64_t prod = 1;
  // Checked: a target of huge sizes overflowed int64 here (found by fuzz/fuzz_model.cpp).
  for (int64_t t : target) {
    d.push_back(t);
    check(!__builtin_mul_overflow(prod, t, &prod), label(), ": target shape overflows int64");
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

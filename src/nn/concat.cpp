// Concat: parallel branches on the same input, outputs joined along the channel dimension, as
// torch.cat([branch(x) for branch in branches], dim=1).
//
// Forward: y[:, off_i : off_i + C_i] = branch_i(x), off_i = C_0 + ... + C_{i-1}.
// Backward: the sum rule over the branches, each getting its own channel slice of dy:
//   dx = sum_i branch_i.backward(dy[:, off_i : off_i + C_i]).
// An empty branch is the identity (DenseNet's "keep the input" path); the copies are exact, so
// the block adds no rounding of its own.
#include <cstring>

#include "kernels/elementwise.h"
#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet {

Concat::Concat(std::vector<std::pair<std::string, std::unique_ptr<Sequential>>> branches)
    : branches_(std::move(branches)) {
  check(!branches_.empty(), "Concat: needs at least one branch");
}

std::vector<std::pair<std::string, Module*>> Concat::children() {
  std::vector<std::pair<std::string, Module*>> out;
  for (auto& [n, b] : branches_)
    if (b->size() > 0) out.emplace_back(n, b.get());
  return out;
}

Shape Concat::output_shape(const Shape& in) const {
  Shape out;
  for (size_t i = 0; i < branches_.size(); ++i) {
    const Shape s = branches_[i].second->output_shape(in);
    check(s.rank >= 2, label(), ": branch '", branches_[i].first, "' gives ", s.str(),
          ", expected (N, C, ...) to concatenate along C");
    if (i == 0) {
      out = s;
      continue;
    }
    Shape a = s, b = out;
    a[1] = b[1] = 0;
    check(a == b, label(), ": branch '", branches_[i].first, "' gives ", s.str(), " but branch '",
          branches_[0].first, "' gives ", branches_[0].second->output_shape(in).str(),
          ": all but the channel dimension must agree");
    out[1] += s[1];
  }
  return out;
}

Tensor Concat::forward(const Tensor& x) {
  const Shape out_shape = output_shape(x.shape());
  const int64_t n = out_shape[0], c_total = out_shape[1];
  const int64_t inner = n * c_total == 0 ? 0 : out_shape.numel() / (n * c_total);
  Tensor out(out_shape);  // (N, sum C_i, ...)
  widths_.clear();
  int64_t off = 0;
  for (auto& [name, b] : branches_) {
    const Tensor y = b->forward(x).contiguous();  // (N, C_i, ...)
    const int64_t c = y.dim(1);
    widths_.push_back(c);
    for (int64_t s = 0; s < n; ++s)
      std::memcpy(out.data() + (s * c_total + off) * inner, y.data() + s * c * inner,
                  sizeof(float) * static_cast<size_t>(c * inner));
    off += c;
  }
  return out;
}

Tensor Concat::backward(const Tensor& dy_in) {
  check(widths_.size() == branches_.size(), label(), ": backward before forward");
  const Tensor dy = dy_in.contiguous();  // (N, sum C_i, ...)
  const int64_t n = dy.dim(0), c_total = dy.dim(1);
  const int64_t inner = n * c_total == 0 ? 0 : dy.numel() / (n * c_total);
  Tensor dx;
  int64_t off = 0;
  for (size_t i = 0; i < branches_.size(); ++i) {
    const int64_t c = widths_[i];
    Shape s = dy.shape();
    s[1] = c;
    Tensor dyi(s);  // (N, C_i, ...): this branch's slice of dy
    for (int64_t k = 0; k < n; ++k)
      std::memcpy(dyi.data() + k * c * inner, dy.data() + (k * c_total + off) * inner,
                  sizeof(float) * static_cast<size_t>(c * inner));
    off += c;
    Tensor g = branches_[i].second->backward(dyi).contiguous();
    if (!dx.defined()) {
      dx = g.clone();
    } else {
      check(g.shape() == dx.shape(), label(), ": branch gradients differ in shape");
      kernels::add_forward(dx.data(), dx.data(), g.data(), dx.numel());
    }
  }
  return dx;
}

}  // namespace normnet

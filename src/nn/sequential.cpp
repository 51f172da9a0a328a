#include "kernels/elementwise.h"
#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet {

void Sequential::add(std::string name, ModulePtr m) {
  if (name.empty()) name = std::to_string(layers_.size());
  for (auto& [n, l] : layers_) check(n != name, "Sequential: duplicate layer name '", name, "'");
  layers_.emplace_back(std::move(name), std::move(m));
}

std::vector<std::pair<std::string, Module*>> Sequential::children() {
  std::vector<std::pair<std::string, Module*>> out;
  for (auto& [n, l] : layers_) out.emplace_back(n, l.get());
  return out;
}

Shape Sequential::output_shape(const Shape& in) const {
  Shape s = in;
  for (auto& [n, l] : layers_) s = l->output_shape(s);
  return s;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& [n, l] : layers_) h = l->forward(h);
  return h;
}

Tensor Sequential::backward(const Tensor& dy) {
  Tensor g = dy;
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) g = it->second->backward(g);
  return g;
}

Residual::Residual(std::unique_ptr<Sequential> body, std::unique_ptr<Sequential> shortcut,
                   std::string shortcut_name, ModulePtr post)
    : body_(std::move(body)), shortcut_(std::move(shortcut)),
      shortcut_name_(std::move(shortcut_name)), post_(std::move(post)) {}

std::vector<std::pair<std::string, Module*>> Residual::children() {
  auto out = body_->children();
  if (shortcut_ && shortcut_->size() > 0) out.emplace_back(shortcut_name_, shortcut_.get());
  if (post_) out.emplace_back("post", post_.get());
  return out;
}

Shape Residual::output_shape(const Shape& in) const {
  const Shape a = body_->output_shape(in);
  const Shape b = shortcut_ ? shortcut_->output_shape(in) : in;
  check(a == b, label(), ": the body gives ", a.str(), " but the shortcut gives ", b.str());
  return a;
}

Tensor Residual::forward(const Tensor& x) {
  output_shape(x.shape());
  Tensor a = body_->forward(x).contiguous();
  Tensor b = (shortcut_ ? shortcut_->forward(x) : x).contiguous();
  Tensor sum(a.shape());
  kernels::add_forward(sum.data(), a.data(), b.data(), a.numel());
  return post_ ? post_->forward(sum) : sum;
}

Tensor Residual::backward(const Tensor& dy) {
  Tensor g = post_ ? post_->backward(dy) : dy;
  Tensor da = body_->backward(g).contiguous();
  Tensor db = (shortcut_ ? shortcut_->backward(g) : g).contiguous();
  Tensor dx(da.shape());
  kernels::add_forward(dx.data(), da.data(), db.data(), da.numel());
  return dx;
}

}  // namespace normnet

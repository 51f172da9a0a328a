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

namespace {
Activation* as_relu(Module* m) {
  auto* a = dynamic_cast<Activation*>(m);
  return a && a->act == ActivationKind::ReLU ? a : nullptr;
}

// Fuses every Sequential and Residual in the subtree of m (also inside other containers).
void fuse_tree(Module* m, bool on) {
  if (auto* seq = dynamic_cast<Sequential*>(m)) return seq->fuse(on);
  if (auto* res = dynamic_cast<Residual*>(m)) return res->fuse(on);
  for (auto& [n, c] : m->children()) fuse_tree(c, on);
}
}  // namespace

void Sequential::fuse(bool on) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    Module* m = layers_[i].second.get();
    fuse_tree(m, on);
    if (auto* bn = dynamic_cast<BatchNorm*>(m)) {
      Activation* relu = i + 1 < layers_.size() ? as_relu(layers_[i + 1].second.get()) : nullptr;
      bn->fused_relu = on && relu;
      if (relu) relu->pass_through = on;
      Pool* pool = relu && bn->opt.dims == 2 && i + 2 < layers_.size()
                       ? dynamic_cast<Pool*>(layers_[i + 2].second.get())
                       : nullptr;
      if (pool && !pool->fusable_after_relu()) pool = nullptr;
      bn->fused_pool = on ? pool : nullptr;
      if (pool) pool->pass_through = on;
    }
  }
}

Shape Sequential::output_shape(const Shape& in) const {
  Shape s = in;
  for (auto& [n, l] : layers_) s = l->output_shape(s);
  return s;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  const bool keep = grad_enabled();
  for (auto& [n, l] : layers_) {
    h = l->forward(h);
    if (!keep) l->release_saved();
  }
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

void Residual::fuse(bool on) {
  body_->fuse(on);
  if (shortcut_) shortcut_->fuse(on);
  fused_bn_ = nullptr;
  if (on && post_ && as_relu(post_.get()) && body_->size() > 0)
    fused_bn_ = dynamic_cast<BatchNorm*>(&body_->at(body_->size() - 1));
}

// Fused: body minus its last BatchNorm, the shortcut, then relu(BN(h) + shortcut(x)) in one
// kernel (kernels/batchnorm_relu.h); the same numbers as the unfused path below.
Tensor Residual::forward(const Tensor& x) {
  output_shape(x.shape());
  if (fused_bn_) {
    Tensor h = x;
    for (size_t i = 0; i + 1 < body_->size(); ++i) {
      h = body_->at(i).forward(h);
      if (!grad_enabled()) body_->at(i).release_saved();
    }
    Tensor b = shortcut_ ? shortcut_->forward(x) : x;
    Tensor out = fused_bn_->forward_add_relu(h, b);
    if (!grad_enabled()) fused_bn_->release_saved();
    return out;
  }
  Tensor a = body_->forward(x).contiguous();
  Tensor b = (shortcut_ ? shortcut_->forward(x) : x).contiguous();
  Tensor sum(a.shape());
  kernels::add_forward(sum.data(), a.data(), b.data(), a.numel());
  if (!post_) return sum;
  Tensor out = post_->forward(sum);
  if (!grad_enabled()) post_->release_saved();
  return out;
}

Tensor Residual::backward(const Tensor& dy) {
  Tensor da, db;
  if (fused_bn_) {
    auto [dh, g] = fused_bn_->backward_add_relu(dy);
    for (size_t i = body_->size() - 1; i-- > 0;) dh = body_->at(i).backward(dh);
    da = dh.contiguous();
    db = (shortcut_ ? shortcut_->backward(g) : g).contiguous();
  } else {
    Tensor g = post_ ? post_->backward(dy) : dy;
    da = body_->backward(g).contiguous();
    db = (shortcut_ ? shortcut_->backward(g) : g).contiguous();
  }
  Tensor dx(da.shape());
  kernels::add_forward(dx.data(), da.data(), db.data(), da.numel());
  return dx;
}

}  // namespace normnet

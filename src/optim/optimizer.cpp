// Update rules, exactly as torch.optim (p: parameter, g: gradient, t: step from 1):
//   SGD:   g += wd*p; b = g (t = 1) else mu*b + (1 - dampening)*g; g = nesterov ? g + mu*b : b;
//          p -= lr*g
//   Adam:  g += wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
//          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
//   AdamW: p *= 1 - lr*wd, then Adam without the wd term.
#include <cmath>

#include "normnet/error.h"
#include "normnet/optim.h"

namespace normnet {

Optimizer::Optimizer(std::vector<std::pair<std::string, Parameter*>> params, const OptimizerOptions& o)
    : params_(std::move(params)), opt_(o) {
  check(o.kind == "sgd" || o.kind == "adam" || o.kind == "adamw", "unknown optimizer '", o.kind,
        "' (expected sgd, adam or adamw)");
  check(o.lr >= 0, "learning rate must be non-negative, got ", o.lr);
  check(o.momentum >= 0 && o.momentum < 1, "momentum must be in [0, 1), got ", o.momentum);
  check(o.weight_decay >= 0, "weight decay must be non-negative, got ", o.weight_decay);
  check(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
        "Nesterov momentum requires a momentum and zero dampening");
  for (auto& [n, p] : params_) {
    m_.emplace_back(p->value.shape());
    if (o.kind != "sgd") v_.emplace_back(p->value.shape());
  }
}

void Optimizer::zero_grad() {
  for (auto& [n, p] : params_) p->grad.zero();
}

void Optimizer::step() {
  ++steps_;
  const double lr = opt_.lr;
  const bool adam = opt_.kind != "sgd", decoupled = opt_.kind == "adamw";
  const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(steps_));
  for (size_t k = 0; k < params_.size(); ++k) {
    Parameter& P = *params_[k].second;
    const double wd = (P.no_decay && !opt_.decay_norm_and_bias) ? 0.0 : opt_.weight_decay;
    float* p = P.value.data();
    const float* g = P.grad.data();
    float* m = m_[k].data();
    const int64_t n = P.value.numel();
    if (!adam) {
      const float mu = static_cast<float>(opt_.momentum), damp = static_cast<float>(1.0 - opt_.dampening);
      for (int64_t i = 0; i < n; ++i) {
        float d = g[i] + static_cast<float>(wd) * p[i];
        if (mu != 0.0f) {
          m[i] = steps_ == 1 ? d : mu * m[i] + damp * d;
          d = opt_.nesterov ? d + mu * m[i] : m[i];
        }
        p[i] -= static_cast<float>(lr) * d;
      }
      continue;
    }
    float* v = v_[k].data();
    const float b1 = static_cast<float>(opt_.beta1), b2 = static_cast<float>(opt_.beta2);
    // 1 - beta in double, then rounded, as PyTorch passes it: 1.0f - 0.999f would be off by
    // 1.3e-5 relative (0.999 is not exact in float) and bias every exp_avg_sq.
    const float c1 = static_cast<float>(1.0 - opt_.beta1), c2 = static_cast<float>(1.0 - opt_.beta2);
    const float step_size = static_cast<float>(lr / bc1);
    const float sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
    const float eps = static_cast<float>(opt_.eps);
    for (int64_t i = 0; i < n; ++i) {
      float d = g[i];
      if (decoupled) p[i] *= static_cast<float>(1.0 - lr * wd);
      else d += static_cast<float>(wd) * p[i];
      m[i] = b1 * m[i] + c1 * d;
      v[i] = b2 * v[i] + c2 * d * d;
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) / sqrt_bc2 + eps);
    }
  }
}

std::vector<std::pair<std::string, Tensor*>> Optimizer::state() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (size_t k = 0; k < params_.size(); ++k) {
    if (opt_.kind == "sgd") {
      out.emplace_back(params_[k].first + ".momentum_buffer", &m_[k]);
    } else {
      out.emplace_back(params_[k].first + ".exp_avg", &m_[k]);
      out.emplace_back(params_[k].first + ".exp_avg_sq", &v_[k]);
    }
  }
  return out;
}

}  // namespace normnet

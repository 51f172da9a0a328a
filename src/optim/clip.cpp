// Gradient-norm clipping, as torch.nn.utils.clip_grad_norm_ with norm type 2:
//   total = sqrt(sum_p sum_i g_p[i]^2),  c = max_norm / (total + 1e-6),  g *= c when c < 1.
// PyTorch 1.13 multiplies by min(c, 1) always; multiplying by 1 changes nothing, so skipping it
// is the same. The sum runs in double, in parameter (state_dict) order, on one thread, so the
// result does not depend on the thread count; PyTorch's float32 norms of norms agree with it to
// float rounding.
#include <cmath>

#include "normnet/error.h"
#include "normnet/optim.h"

namespace normnet {

double grad_norm(const std::vector<std::pair<std::string, Parameter*>>& params) {
  double sum = 0.0;
  for (const auto& [name, p] : params) {
    const float* g = p->grad.data();
    const int64_t n = p->grad.numel();
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(g[i]) * static_cast<double>(g[i]);
  }
  return std::sqrt(sum);
}

double clip_grad_norm(const std::vector<std::pair<std::string, Parameter*>>& params, double max_norm) {
  check(max_norm > 0 && std::isfinite(max_norm), "clip_grad_norm: max_norm must be positive and finite, got ",
        max_norm);
  const double total = grad_norm(params);
  if (!std::isfinite(total)) return total;
  const double c = max_norm / (total + 1e-6);
  if (c < 1.0) {
    const float cf = static_cast<float>(c);
    for (const auto& [name, p] : params) {
      float* g = p->grad.data();
      const int64_t n = p->grad.numel();
      for (int64_t i = 0; i < n; ++i) g[i] *= cf;
    }
  }
  return total;
}

}  // namespace normnet

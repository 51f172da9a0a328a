// Where a forward pass first stops being finite: the batch runs again, module by module, following
// the data through the containers (Sequential in order; Residual body, shortcut, sum, post;
// Concat branch by branch), and the first module whose output holds a NaN or an infinity is
// named. Running statistics and Dropout counters are put back afterwards, so the walk leaves
// the model as it found it (apart from the caches backward would use).
#include <cmath>
#include <vector>

#include "normnet/layers.h"
#include "normnet/train.h"
#include "train/model_state.h"

namespace normnet {
namespace {

bool finite(const Tensor& t) {
  const Tensor c = t.contiguous();
  const float* p = c.data();
  for (int64_t i = 0, n = c.numel(); i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

// Runs m on x; when some output on the way is not finite, sets `found` to the first module's
// label. Returns m's output.
Tensor walk(Module& m, const Tensor& x, std::string& found);

Tensor walk_sequential(Sequential& s, const Tensor& x, std::string& found) {
  Tensor h = x;
  for (size_t i = 0; i < s.size() && found.empty(); ++i) h = walk(s.at(i), h, found);
  return h;
}

Tensor walk(Module& m, const Tensor& x, std::string& found) {
  if (auto* s = dynamic_cast<Sequential*>(&m)) return walk_sequential(*s, x, found);
  if (auto* r = dynamic_cast<Residual*>(&m)) {
    Tensor a = walk_sequential(r->body(), x, found);
    if (!found.empty()) return a;
    Tensor b = r->shortcut() ? walk_sequential(*r->shortcut(), x, found) : x;
    if (!found.empty()) return b;
    a = a.contiguous();
    b = b.contiguous();
    Tensor sum(a.shape());
    for (int64_t i = 0; i < a.numel(); ++i) sum.data()[i] = a.data()[i] + b.data()[i];
    if (!finite(sum)) {
      found = m.label() + " (the sum of its body and shortcut)";
      return sum;
    }
    return r->post() ? walk(*r->post(), sum, found) : sum;
  }
  if (auto* c = dynamic_cast<Concat*>(&m)) {
    for (auto& [name, branch] : c->branches()) {
      walk_sequential(*branch, x, found);
      if (!found.empty()) return x;
    }
    return m.forward(x);  // every branch is finite, so is their concatenation
  }
  Tensor y = m.forward(x);
  if (!finite(y)) found = m.label();
  return y;
}

}  // namespace

std::string first_nonfinite_module(Model& m, const Tensor& x) {
  ForwardSideEffects saved(*m.net);
  saved.save();
  std::string found;
  if (!finite(x)) found = "the input";
  else walk(*m.net, x, found);
  saved.restore();
  return found;
}

}  // namespace normnet

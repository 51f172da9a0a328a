#include "normnet/module.h"

namespace normnet {

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children()) c->train(on);
}

std::vector<std::pair<std::string, Parameter*>> Module::named_parameters(const std::string& prefix) {
  std::vector<std::pair<std::string, Parameter*>> out;
  for (Parameter* p : own_parameters()) out.emplace_back(prefix + p->name, p);
  for (auto& [n, c] : children()) {
    auto sub = c->named_parameters(prefix + n + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<std::pair<std::string, Buffer>> Module::named_buffers(const std::string& prefix) {
  std::vector<std::pair<std::string, Buffer>> out;
  for (const Buffer& b : own_buffers()) out.emplace_back(prefix + b.name, b);
  for (auto& [n, c] : children()) {
    auto sub = c->named_buffers(prefix + n + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<std::pair<std::string, uint64_t*>> Module::named_counters(const std::string& prefix) {
  std::vector<std::pair<std::string, uint64_t*>> out;
  for (auto& [n, c] : own_counters()) out.emplace_back(prefix + n, c);
  for (auto& [n, c] : children()) {
    auto sub = c->named_counters(prefix + n + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

void Module::zero_grad() {
  for (auto& [n, p] : named_parameters()) p->grad.zero();
}

int64_t Module::parameter_count() {
  int64_t total = 0;
  for (auto& [n, p] : named_parameters()) total += p->value.numel();
  return total;
}

std::string Module::label() const { return kind() + " '" + (path.empty() ? "<root>" : path) + "'"; }

void set_input_is_data(Module& root) {
  Module* m = &root;
  for (;;) {
    const std::string k = m->kind();
    if (k == "Residual" || k == "Concat") return;
    auto kids = m->children();
    if (kids.empty()) break;
    m = kids.front().second;
  }
  m->needs_input_grad = false;
}

namespace {
thread_local bool g_grad_enabled = true;
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGrad::NoGrad() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGrad::~NoGrad() { g_grad_enabled = previous_; }

}  // namespace normnet

// parity_runner REQUEST.safetensors RESPONSE.safetensors: runs normnet on tensors sent by the
// PyTorch-parity scripts (tests/torch/test_*.py) and writes back what they compare.
//
// The request's metadata "op" is a JSON object; its tensors are the inputs. Modes:
//   "module": {"mode": "module", "model": MODEL, "train": bool, "steps": S, "activations": bool}
//     tensors "state.<name>" (a full state_dict, loaded with load_state_dict), and per step i:
//     "x.<i>" and optionally "dy.<i>" (no dy: forward only). Each step zeroes the gradients,
//     runs forward (and backward). Response per step: "y.<i>", "dx.<i>", "grad.<i>.<param>",
//     "state.<i>.<name>" (every parameter and buffer after the step), and with activations
//     the output of every top-level layer, "act.<i>.<layer>".
//   "train": {"mode": "train", "model": MODEL, "optimizer": {...OptimizerOptions fields},
//             "label_smoothing": 0.0, "clip_grad_norm": MAX (optional)}
//     tensors "state.<name>", "x" (S, B, ...), "labels" (S, B) I64. Runs S normnet::train_step
//     calls; response "losses" (S,) F64, after every step i the state "state.<i>.<name>", the
//     gradients "grad.<i>.<param>" of the step and the optimizer state
//     "opt.<i>.<param>.momentum_buffer" (sgd) or ".exp_avg", ".exp_avg_sq"; and the final
//     "state.<name>". With clip_grad_norm each step is zero_grad, forward, loss, backward,
//     normnet::clip_grad_norm, update (as the trainer), "grad.<i>.<param>" are the clipped
//     gradients, "raw_grad.<i>.<param>" the gradients before clipping and "grad_norms" (S,) F64
//     the total norms clip_grad_norm returned.
//   "loss": {"mode": "loss", "label_smoothing": 0.0}
//     tensors "logits" (N, K), "labels" (N,) I64; response "loss" () F64 and "dlogits" (N, K).
//   "echo": {"mode": "echo"}
//     the response is the request as read: every tensor (any dtype, shape, bytes) and the
//     metadata, written by normnet's writer (tests/torch/test_safetensors_interop.py).
// MODEL is a model description as in models/*.json (it must end in (N, classes)).
// On any error the message goes to stderr and the exit status is 1 (no response file).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "normnet/checkpoint.h"
#include "normnet/error.h"
#include "normnet/loss.h"
#include "normnet/model.h"
#include "normnet/optim.h"
#include "normnet/safetensors.h"
#include "normnet/train.h"

using json = nlohmann::json;
using namespace normnet;

namespace {

// Tensors "PREFIX<name>" of the request, renamed to <name>: a state_dict to load.
StFile with_prefix(const StFile& req, const std::string& prefix) {
  StFile f;
  for (const auto& [name, t] : req.tensors)
    if (name.rfind(prefix, 0) == 0) f.tensors[name.substr(prefix.size())] = t;
  return f;
}

void put_state(StFile& out, Model& m, const std::string& prefix) {
  for (auto& [name, t] : state_dict(m).tensors) out.tensors[prefix + name] = t;
}

void put_f64(StFile& out, const std::string& name, const std::vector<double>& v,
             std::vector<int64_t> shape) {
  out.put_raw(name, "F64", shape, v.data(), v.size() * sizeof(double));
}

std::vector<int32_t> labels_of(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

Model build(const json& op) {
  check(op.contains("model"), "op: missing 'model'");
  return build_model(op["model"].dump(), "op.model");
}

StFile run_module(const json& op, const StFile& req) {
  Model m = build(op);
  load_state_dict(m, with_prefix(req, "state."), "request state");
  m.net->train(op.value("train", true));
  StFile out;
  const int steps = op.value("steps", 1);
  const bool activations = op.value("activations", false);
  // Every layer's own output: without fusion (a fused BatchNorm returns the ReLU's or even the
  // pool's output). Fused and unfused give the same bits (fusion_module_test).
  if (activations) m.net->fuse(false);
  for (int i = 0; i < steps; ++i) {
    const std::string s = std::to_string(i);
    m.net->zero_grad();
    Tensor y = req.get_f32("x." + s);
    for (auto& [name, layer] : m.net->children()) {  // Sequential::forward, one layer at a time
      y = layer->forward(y);
      if (activations) out.put_f32("act." + s + "." + name, y);
    }
    out.put_f32("y." + s, y);
    if (req.has("dy." + s)) {
      Tensor dx = m.net->backward(req.get_f32("dy." + s));
      out.put_f32("dx." + s, dx);
      for (auto& [name, p] : m.net->named_parameters())
        out.put_f32("grad." + s + "." + name, p->grad);
    }
    put_state(out, m, "state." + s + ".");
  }
  return out;
}

OptimizerOptions optimizer_options(const json& j) {
  OptimizerOptions o;
  o.kind = j.value("kind", o.kind);
  o.lr = j.value("lr", o.lr);
  o.momentum = j.value("momentum", o.momentum);
  o.dampening = j.value("dampening", o.dampening);
  o.nesterov = j.value("nesterov", o.nesterov);
  o.weight_decay = j.value("weight_decay", o.weight_decay);
  o.beta1 = j.value("beta1", o.beta1);
  o.beta2 = j.value("beta2", o.beta2);
  o.eps = j.value("eps", o.eps);
  return o;
}

StFile run_train(const json& op, const StFile& req) {
  Model m = build(op);
  load_state_dict(m, with_prefix(req, "state."), "request state");
  m.net->train();
  const OptimizerOptions oo = optimizer_options(op.value("optimizer", json::object()));
  Optimizer opt(m.net->named_parameters(), oo);
  CrossEntropyLoss loss(op.value("label_smoothing", 0.0));
  const Tensor x = req.get_f32("x");  // (S, B, ...)
  const std::vector<int64_t> labels = req.get_i64("labels");
  const int64_t steps = x.dim(0), batch = x.dim(1);
  check(static_cast<int64_t>(labels.size()) == steps * batch, "labels: expected ", steps * batch,
        " values, got ", labels.size());
  std::vector<double> losses, grad_norms;
  const double clip = op.value("clip_grad_norm", 0.0);
  const auto params = m.net->named_parameters();
  StFile out;
  for (int64_t i = 0; i < steps; ++i) {
    const Tensor xi = x.slice(i, i + 1).reshape(m.batch_shape(batch));
    const std::vector<int32_t> yi =
        labels_of({labels.begin() + i * batch, labels.begin() + (i + 1) * batch});
    const std::string s = std::to_string(i);
    if (clip > 0) {
      opt.zero_grad();
      losses.push_back(loss.forward(m.net->forward(xi), yi));
      m.net->backward(loss.backward());
      for (auto& [name, p] : params) out.put_f32("raw_grad." + s + "." + name, p->grad);
      grad_norms.push_back(clip_grad_norm(params, clip));
      opt.step();
    } else {
      losses.push_back(train_step(m, loss, opt, xi, yi, nullptr));
    }
    put_state(out, m, "state." + s + ".");
    for (auto& [name, t] : opt.state()) out.put_f32("opt." + s + "." + name, *t);
    for (auto& [name, p] : m.net->named_parameters())
      out.put_f32("grad." + s + "." + name, p->grad);
  }
  put_f64(out, "losses", losses, {steps});
  if (clip > 0) put_f64(out, "grad_norms", grad_norms, {steps});
  put_state(out, m, "state.");
  return out;
}

StFile run_loss(const json& op, const StFile& req) {
  CrossEntropyLoss loss(op.value("label_smoothing", 0.0));
  const double l = loss.forward(req.get_f32("logits"), labels_of(req.get_i64("labels")));
  StFile out;
  put_f64(out, "loss", {l}, {});
  out.put_f32("dlogits", loss.backward());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: parity_runner REQUEST.safetensors RESPONSE.safetensors\n");
    return 2;
  }
  try {
    const StFile req = read_safetensors(argv[1]);
    auto it = req.metadata.find("op");
    check(it != req.metadata.end(), argv[1], ": no 'op' in the metadata");
    const json op = json::parse(it->second);
    const std::string mode = op.value("mode", "");
    StFile out;
    if (mode == "module") out = run_module(op, req);
    else if (mode == "train") out = run_train(op, req);
    else if (mode == "loss") out = run_loss(op, req);
    else if (mode == "echo") out = req;
    else fail("op: unknown mode '", mode, "' (expected module, train, loss or echo)");
    write_safetensors(argv[2], out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parity_runner: %s\n", e.what());
    return 1;
  }
  return 0;
}

// normnet model -> ONNX graph (opset 17). One function per layer kind below; each appends its
// node(s), takes the name of its input value and returns the name of its output value. Shapes
// are tracked for one sample ((1, ...)) only where a node needs them (GroupNorm's reshapes).
#include "io/onnx_export.h"

#include <nlohmann/json.hpp>
#include <set>

#include "io/onnx_proto.h"
#include "normnet/error.h"
#include "normnet/fold.h"
#include "normnet/layers.h"

namespace normnet {

namespace {

using onnx_io::add_attribute;

class GraphWriter {
 public:
  explicit GraphWriter(onnx::GraphProto* g) : g_(g) {}

  // x -> output value name; shape is the per-batch shape (batch 1) before and after.
  std::string sequence(Sequential& seq, const std::string& x, Shape& shape) {
    std::string v = x;
    for (auto& [name, m] : seq.children()) v = layer(*m, v, shape);
    return v;
  }

  int64_t nodes() const { return g_->node_size(); }

 private:
  onnx::GraphProto* g_;
  std::set<std::string> values_{"input"}, node_names_;

  // A fresh value name from a base ("layer1_0.conv1", then "layer1_0.conv1_1", ...).
  std::string fresh(const std::string& base) {
    std::string name = base.empty() ? "value" : base;
    for (int i = 1; values_.count(name); ++i) name = base + "_" + std::to_string(i);
    values_.insert(name);
    return name;
  }

  // Appends a node named after the layer; returns it with one fresh output named `out_base`.
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::string& out_base, const std::string& node_base) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    std::string name = node_base.empty() ? op : node_base;
    for (int i = 1; node_names_.count(name); ++i) name = node_base + "_" + std::to_string(i);
    node_names_.insert(name);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(fresh(out_base));
    return n;
  }

  std::string init(const std::string& name, const Tensor& t, const std::vector<int64_t>& dims = {}) {
    check(values_.insert(name).second, "export: initializer name '", name, "' is used twice");
    onnx_io::set_float_tensor(g_->add_initializer(), name, t, dims);
    return name;
  }
  std::string init_const(const std::string& name, int64_t n, float value) {
    check(values_.insert(name).second, "export: initializer name '", name, "' is used twice");
    onnx_io::set_float_tensor(g_->add_initializer(), name, std::vector<float>(n, value), {n});
    return name;
  }
  std::string init_i64(const std::string& base, const std::vector<int64_t>& v) {
    const std::string name = fresh(base);
    onnx_io::set_int64_tensor(g_->add_initializer(), name, v, {static_cast<int64_t>(v.size())});
    return name;
  }

  static std::string param(const Module& m, const char* local) {
    return m.path.empty() ? local : m.path + "." + local;
  }

  // BatchNormalization in inference mode from running statistics. momentum is ONNX's
  // (the weight of the old value: 1 - PyTorch's); < 0 leaves the attribute out.
  std::string batchnorm(const Module& m, const std::string& x, const Tensor* weight, const Tensor* bias,
                        const Tensor& mean, const Tensor& var, double eps, double onnx_momentum) {
    const int64_t C = mean.numel();
    const std::string scale = weight ? init(param(m, "weight"), *weight) : init_const(param(m, "weight"), C, 1.0f);
    const std::string b = bias ? init(param(m, "bias"), *bias) : init_const(param(m, "bias"), C, 0.0f);
    const std::string rm = init(param(m, "running_mean"), mean), rv = init(param(m, "running_var"), var);
    auto* n = node("BatchNormalization", {x, scale, b, rm, rv}, m.path, m.path);
    add_attribute(n, "epsilon", static_cast<float>(eps));
    if (onnx_momentum >= 0) add_attribute(n, "momentum", static_cast<float>(onnx_momentum));
    return n->output(0);
  }

  std::string activation(const Activation& a, const std::string& x, const std::string& path) {
    switch (a.act) {
      case ActivationKind::ReLU:
        return node("Relu", {x}, path, path)->output(0);
      case ActivationKind::LeakyReLU: {
        auto* n = node("LeakyRelu", {x}, path, path);
        add_attribute(n, "alpha", static_cast<float>(a.param));
        return n->output(0);
      }
      case ActivationKind::ELU: {
        auto* n = node("Elu", {x}, path, path);
        add_attribute(n, "alpha", static_cast<float>(a.param));
        return n->output(0);
      }
    }
    fail("export: ", a.label(), ": unknown activation");
  }

  std::string conv(Conv& c, const std::string& x) {
    const ConvOptions& o = c.opt;
    std::vector<std::string> in{x, init(param(c, "weight"), c.weight.value)};
    if (o.bias) in.push_back(init(param(c, "bias"), c.bias.value));
    auto* n = node("Conv", in, c.path, c.path);
    if (o.dims == 1) {
      add_attribute(n, "kernel_shape", std::vector<int64_t>{o.kernel_w});
      add_attribute(n, "strides", std::vector<int64_t>{o.stride_w});
      add_attribute(n, "pads", std::vector<int64_t>{o.pad_w, o.pad_w});
      add_attribute(n, "dilations", std::vector<int64_t>{o.dilation_w});
    } else {
      add_attribute(n, "kernel_shape", std::vector<int64_t>{o.kernel_h, o.kernel_w});
      add_attribute(n, "strides", std::vector<int64_t>{o.stride_h, o.stride_w});
      add_attribute(n, "pads", std::vector<int64_t>{o.pad_h, o.pad_w, o.pad_h, o.pad_w});
      add_attribute(n, "dilations", std::vector<int64_t>{o.dilation_h, o.dilation_w});
    }
    add_attribute(n, "group", o.groups);
    return n->output(0);
  }

  std::string pool(Pool& p, const std::string& x) {
    const PoolOptions& o = p.opt;
    auto* n = node(o.max ? "MaxPool" : "AveragePool", {x}, p.path, p.path);
    if (o.dims == 1) {
      add_attribute(n, "kernel_shape", std::vector<int64_t>{o.kernel_w});
      add_attribute(n, "strides", std::vector<int64_t>{o.stride_w});
      add_attribute(n, "pads", std::vector<int64_t>{o.pad_w, o.pad_w});
      if (o.max) add_attribute(n, "dilations", std::vector<int64_t>{o.dilation_w});
    } else {
      add_attribute(n, "kernel_shape", std::vector<int64_t>{o.kernel_h, o.kernel_w});
      add_attribute(n, "strides", std::vector<int64_t>{o.stride_h, o.stride_w});
      add_attribute(n, "pads", std::vector<int64_t>{o.pad_h, o.pad_w, o.pad_h, o.pad_w});
      if (o.max) add_attribute(n, "dilations", std::vector<int64_t>{o.dilation_h, o.dilation_w});
    }
    add_attribute(n, "ceil_mode", static_cast<int64_t>(o.ceil_mode));
    if (!o.max) add_attribute(n, "count_include_pad", static_cast<int64_t>(o.count_include_pad));
    return n->output(0);
  }

  // (N, C, *) -> Reshape (N, G, -1) -> InstanceNormalization (unit scale, zero bias) ->
  // Reshape back -> * weight + bias (initializers shaped (C, 1, ...) to broadcast).
  // GroupNormalization itself is opset 18 (and its scale changed meaning in opset 21).
  std::string groupnorm(GroupNorm& gn, const std::string& x, const Shape& in) {
    const int64_t G = gn.opt.num_groups, C = gn.opt.num_channels;
    const std::string p = gn.path;
    const std::string grouped = node("Reshape", {x, init_i64(p + "/groups_shape", {0, G, -1})}, p + "/grouped",
                                     p + "/reshape_groups")->output(0);
    auto* inorm = node("InstanceNormalization",
                       {grouped, init_const(p + "/group_scale", G, 1.0f), init_const(p + "/group_bias", G, 0.0f)},
                       p + "/normalized", p + "/normalize");
    add_attribute(inorm, "epsilon", static_cast<float>(gn.opt.eps));
    std::vector<int64_t> back{0};
    for (int i = 1; i < in.rank; ++i) back.push_back(in[i]);
    const bool affine = gn.opt.affine;
    std::string y = node("Reshape", {inorm->output(0), init_i64(p + "/shape", back)}, affine ? p + "/ungrouped" : p,
                         p + "/reshape_back")->output(0);
    if (!affine) return y;
    std::vector<int64_t> bcast{C};
    for (int i = 2; i < in.rank; ++i) bcast.push_back(1);
    y = node("Mul", {y, init(param(gn, "weight"), gn.weight.value, bcast)}, p + "/scaled", p + "/mul")->output(0);
    return node("Add", {y, init(param(gn, "bias"), gn.bias.value, bcast)}, p, p + "/add")->output(0);
  }

  std::string layernorm(LayerNorm& ln, const std::string& x) {
    const auto& ns = ln.opt.normalized_shape;
    std::vector<std::string> in{x};
    if (ln.opt.elementwise_affine) {
      in.push_back(init(param(ln, "weight"), ln.weight.value));
      in.push_back(init(param(ln, "bias"), ln.bias.value));
    } else {
      int64_t n = 1;
      for (int64_t d : ns) n *= d;
      const std::string s = fresh(ln.path + "/unit_scale");
      std::vector<int64_t> dims(ns.begin(), ns.end());
      onnx_io::set_float_tensor(g_->add_initializer(), s, std::vector<float>(n, 1.0f), dims);
      in.push_back(s);
    }
    auto* n = node("LayerNormalization", in, ln.path, ln.path);
    add_attribute(n, "axis", -static_cast<int64_t>(ns.size()));
    add_attribute(n, "epsilon", static_cast<float>(ln.opt.eps));
    return n->output(0);
  }

  std::string instancenorm(InstanceNorm& in, const std::string& x) {
    const InstanceNormOptions& o = in.opt;
    const Tensor* w = o.affine ? &in.weight.value : nullptr;
    const Tensor* b = o.affine ? &in.bias.value : nullptr;
    // With running statistics, evaluation normalizes with them: BatchNorm's evaluation.
    if (o.track_running_stats)
      return batchnorm(in, x, w, b, in.running_mean, in.running_var, o.eps, 1.0 - o.momentum);
    const std::string scale = w ? init(param(in, "weight"), *w) : init_const(param(in, "weight"), o.num_features, 1.0f);
    const std::string bias = b ? init(param(in, "bias"), *b) : init_const(param(in, "bias"), o.num_features, 0.0f);
    auto* n = node("InstanceNormalization", {x, scale, bias}, in.path, in.path);
    add_attribute(n, "epsilon", static_cast<float>(o.eps));
    return n->output(0);
  }

  [[noreturn]] static void no_running_stats(const Module& m) {
    fail("export: ", m.label(),
         " has track_running_stats off: it normalizes with batch statistics even in evaluation, "
         "which ONNX BatchNormalization (inference mode) cannot express");
  }

  std::string layer(Module& m, const std::string& x, Shape& shape) {
    const Shape in = shape;
    shape = m.output_shape(in);
    if (auto* c = dynamic_cast<Conv*>(&m)) return conv(*c, x);
    if (auto* l = dynamic_cast<Linear*>(&m)) {
      std::vector<std::string> args{x, init(param(*l, "weight"), l->weight.value)};
      if (l->has_bias) args.push_back(init(param(*l, "bias"), l->bias.value));
      auto* n = node("Gemm", args, l->path, l->path);
      add_attribute(n, "transB", int64_t{1});
      return n->output(0);
    }
    if (auto* bn = dynamic_cast<BatchNorm*>(&m)) {
      const BatchNormOptions& o = bn->opt;
      if (!o.track_running_stats) no_running_stats(m);
      return batchnorm(m, x, o.affine ? &bn->weight.value : nullptr, o.affine ? &bn->bias.value : nullptr,
                       bn->running_mean, bn->running_var, o.eps, o.momentum ? 1.0 - *o.momentum : -1.0);
    }
    if (auto* br = dynamic_cast<BatchRenorm*>(&m)) {  // evaluation is BatchNorm's
      const BatchRenormOptions& o = br->opt;
      return batchnorm(m, x, o.affine ? &br->weight.value : nullptr, o.affine ? &br->bias.value : nullptr,
                       br->running_mean, br->running_var, o.eps, o.momentum ? 1.0 - *o.momentum : -1.0);
    }
    if (auto* gb = dynamic_cast<GhostBatchNorm*>(&m)) {
      const GhostBatchNormOptions& o = gb->opt;
      if (!o.track_running_stats) no_running_stats(m);
      return batchnorm(m, x, o.affine ? &gb->weight.value : nullptr, o.affine ? &gb->bias.value : nullptr,
                       gb->running_mean, gb->running_var, o.eps, o.momentum ? 1.0 - *o.momentum : -1.0);
    }
    if (auto* fb = dynamic_cast<FrozenBatchNorm*>(&m))  // never updated: the old value keeps weight 1
      return batchnorm(m, x, &fb->weight, &fb->bias, fb->running_mean, fb->running_var, fb->eps, 1.0);
    if (auto* gn = dynamic_cast<GroupNorm*>(&m)) return groupnorm(*gn, x, in);
    if (auto* ln = dynamic_cast<LayerNorm*>(&m)) return layernorm(*ln, x);
    if (auto* inorm = dynamic_cast<InstanceNorm*>(&m)) return instancenorm(*inorm, x);
    if (auto* a = dynamic_cast<Activation*>(&m)) return activation(*a, x, m.path);
    if (auto* p = dynamic_cast<Pool*>(&m)) return pool(*p, x);
    if (dynamic_cast<GlobalAvgPool*>(&m)) {
      const std::string pooled = node("GlobalAveragePool", {x}, m.path + "/pooled", m.path)->output(0);
      auto* n = node("Flatten", {pooled}, m.path, m.path + "/flatten");
      add_attribute(n, "axis", int64_t{1});
      return n->output(0);
    }
    if (auto* r = dynamic_cast<Reshape*>(&m)) {
      if (r->target.empty()) {
        auto* n = node("Flatten", {x}, m.path, m.path);
        add_attribute(n, "axis", int64_t{1});
        return n->output(0);
      }
      std::vector<int64_t> s{0};  // 0: the input's batch size
      s.insert(s.end(), r->target.begin(), r->target.end());
      return node("Reshape", {x, init_i64(m.path + "/shape", s)}, m.path, m.path)->output(0);
    }
    if (dynamic_cast<Dropout*>(&m) || dynamic_cast<Identity*>(&m))  // evaluation: the identity
      return node("Identity", {x}, m.path, m.path)->output(0);
    if (auto* res = dynamic_cast<Residual*>(&m)) {
      Shape s = in;
      const std::string body = sequence(res->body(), x, s);
      std::string shortcut = x;
      if (res->shortcut() && res->shortcut()->size() > 0) {
        Shape t = in;
        shortcut = sequence(*res->shortcut(), x, t);
      }
      Module* post = res->post();
      const std::string sum = node("Add", {body, shortcut}, post ? m.path + "/sum" : m.path, m.path + "/add")->output(0);
      if (!post) return sum;
      auto* a = dynamic_cast<Activation*>(post);
      check(a != nullptr, "export: ", m.label(), ": its activation is not ReLU, LeakyReLU or ELU");
      return activation(*a, sum, post->path);
    }
    if (auto* cat = dynamic_cast<Concat*>(&m)) {
      std::vector<std::string> parts;
      for (auto& [name, branch] : cat->branches()) {
        Shape s = in;
        parts.push_back(sequence(*branch, x, s));  // an empty branch is x itself
      }
      auto* n = node("Concat", parts, m.path, m.path);
      add_attribute(n, "axis", int64_t{1});
      return n->output(0);
    }
    if (auto* seq = dynamic_cast<Sequential*>(&m)) {
      Shape s = in;
      return sequence(*seq, x, s);
    }
    fail("export: ", m.label(), ": layer type ", m.kind(), " has no ONNX mapping (see docs/onnx.md)");
  }
};

// Renames value `from` to `to` everywhere in the graph (the last layer's output -> "logits").
void rename_value(onnx::GraphProto* g, const std::string& from, const std::string& to) {
  for (auto& n : *g->mutable_node()) {
    for (auto& i : *n.mutable_input())
      if (i == from) i = to;
    for (auto& o : *n.mutable_output())
      if (o == from) o = to;
  }
}

void export_model(const std::string& path, Model& m, const Normalization& norm, OnnxExportReport* report) {
  onnx::ModelProto proto;
  proto.set_ir_version(onnx_io::kIrVersion);
  proto.set_producer_name("normnet");
  proto.set_producer_version("0.1.0");
  proto.set_model_version(1);
  proto.set_doc_string("normnet model '" + m.name + "' in evaluation mode; input normalized as (pixel/255 - mean) / std");
  auto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(onnx_io::kOpset);
  auto meta = [&](const std::string& k, const std::string& v) {
    auto* p = proto.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  };
  meta("normnet.model", m.spec);
  meta("normnet.normalization", nlohmann::json{{"mean", norm.mean}, {"std", norm.std}}.dump());

  onnx::GraphProto* g = proto.mutable_graph();
  g->set_name(m.name);
  std::vector<int64_t> in_dims{-1};
  in_dims.insert(in_dims.end(), m.input.begin(), m.input.end());
  onnx_io::set_float_value_info(g->add_input(), "input", in_dims);
  onnx_io::set_float_value_info(g->add_output(), "logits", {-1, m.classes});

  GraphWriter w(g);
  Shape shape = m.batch_shape(1);
  const std::string out = w.sequence(*m.net, "input", shape);
  check(out != "input", "export: model '", m.name, "' has no layers");
  rename_value(g, out, "logits");
  if (report) {
    report->nodes = w.nodes();
    report->initializers = g->initializer_size();
    report->opset = onnx_io::kOpset;
  }
  onnx_io::write_model(path, proto);
}

}  // namespace

void export_onnx(const std::string& path, Model& m, const Normalization& norm, const OnnxExportOptions& opt,
                 OnnxExportReport* report) {
  if (!opt.fold) return export_model(path, m, norm, report);
  FoldReport fr;
  Model folded = fold_batchnorm(m, &fr);
  if (report) {
    report->folded = fr.folded;
    report->kept = fr.kept;
  }
  export_model(path, folded, norm, report);
}

}  // namespace normnet

// ONNX graph -> normnet model description + state_dict (`normnet import`; docs/onnx.md, "Import").
//
// 1. Parse and bound: the file size, node and initializer counts, every tensor's rank (<= 5),
//    dimensions (positive, product without overflow) and data size (raw_data or the typed field
//    must hold exactly shape x dtype), no external data, no sparse initializers, no subgraphs
//    (If, Loop, Scan: a GRAPH attribute anywhere is refused), only the default operator domain,
//    opset 11 to 18, nodes in topological order, each value defined once.
// 2. One pass over the nodes. A node whose inputs are all constants (initializers, Constant
//    nodes, the shape of a data value) is evaluated on the spot: the shape arithmetic exporters
//    write (Shape, Gather, Slice, Concat, Unsqueeze, Squeeze, Reshape, Cast, Identity), where the
//    batch size is a symbol. Every other node is an Op on the data: one or a few normnet layers
//    (hyper-parameters, tensors, output shape computed by normnet's own module), or a join: Add
//    of two data values, Concat of data values along the channels.
// 3. The tree, from the graph output back to the input. Every path from the input to a join
//    passes through the join's immediate dominator f (the dominator of a layer's output is its
//    input; of a join's, the nearest common dominator of its operands), so a join is a block
//    whose parts are the chains from f to each operand: a Residual (Add; a part that is f itself
//    is the identity) or a Concat. Each Op must be reached exactly once, which holds exactly when
//    the graph is a nesting of sequences, residual additions and concatenations; a value shared
//    across blocks any other way is refused.
// 4. Rewrites on each chain (exporters spell some layers as several nodes): Pad then Conv or
//    AveragePool -> one padded layer; MatMul then Add of a constant -> Linear with bias; Reshape
//    (N, G, -1), InstanceNormalization with unit scale and zero bias, Reshape back -> GroupNorm,
//    then Mul and Add of per-channel constants -> its affine; Reshape (N, C, -1) before a global
//    average -> dropped; runs of Reshape/Flatten -> one (or none when the shape is unchanged);
//    Add then Relu (or Elu with alpha 1) -> the Residual's activation.
// 5. Names: a layer takes its name from its weight's initializer name ("layer1_0.conv1.weight")
//    or its node's name ("/layer1_0/relu/Relu" of torch.onnx, "layer1_0.relu" of normnet export)
//    when that fits where the layer sits in the tree, else its position, as nn.Sequential does.
// 6. build_model checks the description again (every shape), then the tensors are copied in by
//    state_dict name; num_batches_tracked, which ONNX does not hold, is 0.
//
// Files: this one drives the steps (1, the pass of 2, and 3 to 6); onnx_import_values.cpp decodes
// tensors and attributes and evaluates nodes on constants (step 2); onnx_import_ops.cpp converts
// each operator on the data (step 2); onnx_import_internal.h declares what they share.
#include "io/onnx_import.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "io/onnx_import_internal.h"
#include "normnet/fileio.h"

namespace normnet::onnx_import {

// ------------------------------------------------------------------ text and names from the file

namespace {

// Text from the file as printable ASCII (other bytes as '?'), for the description: protobuf
// strings need not be UTF-8, JSON's must (a producer name of bytes 0xfe 0xff made nlohmann's
// dump throw; found by fuzz/fuzz_onnx.cpp).
std::string printable(const std::string& s) {
  std::string out = s.substr(0, 200);
  for (char& c : out)
    if (c < 0x20 || c > 0x7e) c = '?';
  return out;
}

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 200) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

}  // namespace

// The module path a node name suggests: torch.onnx (1.13+) names nodes by module scope,
// "/layer1_0/conv1/Conv" or "/3/3.1/Reshape" (a child's scope may repeat its parent's path);
// normnet export by layer path, "layer1_0.conv1" or "layer1_0/add" for a layer's extra nodes.
std::string node_hint(const std::string& name) {
  if (name.empty()) return "";
  if (name[0] != '/') return name.substr(0, name.find('/'));
  std::vector<std::string> parts;
  size_t at = 1;
  while (at <= name.size()) {
    const size_t end = std::min(name.find('/', at), name.size());
    if (end > at) parts.push_back(name.substr(at, end - at));
    at = end + 1;
  }
  if (parts.size() < 2) return "";
  parts.pop_back();  // the operator ("Conv", "Relu_1")
  std::string path;
  for (const std::string& p : parts) {
    if (!path.empty() && p.rfind(path + ".", 0) == 0) path = p;
    else path = path.empty() ? p : path + "." + p;
  }
  return path;
}

// ------------------------------------------------------------------ step 1

void Importer::check_model() {
  check(m_.has_graph(), what_, ": the ONNX model has no graph");
  for (const auto& o : m_.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset_ = o.version();
  }
  check(opset_ != 0, what_, ": the model imports no opset of the default ONNX domain");
  check(opset_ >= kOnnxMinOpset && opset_ <= kOnnxMaxOpset, what_, ": opset ", opset_,
        " is not supported (normnet imports opsets ", kOnnxMinOpset, " to ", kOnnxMaxOpset, ")");
  report_.opset = opset_;
  report_.producer = printable(m_.producer_name() + (m_.producer_version().empty() ? "" : " " + m_.producer_version()));
  const onnx::GraphProto& g = m_.graph();
  check(g.node_size() <= kOnnxMaxNodes, what_, ": ", g.node_size(), " nodes exceed the limit of ",
        kOnnxMaxNodes);
  check(g.initializer_size() <= kOnnxMaxInitializers, what_, ": ", g.initializer_size(),
        " initializers exceed the limit of ", kOnnxMaxInitializers);
  check(g.sparse_initializer_size() == 0, what_, ": sparse initializers are not supported");
  report_.nodes = g.node_size();
  report_.initializers = g.initializer_size();
  // No subgraphs anywhere: the nesting depth of graphs is 1.
  for (int k = 0; k < g.node_size(); ++k) {
    const onnx::NodeProto& n = g.node(k);
    for (const auto& a : n.attribute())
      if (a.type() == onnx::AttributeProto::GRAPH || a.type() == onnx::AttributeProto::GRAPHS ||
          a.has_g() || a.graphs_size() > 0)
        bad("node '", n.name(), "' (", n.op_type(), "): attribute '", a.name(),
            "' holds a subgraph; graphs nested in nodes (If, Loop, Scan) are not supported");
  }
}

void Importer::read_initializers() {
  const onnx::GraphProto& g = m_.graph();
  for (const auto& t : g.initializer()) {
    const std::string what = "initializer '" + t.name() + "'";
    check(!t.name().empty(), what_, ": an initializer has no name");
    check(!consts_.count(t.name()), what_, ": ", what, " is defined twice");
    Const c;
    try {
      c = decode_tensor(t, what);
    } catch (const Error& e) {
      fail(what_, ": ", e.what());
    }
    c.origin = t.name();
    consts_.emplace(t.name(), std::move(c));
  }
}

void Importer::read_input() {
  const onnx::GraphProto& g = m_.graph();
  const onnx::ValueInfoProto* input = nullptr;
  int count = 0;
  for (const auto& v : g.input()) {
    if (consts_.count(v.name())) continue;  // IR < 4 lists initializers as inputs too
    input = &v;
    ++count;
  }
  check(count == 1, what_, ": the graph has ", count, " inputs (besides initializers); normnet takes one");
  const std::string where = "graph input '" + input->name() + "'";
  check(input->type().has_tensor_type(), what_, ": ", where, " is not a tensor");
  const auto& tt = input->type().tensor_type();
  check(tt.elem_type() == onnx::TensorProto::FLOAT, what_, ": ", where, " has element type ",
        find_dtype(tt.elem_type()) ? find_dtype(tt.elem_type())->name : "unknown", ", expected FLOAT");
  check(tt.has_shape(), what_, ": ", where, " has no shape; normnet needs (N, C, ...) with a fixed per-sample shape");
  const auto& shape = tt.shape();
  check(shape.dim_size() >= 2 && shape.dim_size() <= 4, what_, ": ", where, " has rank ",
        shape.dim_size(), "; normnet takes (N, C), (N, C, L) or (N, C, H, W)");
  std::vector<int64_t> dims{1};
  const auto& d0 = shape.dim(0);
  if (d0.has_dim_value()) {
    check(d0.dim_value() >= 1, what_, ": ", where, ": batch dimension ", d0.dim_value());
    fixed_batch_ = d0.dim_value();
  }
  int64_t numel = 1;
  for (int k = 1; k < shape.dim_size(); ++k) {
    const auto& d = shape.dim(k);
    check(d.has_dim_value(), what_, ": ", where, ": dimension ", k, " is symbolic ('", d.dim_param(),
          "'); normnet needs a fixed per-sample shape (only the batch may be symbolic)");
    check(d.dim_value() >= 1 && d.dim_value() <= kMaxInputDim, what_, ": ", where, ": dimension ", k,
          " is ", d.dim_value(), " (expected 1 to ", kMaxInputDim, ")");
    numel *= d.dim_value();
    check(numel <= kMaxInputElements, what_, ": ", where, ": more than ", kMaxInputElements,
          " values per sample");
    dims.push_back(d.dim_value());
  }
  define_data(input->name(), Shape(dims), -1, where);
  data_[0].idom = -1;
  data_[0].depth = 0;
}

void Importer::node(const onnx::NodeProto& n, int index) {
  const std::string where = "node '" + (n.name().empty() ? "#" + std::to_string(index) : n.name()) +
                            "' (" + n.op_type() + ")";
  check(n.domain().empty() || n.domain() == "ai.onnx", what_, ": ", where, ": operator domain '",
        n.domain(), "' is not supported (only the default ONNX domain)");
  check(n.input_size() <= kOnnxMaxNodeInputs, what_, ": ", where, ": ", n.input_size(),
        " inputs exceed the limit of ", kOnnxMaxNodeInputs);
  check(n.output_size() >= 1 && n.output_size() <= 8, what_, ": ", where, ": ", n.output_size(),
        " outputs (expected 1 to 8)");
  bool any_data = false;
  for (const auto& in : n.input()) {
    if (in.empty()) continue;
    check_input_defined(in, where);
    any_data = any_data || data_ids_.count(in) != 0;
  }
  // Outputs other than the first are training or index outputs normnet does not compute.
  for (int k = 1; k < n.output_size(); ++k) {
    if (n.output(k).empty()) continue;
    check_new_output(n.output(k), where);
    unusable_[n.output(k)] = "output " + std::to_string(k) + " of " + where +
                             ", which normnet does not compute (only the first output is supported)";
  }
  if (n.op_type() == "Shape" || !any_data) return eval_const(n, where);
  data_op(n, where);
}

// ------------------------------------------------------------------ step 3: the tree

void Importer::dominators(int id) {
  DataValue& v = data_[id];
  const Op& op = ops_[v.op];
  int d = op.in[0];
  for (size_t k = 1; k < op.in.size(); ++k) {  // nearest common dominator of the operands
    int b = op.in[k];
    while (d != b) {
      if (data_[d].depth < data_[b].depth) std::swap(d, b);
      d = data_[d].idom;
    }
  }
  v.idom = d;
  v.depth = data_[d].depth + 1;
}

std::vector<Layer> Importer::chain(int from, int to, int depth) {
  check(depth <= kOnnxMaxBlockDepth, what_, ": residual and concatenation blocks are nested deeper than ",
        kOnnxMaxBlockDepth);
  std::vector<Layer> rev;
  while (to != from) {
    const int o = data_[to].op;
    check(o >= 0, what_, ": internal: value '", data_[to].name, "' is not computed from '", data_[from].name, "'");
    Op& op = ops_[o];
    check(!op.visited, what_, ": ", op.where, ": its output '", data_[to].name,
          "' is used by two branches of a block; normnet models are nestings of sequences, residual "
          "additions and channel concatenations");
    op.visited = true;
    if (op.kind == Op::kLayers) {
      for (auto it = op.layers.rbegin(); it != op.layers.rend(); ++it) rev.push_back(std::move(*it));
      to = op.in[0];
      continue;
    }
    const int f = data_[to].idom;
    Layer block;
    block.where = op.where;
    block.in = data_[f].shape;
    block.out = data_[to].shape;
    if (op.kind == Op::kAdd) {
      block.type = "Residual";
      int body = op.in[0], shortcut = op.in[1];
      if (body == f) std::swap(body, shortcut);
      block.body = chain(f, body, depth + 1);
      block.has_shortcut = shortcut != f;
      if (block.has_shortcut) block.shortcut = chain(f, shortcut, depth + 1);
    } else {
      block.type = "Concat";
      for (int part : op.in) block.branches.push_back(chain(f, part, depth + 1));
    }
    rev.push_back(std::move(block));
    to = f;
  }
  std::reverse(rev.begin(), rev.end());
  return rev;
}

// ------------------------------------------------------------------ step 4: rewrites

namespace {

// Per-channel values of a constant that broadcasts to (N, C, ...) along the channels only, or
// an empty tensor when it does not.
Tensor per_channel(const Layer& L, const Shape& in) {
  const std::vector<int64_t>& dims = L.operand_dims;
  const int r = static_cast<int>(dims.size());
  if (r > in.rank || in.rank < 2) return Tensor();
  int64_t csize = 1;
  for (int j = 0; j < r; ++j) {
    const int k = in.rank - r + j;
    if (dims[j] == 1) continue;
    if (k != 1 || dims[j] != in[1]) return Tensor();
    csize = dims[j];
  }
  Tensor t(Shape{in[1]});
  for (int64_t c = 0; c < in[1]; ++c) t.data()[c] = L.operand.data()[csize == 1 ? 0 : c];
  return t;
}

bool is_shape_only(const Layer& L) { return L.type == "Flatten" || L.type == "Reshape"; }

}  // namespace

void Importer::rewrite(std::vector<Layer>& ls) {
  for (Layer& L : ls) {
    rewrite(L.body);
    rewrite(L.shortcut);
    for (auto& b : L.branches) rewrite(b);
  }
  std::vector<Layer> out;
  for (size_t i = 0; i < ls.size(); ++i) {
    Layer L = std::move(ls[i]);
    Layer* next = i + 1 < ls.size() ? &ls[i + 1] : nullptr;
    // Pad then Conv, or then AveragePool without padding of its own (floor mode): the padded zeros
    // are values the pooling counts, as count_include_pad does.
    if (L.type == "Pad") {
      const bool conv = next && (next->type == "Conv1d" || next->type == "Conv2d");
      const bool avg = next && next->type == "AvgPool2d" && next->spec["padding"] == json(0) &&
                       next->spec["ceil_mode"] == json(false);
      check(conv || avg, what_, ": ", L.where,
            ": non-zero padding is supported only right before a Conv, or an AveragePool without padding "
            "of its own");
      std::vector<int64_t> p = L.pads;
      if (conv) {
        json pj = next->spec["padding"];
        std::vector<int64_t> old = pj.is_array() ? pj.get<std::vector<int64_t>>()
                                                 : std::vector<int64_t>(p.size(), pj.get<int64_t>());
        for (size_t k = 0; k < p.size(); ++k) p[k] += old[k];
      } else {
        next->spec["count_include_pad"] = true;
      }
      next->spec["padding"] = size_json(p);
      next->in = L.in;
      next->where = L.where + " + " + next->where;
      notes_.insert("Pad merged into the padding of the Conv or AveragePool after it");
      continue;
    }
    // MatMul then Add of a constant: a Linear's bias.
    if (L.type == "Linear" && L.matmul && next && next->type == "AddConst") {
      const int64_t M = L.out[1];
      const auto& d = next->operand_dims;
      if (next->operand.numel() == M && (d == std::vector<int64_t>{M} || d == std::vector<int64_t>{1, M})) {
        L.tensors.emplace_back("bias", next->operand.reshape(Shape{M}));
        L.spec["bias"] = true;
        L.matmul = false;
        L.where += " + " + next->where;
        ++i;
        out.push_back(std::move(L));
        continue;
      }
    }
    // Reshape (N, G, -1), InstanceNormalization with unit affine, Reshape back: GroupNorm.
    if (L.type == "Reshape" && i + 2 < ls.size() && ls[i + 1].type == "InstanceNorm1d" && ls[i + 1].unit_affine &&
        is_shape_only(ls[i + 2]) && ls[i + 2].out == L.in && L.in.rank >= 3 && L.out.rank == 3 &&
        L.out[1] > 0 && L.in[1] % L.out[1] == 0) {
      Layer g;
      g.type = "GroupNorm";
      g.in = L.in;
      g.out = L.in;
      g.hint = L.hint;
      g.where = L.where + " + " + ls[i + 1].where + " + " + ls[i + 2].where;
      g.spec = {{"num_groups", L.out[1]}, {"num_channels", L.in[1]}, {"eps", ls[i + 1].spec["eps"]},
                {"affine", false}};
      i += 2;
      // Mul and Add of per-channel constants: the affine.
      Tensor weight, bias;
      if (i + 1 < ls.size() && ls[i + 1].type == "MulConst") {
        weight = per_channel(ls[i + 1], g.in);
        if (weight.defined()) {
          if (!ls[i + 1].hint.empty()) g.hint = ls[i + 1].hint;
          g.where += " + " + ls[i + 1].where;
          ++i;
        }
      }
      if (i + 1 < ls.size() && ls[i + 1].type == "AddConst") {
        bias = per_channel(ls[i + 1], g.in);
        if (bias.defined()) {
          g.where += " + " + ls[i + 1].where;
          ++i;
        }
      }
      if (weight.defined() || bias.defined()) {
        g.spec["affine"] = true;
        g.tensors.emplace_back("weight", weight.defined() ? weight : Tensor::full(Shape{g.in[1]}, 1.0f));
        g.tensors.emplace_back("bias", bias.defined() ? bias : Tensor(Shape{g.in[1]}));
      }
      notes_.insert("Reshape, InstanceNormalization, Reshape (and Mul, Add) recognized as GroupNorm");
      out.push_back(std::move(g));
      continue;
    }
    // A Reshape to (N, C, -1) before a global average changes nothing it computes.
    if (L.type == "Reshape" && next && next->type == "GlobalAvgPool" && L.in.rank >= 3 && L.in.rank <= 4 &&
        L.out.rank == 3 && L.out[1] == L.in[1]) {
      next->in = L.in;
      continue;
    }
    out.push_back(std::move(L));
  }
  ls = std::move(out);
  out.clear();
  for (size_t i = 0; i < ls.size(); ++i) {
    Layer L = std::move(ls[i]);
    // Runs of Flatten/Reshape: one layer for the last shape, none when nothing changes.
    if (is_shape_only(L)) {
      const Shape in = L.in;
      while (i + 1 < ls.size() && is_shape_only(ls[i + 1])) L = std::move(ls[++i]);
      if (L.out == in) continue;
      Layer merged = flatten_or_reshape(in, L.out, L.where);
      merged.hint = L.hint;
      merged.where = L.where;
      out.push_back(std::move(merged));
      continue;
    }
    // Add then ReLU (or ELU with alpha 1): the Residual's activation.
    if (L.type == "Residual" && L.activation.empty() && i + 1 < ls.size() &&
        (ls[i + 1].type == "ReLU" || (ls[i + 1].type == "ELU" && ls[i + 1].spec["alpha"] == json(1.0)))) {
      L.activation = ls[i + 1].type;
      ++i;
    }
    check(L.type != "MulConst" && L.type != "AddConst", what_, ": ", L.where, ": ",
          L.type == "MulConst" ? "multiplication" : "addition",
          " by a constant is supported only as a Linear's bias (after MatMul) or a GroupNorm's affine "
          "(after Reshape, InstanceNormalization, Reshape)");
    out.push_back(std::move(L));
  }
  ls = std::move(out);
}

// ------------------------------------------------------------------ step 5: names

namespace {

// The next path component under `prefix` that some leaf in ls suggests ("" if none does).
std::string suggested(const std::vector<Layer>& ls, const std::string& prefix) {
  for (const Layer& L : ls) {
    if (!L.hint.empty() && L.hint.size() > prefix.size() && L.hint.compare(0, prefix.size(), prefix) == 0 &&
        L.type != "Residual" && L.type != "Concat") {
      const std::string rest = L.hint.substr(prefix.size());
      return rest.substr(0, rest.find('.'));
    }
    std::string s = suggested(L.body, prefix);
    if (s.empty()) s = suggested(L.shortcut, prefix);
    for (const auto& b : L.branches)
      if (s.empty()) s = suggested(b, prefix);
    if (!s.empty()) return s;
  }
  return "";
}

}  // namespace

void Importer::name_chain(std::vector<Layer>& ls, const std::string& prefix) {
  std::set<std::string> used;
  for (size_t i = 0; i < ls.size(); ++i) {
    Layer& L = ls[i];
    std::string name;
    const bool block = L.type == "Residual" || L.type == "Concat";
    if (L.hint.size() > prefix.size() && L.hint.compare(0, prefix.size(), prefix) == 0) {
      const std::string rest = L.hint.substr(prefix.size());
      if (rest.find('.') == std::string::npos) name = rest;
    }
    if (block && (name.empty() || !valid_name(name) || used.count(name))) {
      std::string s = suggested(L.body, prefix);
      if (s.empty()) s = suggested(L.shortcut, prefix);
      for (const auto& b : L.branches)
        if (s.empty()) s = suggested(b, prefix);
      name = s;
    }
    if (name.empty() || !valid_name(name) || used.count(name)) {
      name = std::to_string(i);
      while (used.count(name)) name += "_";
    }
    used.insert(name);
    L.name = name;
    const std::string inner = prefix + name + ".";
    if (L.type == "Residual") {
      name_chain(L.body, inner);
      std::set<std::string> body_names;
      for (const Layer& b : L.body) body_names.insert(b.name);
      std::string s = suggested(L.shortcut, inner);
      if (s.empty() || !valid_name(s) || body_names.count(s) || s == "post") s = "shortcut";
      while (body_names.count(s) || s == "post") s += "_";
      L.shortcut_name = s;
      name_chain(L.shortcut, inner + s + ".");
    }
    if (L.type == "Concat") {
      std::set<std::string> bused;
      for (size_t k = 0; k < L.branches.size(); ++k) {
        std::string s = suggested(L.branches[k], inner);
        if (s.empty() || !valid_name(s) || bused.count(s)) s = std::to_string(k);
        while (bused.count(s)) s += "_";
        bused.insert(s);
        L.branch_names.push_back(s);
        name_chain(L.branches[k], inner + s + ".");
      }
    }
  }
}

json Importer::describe(const std::vector<Layer>& ls) const {
  json arr = json::array();
  for (const Layer& L : ls) {
    json j = {{"type", L.type}, {"name", L.name}};
    for (auto it = L.spec.begin(); it != L.spec.end(); ++it) j[it.key()] = it.value();
    if (L.type == "Residual") {
      j["body"] = describe(L.body);
      j["shortcut"] = L.has_shortcut ? describe(L.shortcut) : json(nullptr);
      j["shortcut_name"] = L.shortcut_name;
      j["activation"] = L.activation.empty() ? json(nullptr) : json(L.activation);
    }
    if (L.type == "Concat") {
      json b = json::array();
      for (size_t k = 0; k < L.branches.size(); ++k)
        b.push_back({{"name", L.branch_names[k]}, {"layers", describe(L.branches[k])}});
      j["branches"] = b;
    }
    arr.push_back(j);
  }
  return arr;
}

void Importer::collect(const std::vector<Layer>& ls, const std::string& prefix,
                       std::map<std::string, Tensor>& out) const {
  for (const Layer& L : ls) {
    const std::string path = prefix + L.name;
    for (const auto& [local, t] : L.tensors) out[path + "." + local] = t;
    collect(L.body, path + ".", out);
    collect(L.shortcut, path + "." + L.shortcut_name + ".", out);
    for (size_t k = 0; k < L.branches.size(); ++k)
      collect(L.branches[k], path + "." + L.branch_names[k] + ".", out);
  }
}

// ------------------------------------------------------------------ run

ImportedOnnx Importer::run() {
  check_model();
  read_initializers();
  read_input();
  const onnx::GraphProto& g = m_.graph();
  for (int k = 0; k < g.node_size(); ++k) node(g.node(k), k);

  check(g.output_size() == 1, what_, ": the graph has ", g.output_size(), " outputs; normnet gives one, the logits");
  const std::string& out_name = g.output(0).name();
  auto it = data_ids_.find(out_name);
  check(it != data_ids_.end(), what_, ": the graph output '", out_name, "' is ",
        consts_.count(out_name) ? "a constant" : "not computed by any node");
  const Shape out_shape = data_[it->second].shape;
  check(out_shape.rank == 2, what_, ": the graph output '", out_name, "' is ", shape_str(out_shape),
        "; normnet models end in (N, classes)");
  check(it->second != 0, what_, ": the graph output is its input: there are no layers");

  std::vector<Layer> layers = chain(0, it->second, 0);
  rewrite(layers);
  check(!layers.empty(), what_, ": the graph computes nothing normnet needs a layer for (its output is its input)");
  name_chain(layers, "");

  std::string name = printable(opt_.name);
  if (name.empty()) name = printable(g.name());
  if (name.empty()) name = "imported";
  json spec;
  spec["name"] = name;
  spec["description"] = "Imported from the ONNX file '" + printable(what_) + "' by normnet import (producer '" +
                        report_.producer + "', opset " + std::to_string(opset_) + ").";
  spec["notes"] = json(std::vector<std::string>(notes_.begin(), notes_.end()));
  spec["input"] = per_sample(data_[0].shape);
  spec["classes"] = out_shape[1];
  spec["layers"] = describe(layers);
  report_.notes.assign(notes_.begin(), notes_.end());

  ImportedOnnx r{build_model(spec.dump(-1, ' ', false, json::error_handler_t::replace),
                             what_ + " (imported model description)"),
                 {}, report_};
  std::map<std::string, Tensor> tensors;
  collect(layers, "", tensors);
  std::set<std::string> used;
  auto take = [&](const std::string& name, Tensor& dst) {
    auto t = tensors.find(name);
    check(t != tensors.end(), what_, ": internal: no value for '", name, "'");
    check(t->second.shape() == dst.shape(), what_, ": internal: '", name, "' has shape ", t->second.shape().str(),
          ", the model expects ", dst.shape().str());
    dst.copy_from(t->second);
    used.insert(name);
  };
  for (auto& [pname, p] : r.model.net->named_parameters()) take(pname, p->value);
  for (auto& [bname, b] : r.model.net->named_buffers()) {
    if (b.f32) take(bname, *b.f32);
    else *b.i64 = 0;  // num_batches_tracked: not in ONNX
  }
  for (const auto& [tname, t] : tensors)
    check(used.count(tname) != 0, what_, ": internal: '", tname, "' is not in the model");

  // Normalization: options, else the metadata normnet export writes, else none.
  for (const auto& p : m_.metadata_props()) {
    if (p.key() != "normnet.normalization") continue;
    try {
      const json n = json::parse(p.value());
      r.norm.mean = n.at("mean").get<float>();
      r.norm.std = n.at("std").get<float>();
    } catch (const json::exception& e) {
      fail(what_, ": bad 'normnet.normalization' metadata: ", e.what());
    }
  }
  if (opt_.mean) r.norm.mean = *opt_.mean;
  if (opt_.std) r.norm.std = *opt_.std;
  check(std::isfinite(r.norm.mean) && std::isfinite(r.norm.std) && r.norm.std > 0, what_,
        ": normalization mean ", r.norm.mean, ", std ", r.norm.std, " (std must be positive and finite)");
  return r;
}

}  // namespace normnet::onnx_import

namespace normnet {

ImportedOnnx import_onnx(const uint8_t* data, size_t size, const std::string& what, const OnnxImportOptions& opt) {
  check(size <= static_cast<uint64_t>(kOnnxMaxFileBytes), what, ": ", size, " bytes exceed the limit of ",
        kOnnxMaxFileBytes, " for an ONNX file");
  onnx::ModelProto m;
  check(m.ParseFromArray(data, static_cast<int>(size)), what,
        ": not an ONNX model (protobuf cannot parse it as onnx.ModelProto)");
  return onnx_import::Importer(m, what, opt).run();
}

ImportedOnnx import_onnx_file(const std::string& path, const OnnxImportOptions& opt) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    fail(path, ": cannot open the ONNX file: ", std::strerror(err));
  }
  check(static_cast<int64_t>(st.st_size) <= kOnnxMaxFileBytes, path, ": ", static_cast<int64_t>(st.st_size),
        " bytes exceed the limit of ", kOnnxMaxFileBytes, " for an ONNX file (protobuf's)");
  const std::vector<uint8_t> bytes = read_file(path);
  return import_onnx(bytes.data(), bytes.size(), path, opt);
}

}  // namespace normnet

// ONNX import, operators on the data (src/io/onnx_import.cpp describes the whole): step 2's
// converters, one per operator, each checking its node (attributes, constant inputs, shapes) and
// giving the normnet layers it stands for with their spec, tensors and output shapes (computed
// by normnet's own module), or a join (Add of two data values, Concat along the channels).
// Pieces that step 4 merges with their neighbours are layers too: Pad, MulConst, AddConst,
// Linear from MatMul without its bias. Conv, MaxPool and AveragePool read their window
// (kernel_shape, strides, dilations, pads) through one helper, window_attrs.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "io/onnx_import_internal.h"

namespace normnet::onnx_import {

// ------------------------------------------------------------------ small helpers

double short_float(float v) {
  if (!std::isfinite(v)) return v;
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf - 1, v);
  *r.ptr = 0;
  return std::strtod(buf, nullptr);
}

// PyTorch's momentum (the weight of the new batch) from ONNX's (the weight of the old running
// value): 1 - m, as the shortest decimal whose 1 - x rounds back to m (0.9f -> 0.1).
double torch_momentum(float onnx_momentum) {
  const double t = 1.0 - static_cast<double>(onnx_momentum);
  for (int p = 1; p <= 17; ++p) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", p, t);
    const double d = std::strtod(buf, nullptr);
    if (static_cast<float>(1.0 - d) == onnx_momentum) return d;
  }
  return t;
}

std::string strip_suffix(const std::string& name, const char* suffix) {
  const std::string s = std::string(".") + suffix;
  if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
    return name.substr(0, name.size() - s.size());
  return "";
}


Shape infer(Module& m, const Shape& in, const std::string& where) {
  try {
    return m.output_shape(in);
  } catch (const Error& e) {
    std::string why = e.what();
    const std::string own = m.label() + ": ";
    if (why.rfind(own, 0) == 0) why.erase(0, own.size());
    fail(where, ": ", why);
  }
}

Tensor to_tensor(const Const& c, const std::vector<int64_t>& dims) {
  Tensor t{Shape(dims)};
  std::copy(c.f->begin(), c.f->end(), t.data());
  return t;
}

// [a, b] as a JSON size: one integer when all are equal (PyTorch's style), else the array.
json size_json(const std::vector<int64_t>& v) {
  if (v.empty()) return json(0);
  bool same = true;
  for (int64_t x : v) same = same && x == v[0];
  return same ? json(v[0]) : json(v);
}

// ------------------------------------------------------------------ the window of Conv and pooling

namespace {

// The kernel, strides, dilations and pads of a Conv or pooling node, one value per spatial
// dimension.
struct Window {
  std::vector<int64_t> kernel, strides, dilations, pads;

  // Into ConvOptions or PoolOptions (the _h fields only with two spatial dimensions).
  template <typename Options>
  void set(Options& o) const {
    o.kernel_w = kernel.back();
    o.stride_w = strides.back();
    o.pad_w = pads.back();
    o.dilation_w = dilations.back();
    if (kernel.size() == 2) {
      o.kernel_h = kernel[0];
      o.stride_h = strides[0];
      o.pad_h = pads[0];
      o.dilation_h = dilations[0];
    }
  }
};

// An INTS attribute of one value per spatial dimension in [1, kMaxAttrValue]; 1 for each when
// absent. `at`: the file and node, for messages.
std::vector<int64_t> spatial_attr(const Attrs& a, const char* name, int spatial, const std::string& at) {
  const auto v = a.ints(name);
  if (!v) return std::vector<int64_t>(static_cast<size_t>(spatial), 1);
  check(static_cast<int>(v->size()) == spatial, at, ": '", name, "' has ", v->size(), " values for ", spatial,
        " spatial dimension", spatial == 1 ? "" : "s");
  for (int64_t x : *v)
    check(x >= 1 && x <= kMaxAttrValue, at, ": '", name, "' value ", x, " is outside [1, ", kMaxAttrValue, "]");
  return *v;
}

// auto_pad and pads as one padding per spatial dimension: auto_pad NOTSET or VALID, pads equal
// at both ends (normnet pads symmetrically).
std::vector<int64_t> symmetric_pads(const Attrs& a, int spatial, const std::string& at) {
  const std::string auto_pad = a.s("auto_pad", "NOTSET");
  if (auto_pad == "VALID") {
    check(!a.has("pads"), at, ": both auto_pad VALID and pads");
    return std::vector<int64_t>(static_cast<size_t>(spatial), 0);
  }
  check(auto_pad == "NOTSET", at, ": auto_pad '", auto_pad, "' is not supported (give explicit pads)");
  const auto v = a.ints("pads");
  if (!v) return std::vector<int64_t>(static_cast<size_t>(spatial), 0);
  check(static_cast<int>(v->size()) == 2 * spatial, at, ": 'pads' has ", v->size(), " values for ", spatial,
        " spatial dimension", spatial == 1 ? "" : "s", " (expected ", 2 * spatial, ")");
  std::vector<int64_t> p;
  for (int k = 0; k < spatial; ++k) {
    const int64_t b = (*v)[k], e = (*v)[k + spatial];
    check(b >= 0 && b <= kMaxAttrValue && e >= 0 && e <= kMaxAttrValue, at, ": pads ", dims_str(*v),
          " must be in [0, ", kMaxAttrValue, "]");
    check(b == e, at, ": pads ", dims_str(*v),
          " differ at the beginning and end of a dimension; normnet pads symmetrically");
    p.push_back(b);
  }
  return p;
}

// The window of Conv, MaxPool and AveragePool over `spatial` dimensions, checked in this order:
// the kernel, strides, dilations, pads. `weight`: Conv's weight dims, whose spatial part is the
// kernel (kernel_shape may be left out, else must agree); null for pooling, where kernel_shape
// is required. `dilated`: whether dilations other than 1 are supported (not by AveragePool).
Window window_attrs(const Attrs& a, int spatial, const std::vector<int64_t>* weight, bool dilated,
                    const std::string& at) {
  Window w;
  if (weight) {
    w.kernel.assign(weight->begin() + 2, weight->end());
    for (int64_t k : w.kernel) check(k <= kMaxAttrValue, at, ": kernel size ", k, " exceeds ", kMaxAttrValue);
    if (const auto ks = a.ints("kernel_shape"))
      check(*ks == w.kernel, at, ": kernel_shape ", dims_str(*ks), " differs from the weight's ",
            dims_str(*weight));
  } else {
    check(a.has("kernel_shape"), at, ": kernel_shape is missing");
    w.kernel = spatial_attr(a, "kernel_shape", spatial, at);
  }
  w.strides = spatial_attr(a, "strides", spatial, at);
  w.dilations = spatial_attr(a, "dilations", spatial, at);
  if (!dilated)
    for (int64_t d : w.dilations) check(d == 1, at, ": dilated average pooling is not supported");
  w.pads = symmetric_pads(a, spatial, at);
  return w;
}

}  // namespace

// ------------------------------------------------------------------ data ops (step 2)

Op Importer::conv(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  a.allow({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  check(in.rank == 3 || in.rank == 4, what_, ": ", where, ": input ", shape_str(in),
        "; normnet has Conv1d on (N, C, L) and Conv2d on (N, C, H, W)");
  const int sp = in.rank - 2;
  const Const& w = const_in(n, 1, "the weight", where, true);
  check(static_cast<int>(w.dims.size()) == in.rank, what_, ": ", where, ": weight shape ", dims_str(w.dims),
        " has rank ", w.dims.size(), ", expected ", in.rank);
  const Window win = window_attrs(a, sp, &w.dims, true, what_ + ": " + where);
  const int64_t group = a.i("group", 1);
  check(group >= 1 && group <= kMaxAttrValue, what_, ": ", where, ": group ", group);
  check(w.dims[1] * group == in[1], what_, ": ", where, ": weight ", dims_str(w.dims), " with group ", group,
        " takes ", w.dims[1] * group, " input channels, the input ", shape_str(in), " has ", in[1]);
  ConvOptions o;
  o.dims = sp;
  o.in_channels = in[1];
  o.out_channels = w.dims[0];
  o.groups = group;
  win.set(o);
  Layer L;
  if (present(n, 2)) {
    const Const& b = const_in(n, 2, "the bias", where, true);
    check(b.dims == std::vector<int64_t>{o.out_channels}, what_, ": ", where, ": bias shape ",
          dims_str(b.dims), ", expected [", o.out_channels, "]");
    L.tensors.emplace_back("bias", to_tensor(b, b.dims));
  }
  o.bias = present(n, 2);
  auto m = make_module<Conv>(what_ + ": " + where, o);
  L.type = sp == 1 ? "Conv1d" : "Conv2d";
  L.in = in;
  L.out = infer(*m, in, what_ + ": " + where);
  L.spec = {{"in_channels", o.in_channels}, {"out_channels", o.out_channels},
            {"kernel_size", size_json(win.kernel)}, {"stride", size_json(win.strides)},
            {"padding", size_json(win.pads)}, {"dilation", size_json(win.dilations)},
            {"groups", group}, {"bias", o.bias}};
  L.tensors.emplace(L.tensors.begin(), "weight", to_tensor(w, w.dims));
  L.hint = strip_suffix(w.origin, "weight");
  Op op;
  op.layers.push_back(std::move(L));
  return op;
}

Op Importer::batchnorm(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  a.allow({"epsilon", "momentum", "training_mode"});
  check(a.i("training_mode", 0) == 0, what_, ": ", where,
        ": training_mode 1 (batch statistics) is not supported; export the model in evaluation mode");
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  check(in.rank >= 2 && in.rank <= 4, what_, ": ", where, ": input ", shape_str(in),
        "; normnet has BatchNorm1d on (N, C) or (N, C, L) and BatchNorm2d on (N, C, H, W)");
  const int64_t C = in[1];
  const char* names[] = {"scale", "B", "input_mean", "input_var"};
  const char* locals[] = {"weight", "bias", "running_mean", "running_var"};
  Layer L;
  for (int k = 0; k < 4; ++k) {
    const Const& c = const_in(n, k + 1, names[k], where, true);
    check(c.dims == std::vector<int64_t>{C}, what_, ": ", where, ": ", names[k], " has shape ", dims_str(c.dims),
          ", expected [", C, "] for the input ", shape_str(in));
    L.tensors.emplace_back(locals[k], to_tensor(c, c.dims));
    if (L.hint.empty()) L.hint = strip_suffix(c.origin, locals[k]);
  }
  const float eps = a.f("epsilon", 1e-5f), mom = a.f("momentum", 0.9f);
  check(std::isfinite(mom) && mom >= 0 && mom <= 1, what_, ": ", where, ": momentum ", mom, " is outside [0, 1]");
  BatchNormOptions o;
  o.dims = in.rank == 4 ? 2 : 1;
  o.num_features = C;
  o.eps = short_float(eps);
  o.momentum = torch_momentum(mom);
  auto m = make_module<BatchNorm>(what_ + ": " + where, o);
  L.type = o.dims == 2 ? "BatchNorm2d" : "BatchNorm1d";
  L.in = in;
  L.out = infer(*m, in, what_ + ": " + where);
  L.spec = {{"num_features", C}, {"eps", o.eps}, {"momentum", *o.momentum}};
  notes_.insert("BatchNormalization: PyTorch momentum = 1 - ONNX momentum (ONNX weighs the old running "
                "value); running_var used as stored (ONNX's input_var, the population variance)");
  Op op;
  op.layers.push_back(std::move(L));
  return op;
}

Op Importer::pool(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  const bool max = n.op_type() == "MaxPool";
  if (max) a.allow({"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  else a.allow({"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"});
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  check(in.rank == 4 || (max && in.rank == 3), what_, ": ", where, ": input ", shape_str(in), "; normnet has ",
        max ? "MaxPool1d on (N, C, L) and MaxPool2d on (N, C, H, W)" : "AvgPool2d on (N, C, H, W)");
  check(a.i("storage_order", 0) == 0, what_, ": ", where, ": storage_order 1 is not supported");
  const int sp = in.rank - 2;
  const Window win = window_attrs(a, sp, nullptr, max, what_ + ": " + where);
  const int64_t ceil = a.i("ceil_mode", 0), cip = a.i("count_include_pad", 0);
  check(ceil == 0 || ceil == 1, what_, ": ", where, ": ceil_mode ", ceil);
  check(cip == 0 || cip == 1, what_, ": ", where, ": count_include_pad ", cip);
  PoolOptions o;
  o.dims = sp;
  o.max = max;
  win.set(o);
  o.ceil_mode = ceil == 1;
  o.count_include_pad = cip == 1;
  Pool m(o);
  Layer L;
  L.type = max ? (sp == 1 ? "MaxPool1d" : "MaxPool2d") : "AvgPool2d";
  L.in = in;
  L.out = infer(m, in, what_ + ": " + where);
  L.spec = {{"kernel_size", size_json(win.kernel)}, {"stride", size_json(win.strides)},
            {"padding", size_json(win.pads)}, {"ceil_mode", o.ceil_mode}};
  if (max) L.spec["dilation"] = size_json(win.dilations);
  else L.spec["count_include_pad"] = o.count_include_pad;
  Op op;
  op.layers.push_back(std::move(L));
  return op;
}

Op Importer::gemm(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  a.allow({"alpha", "beta", "transA", "transB"});
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  check(in.rank == 2, what_, ": ", where, ": input ", shape_str(in), ", expected (N, features)");
  check(a.i("transA", 0) == 0, what_, ": ", where, ": transA is not supported (the input must be (N, K))");
  const bool transB = a.i("transB", 0) != 0;
  const float alpha = a.f("alpha", 1.0f), beta = a.f("beta", 1.0f);
  const Const& b = const_in(n, 1, "B", where, true);
  check(b.dims.size() == 2, what_, ": ", where, ": B has shape ", dims_str(b.dims), ", expected rank 2");
  const int64_t K = transB ? b.dims[1] : b.dims[0], M = transB ? b.dims[0] : b.dims[1];
  check(K == in[1], what_, ": ", where, ": B ", dims_str(b.dims), transB ? " (transposed)" : "", " takes ", K,
        " features, the input ", shape_str(in), " has ", in[1]);
  Tensor w(Shape{M, K});  // Linear's (out, in)
  for (int64_t o = 0; o < M; ++o)
    for (int64_t k = 0; k < K; ++k)
      w.data()[o * K + k] = alpha * (transB ? (*b.f)[o * K + k] : (*b.f)[k * M + o]);
  Layer L;
  L.type = "Linear";
  L.tensors.emplace_back("weight", w);
  L.hint = strip_suffix(b.origin, "weight");
  if (alpha != 1.0f) notes_.insert("Gemm alpha folded into the Linear weight");
  if (present(n, 2)) {
    const Const& c = const_in(n, 2, "C", where, true);
    const int64_t cn = c.numel();
    check((cn == M && (c.dims.size() == 1 || (c.dims.size() == 2 && c.dims[0] == 1))) ||
              (cn == 1 && c.dims.size() <= 2),
          what_, ": ", where, ": C has shape ", dims_str(c.dims), ", expected [", M, "] (a bias per output)");
    Tensor bias(Shape{M});
    for (int64_t o = 0; o < M; ++o) bias.data()[o] = beta * (*c.f)[cn == 1 ? 0 : o];
    L.tensors.emplace_back("bias", bias);
    if (beta != 1.0f) notes_.insert("Gemm beta folded into the Linear bias");
  }
  const bool has_bias = present(n, 2);
  auto m = make_module<Linear>(what_ + ": " + where, K, M, has_bias);
  L.in = in;
  L.out = infer(*m, in, what_ + ": " + where);
  L.spec = {{"in_features", K}, {"out_features", M}, {"bias", has_bias}};
  Op op;
  op.layers.push_back(std::move(L));
  return op;
}

Op Importer::matmul(const onnx::NodeProto& n, const std::string& where) {
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  check(in.rank == 2, what_, ": ", where, ": input ", shape_str(in), ", expected (N, features)");
  const Const& b = const_in(n, 1, "B", where, true);
  check(b.dims.size() == 2 && b.dims[0] == in[1], what_, ": ", where, ": B has shape ", dims_str(b.dims),
        ", expected [", in[1], ", out]");
  const int64_t K = b.dims[0], M = b.dims[1];
  Tensor w(Shape{M, K});
  for (int64_t o = 0; o < M; ++o)
    for (int64_t k = 0; k < K; ++k) w.data()[o * K + k] = (*b.f)[k * M + o];
  auto m = make_module<Linear>(what_ + ": " + where, K, M, false);
  Layer L;
  L.type = "Linear";
  L.matmul = true;
  L.tensors.emplace_back("weight", w);
  L.in = in;
  L.out = infer(*m, in, what_ + ": " + where);
  L.spec = {{"in_features", K}, {"out_features", M}, {"bias", false}};
  L.hint = strip_suffix(b.origin, "weight");
  Op op;
  op.layers.push_back(std::move(L));
  return op;
}

Layer Importer::flatten_or_reshape(const Shape& in, const Shape& out, const std::string& where) const {
  Layer L;
  L.in = in;
  L.out = out;
  if (out.rank == 2) {
    L.type = "Flatten";
  } else {
    L.type = "Reshape";
    L.spec = {{"shape", per_sample(out)}};
  }
  Reshape m(out.rank == 2 ? std::vector<int64_t>{} : per_sample(out));
  const Shape check_out = infer(m, in, what_ + ": " + where);
  check(check_out == out, what_, ": ", where, ": internal: reshape to ", shape_str(out));
  return L;
}

Op Importer::reshape(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  Op op;
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  if (n.op_type() == "Flatten") {
    a.allow({"axis"});
    int64_t axis = a.i("axis", 1);
    if (axis < 0) axis += in.rank;
    check(axis == 1, what_, ": ", where, ": axis ", a.i("axis", 1),
          " mixes the batch dimension with others; only axis 1 ((N, ...) to (N, features)) is supported");
    op.layers.push_back(flatten_or_reshape(in, Shape{1, in.numel()}, where));
    return op;
  }
  a.allow({"allowzero"});
  const auto target = int_list(const_in(n, 1, "the shape", where, false), "the shape", where, true);
  check(!target.empty() && target.size() <= static_cast<size_t>(kOnnxMaxRank), what_, ": ", where,
        ": target shape ", dims_str(target), " must have rank 1 to ", kOnnxMaxRank);
  const bool allowzero = a.i("allowzero", 0) != 0;
  const int64_t sample = in.numel();  // per sample (batch 1)
  // The batch stays dimension 0: N (the shape of a data value), 0 (copy), -1 with the rest
  // giving one sample, or the graph's fixed batch size.
  std::vector<int64_t> out{1};
  const int64_t t0 = target[0];
  bool batch_first = t0 == kBatch || (t0 == 0 && !allowzero) || t0 == -1 || (fixed_batch_ > 0 && t0 == fixed_batch_);
  check(batch_first, what_, ": ", where, ": target shape ", dims_str(target),
        " does not keep the batch as dimension 0");
  int infer_at = t0 == -1 ? 0 : -1;
  int64_t known = 1;
  for (size_t k = 1; k < target.size(); ++k) {
    int64_t d = target[k];
    check(d != kBatch, what_, ": ", where, ": target shape ", dims_str(target), " moves the batch");
    if (d == 0 && !allowzero) {
      check(static_cast<int>(k) < in.rank, what_, ": ", where, ": 0 at position ", k, " copies no dimension of ",
            shape_str(in));
      d = in[static_cast<int>(k)];
    }
    if (d == -1) {
      check(infer_at < 0, what_, ": ", where, ": more than one -1 in ", dims_str(target));
      infer_at = static_cast<int>(k);
      out.push_back(1);
      continue;
    }
    check(d > 0, what_, ": ", where, ": size ", d, " in the target shape ", dims_str(target));
    check(!__builtin_mul_overflow(known, d, &known), what_, ": ", where, ": target shape overflows");
    out.push_back(d);
  }
  if (infer_at > 0) {
    check(sample % known == 0, what_, ": ", where, ": cannot reshape ", shape_str(in), " to ", dims_str(target));
    out[infer_at] = sample / known;
    known = sample;
  }
  check(known == sample, what_, ": ", where, ": cannot reshape ", shape_str(in), " to ", dims_str(target),
        " keeping the batch");
  op.layers.push_back(flatten_or_reshape(in, Shape(out), where));
  return op;
}

Op Importer::reduce_mean(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  a.allow({"axes", "keepdims", "noop_with_empty_axes"});
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  std::vector<int64_t> axes;
  if (auto v = a.ints("axes")) axes = *v;
  if (present(n, 1)) axes = int_list(const_in(n, 1, "axes", where, false), "axes", where);
  std::set<int64_t> got;
  for (int64_t ax : axes) {
    check(ax >= -in.rank && ax < in.rank, what_, ": ", where, ": axis ", ax, " is outside rank ", in.rank);
    got.insert(ax < 0 ? ax + in.rank : ax);
  }
  std::set<int64_t> spatial;
  for (int k = 2; k < in.rank; ++k) spatial.insert(k);
  check((in.rank == 3 || in.rank == 4) && got == spatial, what_, ": ", where, ": the mean over axes ",
        dims_str(axes), " of ", shape_str(in),
        " is not supported (only over every spatial axis: global average pooling)");
  return global_average(in, a.i("keepdims", 1) != 0, where);
}

Op Importer::global_average(const Shape& in, bool keepdims, const std::string& where) const {
  Op op;
  GlobalAvgPool m;
  Layer L;
  L.type = "GlobalAvgPool";
  L.in = in;
  L.out = infer(m, in, what_ + ": " + where);
  op.layers.push_back(L);
  if (keepdims) {
    std::vector<int64_t> kept{1, in[1]};
    for (int k = 2; k < in.rank; ++k) kept.push_back(1);
    op.layers.push_back(flatten_or_reshape(L.out, Shape(kept), where));
  }
  return op;
}

Op Importer::pad(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  a.allow({"mode"});
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  check(a.s("mode", "constant") == "constant", what_, ": ", where, ": mode '", a.s("mode", ""),
        "' is not supported (only constant zero padding)");
  const auto p = int_list(const_in(n, 1, "pads", where, false), "pads", where);
  check(static_cast<int>(p.size()) == 2 * in.rank, what_, ": ", where, ": pads ", dims_str(p), " for rank ", in.rank);
  if (present(n, 2)) {
    const Const& v = consts_.at(n.input(2));
    check(v.error.empty() && v.numel() == 1 && (v.is_float ? (*v.f)[0] == 0.0f : (*v.i)[0] == 0), what_, ": ",
          where, ": only padding with zeros is supported");
  }
  check(!present(n, 3), what_, ": ", where, ": the axes input is not supported");
  Op op;
  bool zero = true;
  for (int64_t v : p) zero = zero && v == 0;
  if (zero) return op;  // nothing to do: the output is the input
  check(p[0] == 0 && p[1] == 0 && p[in.rank] == 0 && p[in.rank + 1] == 0, what_, ": ", where,
        ": pads ", dims_str(p), " pad the batch or channel dimension");
  Layer L;
  L.type = "Pad";
  L.where = where;
  std::vector<int64_t> out = in.vec();
  for (int k = 2; k < in.rank; ++k) {
    check(p[k] == p[k + in.rank] && p[k] >= 0 && p[k] <= kMaxAttrValue, what_, ": ", where, ": pads ",
          dims_str(p), " are not symmetric and non-negative");
    L.pads.push_back(p[k]);
    out[k] += 2 * p[k];
  }
  L.in = in;
  L.out = Shape(out);
  op.layers.push_back(L);
  return op;
}

Op Importer::instancenorm(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  a.allow({"epsilon"});
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  check(in.rank == 3 || in.rank == 4, what_, ": ", where, ": input ", shape_str(in),
        "; normnet has InstanceNorm1d on (N, C, L) and InstanceNorm2d on (N, C, H, W)");
  const int64_t C = in[1];
  const Const& s = const_in(n, 1, "scale", where, true);
  const Const& b = const_in(n, 2, "B", where, true);
  for (const Const* c : {&s, &b})
    check(c->dims == std::vector<int64_t>{C}, what_, ": ", where, ": scale and B must have shape [", C,
          "], got ", dims_str(c->dims));
  InstanceNormOptions o;
  o.dims = in.rank == 4 ? 2 : 1;
  o.num_features = C;
  o.eps = short_float(a.f("epsilon", 1e-5f));
  o.affine = true;
  auto m = make_module<InstanceNorm>(what_ + ": " + where, o);
  Layer L;
  L.type = o.dims == 2 ? "InstanceNorm2d" : "InstanceNorm1d";
  L.in = in;
  L.out = infer(*m, in, what_ + ": " + where);
  L.unit_affine = std::all_of(s.f->begin(), s.f->end(), [](float v) { return v == 1.0f; }) &&
                  std::all_of(b.f->begin(), b.f->end(), [](float v) { return v == 0.0f; });
  L.spec = {{"num_features", C}, {"eps", o.eps}, {"affine", !L.unit_affine}};
  if (!L.unit_affine) {
    L.tensors.emplace_back("weight", to_tensor(s, s.dims));
    L.tensors.emplace_back("bias", to_tensor(b, b.dims));
    L.hint = strip_suffix(s.origin, "weight");
  }
  Op op;
  op.layers.push_back(std::move(L));
  return op;
}

Op Importer::layernorm(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  a.allow({"axis", "epsilon", "stash_type"});
  const int x = data_in(n, 0, where);
  const Shape in = data_[x].shape;
  int64_t axis = a.i("axis", -1);
  if (axis < 0) axis += in.rank;
  check(axis >= 1 && axis < in.rank, what_, ": ", where, ": axis ", a.i("axis", -1), " of ", shape_str(in),
        " (normnet normalizes trailing dimensions after the batch)");
  const std::vector<int64_t> ns(in.dims.begin() + axis, in.dims.begin() + in.rank);
  const Const& s = const_in(n, 1, "Scale", where, true);
  check(s.dims == ns, what_, ": ", where, ": Scale has shape ", dims_str(s.dims), ", expected ", dims_str(ns));
  const Const* b = nullptr;
  if (present(n, 2)) {
    b = &const_in(n, 2, "B", where, true);
    check(b->dims == ns, what_, ": ", where, ": B has shape ", dims_str(b->dims), ", expected ", dims_str(ns));
  }
  LayerNormOptions o;
  o.normalized_shape = ns;
  o.eps = short_float(a.f("epsilon", 1e-5f));
  const bool unit = std::all_of(s.f->begin(), s.f->end(), [](float v) { return v == 1.0f; }) &&
                    (!b || std::all_of(b->f->begin(), b->f->end(), [](float v) { return v == 0.0f; }));
  o.elementwise_affine = !unit;
  auto m = make_module<LayerNorm>(what_ + ": " + where, o);
  Layer L;
  L.type = "LayerNorm";
  L.in = in;
  L.out = infer(*m, in, what_ + ": " + where);
  L.spec = {{"normalized_shape", ns}, {"eps", o.eps}, {"elementwise_affine", !unit}};
  if (!unit) {
    L.tensors.emplace_back("weight", to_tensor(s, ns));
    Tensor bias{Shape(ns)};
    if (b) bias = to_tensor(*b, ns);
    L.tensors.emplace_back("bias", bias);
    L.hint = strip_suffix(s.origin, "weight");
  }
  Op op;
  op.layers.push_back(std::move(L));
  return op;
}

Op Importer::binary(const onnx::NodeProto& n, const std::string& where) {
  check(n.input_size() == 2 && present(n, 0) && present(n, 1), what_, ": ", where, ": expected two inputs");
  const bool add = n.op_type() == "Add";
  Op op;
  if (is_data(n, 0) && is_data(n, 1)) {
    check(add, what_, ": ", where, ": the product of two data values is not supported");
    const int a = data_ids_.at(n.input(0)), b = data_ids_.at(n.input(1));
    check(data_[a].shape == data_[b].shape, what_, ": ", where, ": operands ", shape_str(data_[a].shape), " and ",
          shape_str(data_[b].shape), " differ (a residual addition adds equal shapes)");
    op.kind = Op::kAdd;
    op.in = {a, b};
    return op;
  }
  const int k = is_data(n, 0) ? 1 : 0;
  const Const& c = const_in(n, k, "the constant operand", where, true);
  const Shape in = data_[data_in(n, 1 - k, where)].shape;
  check(static_cast<int>(c.dims.size()) <= in.rank, what_, ": ", where, ": constant ", dims_str(c.dims),
        " does not broadcast to ", shape_str(in));
  op.in = {data_in(n, 1 - k, where)};
  Layer L;
  L.type = add ? "AddConst" : "MulConst";
  L.where = where;
  L.in = L.out = in;
  L.operand = to_tensor(c, c.dims.empty() ? std::vector<int64_t>{1} : c.dims);
  L.operand_dims = c.dims;
  L.hint = strip_suffix(c.origin, add ? "bias" : "weight");
  op.layers.push_back(std::move(L));
  return op;
}

Op Importer::concat(const onnx::NodeProto& n, const Attrs& a, const std::string& where) {
  a.allow({"axis"});
  Op op;
  op.kind = Op::kConcat;
  Shape first;
  for (int k = 0; k < n.input_size(); ++k) {
    const int id = data_in(n, k, where);
    const Shape& s = data_[id].shape;
    if (k == 0) {
      first = s;
      int64_t axis = a.i("axis", 0);
      if (axis < 0) axis += s.rank;
      check(axis == 1 && s.rank >= 2, what_, ": ", where, ": axis ", a.i("axis", 0),
            "; normnet concatenates along the channels (axis 1)");
    } else {
      Shape x = s, y = first;
      x[1] = y[1] = 0;
      check(x == y, what_, ": ", where, ": input ", shape_str(s), " does not match ", shape_str(first),
            " outside the channel dimension");
    }
    op.in.push_back(id);
  }
  return op;
}

void Importer::data_op(const onnx::NodeProto& n, const std::string& where) {
  const std::string& t = n.op_type();
  const Attrs a(n, what_ + ": " + where);
  Op op;
  if (t == "Conv") {
    op = conv(n, a, where);
  } else if (t == "BatchNormalization") {
    op = batchnorm(n, a, where);
  } else if (t == "Relu" || t == "LeakyRelu" || t == "Elu") {
    if (t == "Relu") a.allow({});
    else a.allow({"alpha"});
    const Shape in = data_[data_in(n, 0, where)].shape;
    Layer L;
    L.in = L.out = in;
    if (t == "Relu") {
      L.type = "ReLU";
    } else if (t == "LeakyRelu") {
      L.type = "LeakyReLU";
      L.spec = {{"negative_slope", short_float(a.f("alpha", 0.01f))}};
    } else {
      L.type = "ELU";
      L.spec = {{"alpha", short_float(a.f("alpha", 1.0f))}};
    }
    op.layers.push_back(L);
  } else if (t == "MaxPool" || t == "AveragePool") {
    op = pool(n, a, where);
  } else if (t == "GlobalAveragePool") {
    a.allow({});
    op = global_average(data_[data_in(n, 0, where)].shape, true, where);
  } else if (t == "Flatten" || t == "Reshape") {
    op = reshape(n, a, where);
  } else if (t == "Gemm") {
    op = gemm(n, a, where);
  } else if (t == "MatMul") {
    a.allow({});
    op = matmul(n, where);
  } else if (t == "Add" || t == "Mul") {
    a.allow({});
    op = binary(n, where);
  } else if (t == "Concat") {
    op = concat(n, a, where);
  } else if (t == "Dropout") {
    a.allow({"seed", "ratio"});
    const Shape in = data_[data_in(n, 0, where)].shape;
    double p = short_float(a.f("ratio", 0.5f));
    check(p >= 0 && p < 1, what_, ": ", where, ": ratio ", p, " is outside [0, 1)");
    if (present(n, 1)) {
      const Const& r = const_in(n, 1, "ratio", where, true);
      check(r.numel() == 1 && (*r.f)[0] >= 0 && (*r.f)[0] < 1, what_, ": ", where, ": ratio must be one value in [0, 1)");
      p = short_float((*r.f)[0]);
    }
    if (present(n, 2)) {
      const Const& tm = const_in(n, 2, "training_mode", where, false);
      check(tm.numel() == 1 && (*tm.i)[0] == 0, what_, ": ", where,
            ": training_mode true (dropout at inference) is not supported");
    }
    Layer L;
    L.type = "Dropout";
    L.spec = {{"p", p}};
    L.in = L.out = in;
    op.layers.push_back(L);
  } else if (t == "Identity") {
    a.allow({});
    Layer L;
    L.type = "Identity";
    L.in = L.out = data_[data_in(n, 0, where)].shape;
    op.layers.push_back(L);
  } else if (t == "Pad") {
    op = pad(n, a, where);
  } else if (t == "ReduceMean") {
    op = reduce_mean(n, a, where);
  } else if (t == "InstanceNormalization") {
    op = instancenorm(n, a, where);
  } else if (t == "LayerNormalization") {
    op = layernorm(n, a, where);
  } else {
    bad(where, ": operator '", t, "' is not supported (supported: Conv, BatchNormalization, Relu, LeakyRelu, "
        "Elu, MaxPool, AveragePool, GlobalAveragePool, ReduceMean over the spatial axes, Flatten, "
        "Reshape, Gemm, MatMul, Add, Mul (GroupNorm's affine), Concat, Dropout, Identity, Pad (before "
        "Conv or AveragePool), InstanceNormalization, LayerNormalization, and shape arithmetic on "
        "constants)");
  }
  op.where = where;
  const int index = static_cast<int>(ops_.size());
  for (Layer& L : op.layers) {
    if (L.where.empty()) L.where = where;
    if (L.hint.empty()) L.hint = node_hint(n.name());
  }
  if (op.kind == Op::kLayers && op.in.empty()) op.in = {data_in(n, 0, where)};
  Shape out_shape;
  if (op.kind == Op::kLayers) {
    out_shape = op.layers.empty() ? data_[op.in[0]].shape : op.layers.back().out;
  } else if (op.kind == Op::kAdd) {
    out_shape = data_[op.in[0]].shape;
  } else {
    out_shape = data_[op.in[0]].shape;
    for (size_t k = 1; k < op.in.size(); ++k) out_shape[1] += data_[op.in[k]].shape[1];
  }
  ops_.push_back(std::move(op));
  ops_.back().out = define_data(n.output(0), out_shape, index, where);
  dominators(ops_.back().out);
}

}  // namespace normnet::onnx_import

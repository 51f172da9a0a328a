// Model descriptions (JSON) -> module trees. Layer types and argument names are PyTorch's
// (Conv2d: in_channels, out_channels, kernel_size, ...); unknown types and keys are errors so a
// typo never silently falls back to a default.
#include <nlohmann/json.hpp>
#include <set>

#include "nn/description_json.h"
#include "normnet/error.h"
#include "normnet/model.h"

namespace normnet {

using json = nlohmann::json;

namespace {

struct Ctx {
  std::string where;  // "models/seed001.json: layers[3] (Conv2d 'conv2')"
  int64_t* values = nullptr;  // parameter and buffer values of the layers built so far
};

// Bounds on what a description may ask for, checked before anything is allocated: a file of a
// few bytes must not make normnet allocate terabytes, nor overflow int64 in shape arithmetic
// (both found by fuzz/fuzz_model.cpp). Integers (sizes, channels, features, kernel, stride,
// padding, dilation, groups, steps) are at most 2^31 in magnitude, so that products of two of
// them (dilation * kernel) stay exact; a model holds at most 2^27 parameter and buffer values
// (512 MB of float32, as much again for gradients), ten times the zoo's largest (resnet18).
constexpr int64_t kMaxDescriptionInt = int64_t{1} << 31;
constexpr int64_t kMaxModelValues = int64_t{1} << 27;

// Adds the values of tensors of these shapes to the model's count; an error past the limit.
void reserve(const Ctx& c, std::initializer_list<std::initializer_list<int64_t>> shapes) {
  for (const auto& shape : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) {
      if (d <= 0) {  // the layer's constructor reports it
        n = 0;
        break;
      }
      if (__builtin_mul_overflow(n, d, &n)) n = INT64_MAX;
    }
    if (__builtin_add_overflow(*c.values, n, c.values)) *c.values = INT64_MAX;
    check(*c.values <= kMaxModelValues, c.where, ": the model would hold more than ", kMaxModelValues,
          " parameter and buffer values");
  }
}

void check_keys(const json& j, const std::set<std::string>& allowed, const Ctx& c) {
  for (auto it = j.begin(); it != j.end(); ++it)
    check(allowed.count(it.key()) != 0 || it.key() == "type" || it.key() == "name" || it.key() == "comment",
          c.where, ": unknown key '", it.key(), "'");
}

// An integer of at most kMaxDescriptionInt in magnitude.
bool in_range(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(kMaxDescriptionInt);
  if (!v.is_number_integer()) return false;
  const int64_t i = v.get<int64_t>();
  return i >= -kMaxDescriptionInt && i <= kMaxDescriptionInt;
}

int64_t get_int(const json& j, const char* key, int64_t dflt, const Ctx& c, bool required = false) {
  if (!j.contains(key)) {
    check(!required, c.where, ": missing required key '", key, "'");
    return dflt;
  }
  check(j[key].is_number_integer(), c.where, ": '", key, "' must be an integer, got ", j[key].dump());
  check(in_range(j[key]), c.where, ": '", key, "' is ", j[key].dump(), ", out of range (at most 2^31 in magnitude)");
  return j[key].get<int64_t>();
}

// kernel_size / stride / padding / dilation: an integer or [h, w] (2-d) / [l] (1-d).
std::pair<int64_t, int64_t> get_pair(const json& j, const char* key, int64_t dflt, const Ctx& c,
                                     bool required = false) {
  if (!j.contains(key)) {
    check(!required, c.where, ": missing required key '", key, "'");
    return {dflt, dflt};
  }
  const json& v = j[key];
  if (v.is_number_integer()) {
    check(in_range(v), c.where, ": '", key, "' is ", v.dump(), ", out of range (at most 2^31 in magnitude)");
    return {v.get<int64_t>(), v.get<int64_t>()};
  }
  check(v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer(),
        c.where, ": '", key, "' must be an integer or [h, w], got ", v.dump());
  check(in_range(v[0]) && in_range(v[1]), c.where, ": '", key, "' is ", v.dump(),
        ", out of range (at most 2^31 in magnitude)");
  return {v[0].get<int64_t>(), v[1].get<int64_t>()};
}

double get_num(const json& j, const char* key, double dflt, const Ctx& c) {
  if (!j.contains(key)) return dflt;
  check(j[key].is_number(), c.where, ": '", key, "' must be a number, got ", j[key].dump());
  return j[key].get<double>();
}

bool get_bool(const json& j, const char* key, bool dflt, const Ctx& c) {
  if (!j.contains(key)) return dflt;
  check(j[key].is_boolean(), c.where, ": '", key, "' must be true or false, got ", j[key].dump());
  return j[key].get<bool>();
}

std::unique_ptr<Sequential> build_sequence(const json& layers, Shape& shape, const std::string& base,
                                           const std::string& path_prefix, const std::string& src,
                                           int64_t* values);

ModulePtr build_layer(const json& j, Shape& shape, const Ctx& c, const std::string& path,
                      const std::string& src) {
  check(j.is_object(), c.where, ": a layer must be a JSON object");
  check(j.contains("type") && j["type"].is_string(), c.where, ": missing string key 'type'");
  const std::string t = j["type"];
  ModulePtr m;
  if (t == "Conv2d" || t == "Conv1d") {
    check_keys(j, {"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                   "groups", "bias"}, c);
    ConvOptions o;
    o.dims = t == "Conv1d" ? 1 : 2;
    o.in_channels = get_int(j, "in_channels", 0, c, true);
    o.out_channels = get_int(j, "out_channels", 0, c, true);
    std::tie(o.kernel_h, o.kernel_w) = get_pair(j, "kernel_size", 0, c, true);
    std::tie(o.stride_h, o.stride_w) = get_pair(j, "stride", 1, c);
    std::tie(o.pad_h, o.pad_w) = get_pair(j, "padding", 0, c);
    std::tie(o.dilation_h, o.dilation_w) = get_pair(j, "dilation", 1, c);
    o.groups = get_int(j, "groups", 1, c);
    o.bias = get_bool(j, "bias", true, c);
    reserve(c, {{o.out_channels, o.groups > 0 ? o.in_channels / o.groups : 0, o.dims == 1 ? 1 : o.kernel_h, o.kernel_w},
                {o.bias ? o.out_channels : 0}});
    try {
      m = std::make_unique<Conv>(o);
    } catch (const Error& e) {
      fail(c.where, ": ", e.what());
    }
  } else if (t == "Linear") {
    check_keys(j, {"in_features", "out_features", "bias"}, c);
    const int64_t in = get_int(j, "in_features", 0, c, true), out = get_int(j, "out_features", 0, c, true);
    const bool bias = get_bool(j, "bias", true, c);
    reserve(c, {{out, in}, {bias ? out : 0}});
    try {
      m = std::make_unique<Linear>(in, out, bias);
    } catch (const Error& e) {
      fail(c.where, ": ", e.what());
    }
  } else if (t == "BatchNorm2d" || t == "BatchNorm1d") {
    check_keys(j, {"num_features", "eps", "momentum", "affine", "track_running_stats"}, c);
    BatchNormOptions o;
    o.dims = t == "BatchNorm1d" ? 1 : 2;
    o.num_features = get_int(j, "num_features", 0, c, true);
    o.eps = get_num(j, "eps", 1e-5, c);
    if (j.contains("momentum") && j["momentum"].is_null()) o.momentum = std::nullopt;
    else o.momentum = get_num(j, "momentum", 0.1, c);
    o.affine = get_bool(j, "affine", true, c);
    o.track_running_stats = get_bool(j, "track_running_stats", true, c);
    reserve(c, {{4, o.num_features}});
    try {
      m = std::make_unique<BatchNorm>(o);
    } catch (const Error& e) {
      fail(c.where, ": ", e.what());
    }
  } else if (t == "GroupNorm") {
    check_keys(j, {"num_groups", "num_channels", "eps", "affine"}, c);
    GroupNormOptions o;
    o.num_groups = get_int(j, "num_groups", 0, c, true);
    o.num_channels = get_int(j, "num_channels", 0, c, true);
    o.eps = get_num(j, "eps", 1e-5, c);
    o.affine = get_bool(j, "affine", true, c);
    reserve(c, {{2, o.num_channels}});
    try {
      m = std::make_unique<GroupNorm>(o);
    } catch (const Error& e) {
      fail(c.where, ": ", e.what());
    }
  } else if (t == "LayerNorm") {
    check_keys(j, {"normalized_shape", "eps", "elementwise_affine"}, c);
    check(j.contains("normalized_shape"), c.where, ": missing required key 'normalized_shape'");
    const json& ns = j["normalized_shape"];  // an integer or [d1, d2, ...]
    LayerNormOptions o;
    o.normalized_shape.clear();
    for (const json& v : ns.is_array() ? ns : json::array({ns})) {
      check(v.is_number_integer() && in_range(v), c.where,
            ": 'normalized_shape' must be an integer or an array of integers (at most 2^31), got ", ns.dump());
      o.normalized_shape.push_back(v.get<int64_t>());
    }
    o.eps = get_num(j, "eps", 1e-5, c);
    o.elementwise_affine = get_bool(j, "elementwise_affine", true, c);
    for (int k = 0; k < 2; ++k) {
      int64_t n = 1;
      for (int64_t d : o.normalized_shape)
        if (d <= 0 || __builtin_mul_overflow(n, d, &n)) n = d <= 0 ? 0 : INT64_MAX;
      reserve(c, {{n}});
    }
    try {
      m = std::make_unique<LayerNorm>(o);
    } catch (const Error& e) {
      fail(c.where, ": ", e.what());
    }
  } else if (t == "InstanceNorm2d" || t == "InstanceNorm1d") {
    check_keys(j, {"num_features", "eps", "momentum", "affine", "track_running_stats"}, c);
    InstanceNormOptions o;
    o.dims = t == "InstanceNorm1d" ? 1 : 2;
    o.num_features = get_int(j, "num_features", 0, c, true);
    o.eps = get_num(j, "eps", 1e-5, c);
    check(!(j.contains("momentum") && j["momentum"].is_null()), c.where,
          ": 'momentum' must be a number (PyTorch's InstanceNorm has no cumulative average)");
    o.momentum = get_num(j, "momentum", 0.1, c);
    o.affine = get_bool(j, "affine", false, c);
    o.track_running_stats = get_bool(j, "track_running_stats", false, c);
    reserve(c, {{4, o.num_features}});
    try {
      m = std::make_unique<InstanceNorm>(o);
    } catch (const Error& e) {
      fail(c.where, ": ", e.what());
    }
  } else if (t == "ReLU") {
    check_keys(j, {"inplace"}, c);
    m = std::make_unique<Activation>(ActivationKind::ReLU);
  } else if (t == "LeakyReLU") {
    check_keys(j, {"negative_slope", "inplace"}, c);
    m = std::make_unique<Activation>(ActivationKind::LeakyReLU, get_num(j, "negative_slope", 0.01, c));
  } else if (t == "ELU") {
    check_keys(j, {"alpha", "inplace"}, c);
    m = std::make_unique<Activation>(ActivationKind::ELU, get_num(j, "alpha", 1.0, c));
  } else if (t == "MaxPool2d" || t == "MaxPool1d" || t == "AvgPool2d") {
    const bool avg = t == "AvgPool2d";
    if (avg) check_keys(j, {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"}, c);
    else check_keys(j, {"kernel_size", "stride", "padding", "dilation", "ceil_mode"}, c);
    PoolOptions o;
    o.dims = t == "MaxPool1d" ? 1 : 2;
    o.max = !avg;
    std::tie(o.kernel_h, o.kernel_w) = get_pair(j, "kernel_size", 0, c, true);
    std::tie(o.stride_h, o.stride_w) = get_pair(j, "stride", 0, c);
    if (!j.contains("stride") || j["stride"].is_null()) {
      o.stride_h = o.kernel_h;
      o.stride_w = o.kernel_w;
    }
    std::tie(o.pad_h, o.pad_w) = get_pair(j, "padding", 0, c);
    std::tie(o.dilation_h, o.dilation_w) = get_pair(j, "dilation", 1, c);
    o.ceil_mode = get_bool(j, "ceil_mode", false, c);
    o.count_include_pad = get_bool(j, "count_include_pad", true, c);
    m = std::make_unique<Pool>(o);
  } else if (t == "GlobalAvgPool") {
    check_keys(j, {}, c);
    m = std::make_unique<GlobalAvgPool>();
  } else if (t == "Flatten") {
    check_keys(j, {}, c);
    m = std::make_unique<Reshape>();
  } else if (t == "Reshape") {
    check_keys(j, {"shape"}, c);
    check(j.contains("shape") && j["shape"].is_array() && !j["shape"].empty(), c.where,
          ": 'shape' must be a non-empty array of per-sample sizes");
    std::vector<int64_t> s;
    for (auto& v : j["shape"]) {
      check(v.is_number_integer() && in_range(v) && v.get<int64_t>() > 0, c.where, ": bad size ", v.dump(), " in 'shape'");
      s.push_back(v.get<int64_t>());
    }
    m = std::make_unique<Reshape>(s);
  } else if (t == "Dropout") {
    check_keys(j, {"p", "inplace"}, c);
    const double p = get_num(j, "p", 0.5, c);
    check(p >= 0 && p <= 1, c.where, ": 'p' must be in [0, 1], got ", p);
    m = std::make_unique<Dropout>(p);
  } else if (t == "Identity") {
    check_keys(j, {}, c);
    m = std::make_unique<Identity>();
  } else if (t == "Concat") {
    // {"branches": [{"name": "b1x1", "layers": [...]}, ...]}: torch.cat of the branches on dim 1.
    check_keys(j, {"branches"}, c);
    check(j.contains("branches") && j["branches"].is_array() && !j["branches"].empty(), c.where,
          ": 'branches' must be a non-empty array of {\"name\", \"layers\"}");
    std::vector<std::pair<std::string, std::unique_ptr<Sequential>>> branches;
    std::set<std::string> bnames;
    Shape out;
    for (size_t i = 0; i < j["branches"].size(); ++i) {
      const json& b = j["branches"][i];
      const std::string bw = c.where + " branches[" + std::to_string(i) + "]";
      check(b.is_object() && b.contains("layers") && b["layers"].is_array(), bw,
            ": a branch must be {\"name\": ..., \"layers\": [...]}");
      for (auto it = b.begin(); it != b.end(); ++it)
        check(it.key() == "name" || it.key() == "layers" || it.key() == "comment", bw,
              ": unknown key '", it.key(), "'");
      std::string bname = std::to_string(i);
      if (b.contains("name")) {
        check(b["name"].is_string() && !b["name"].get<std::string>().empty() &&
                  b["name"].get<std::string>().find('.') == std::string::npos,
              bw, ": 'name' must be a non-empty string without dots");
        bname = b["name"];
      }
      check(bnames.insert(bname).second, bw, ": duplicate branch name '", bname, "'");
      Shape bs = shape;
      branches.emplace_back(bname, build_sequence(b["layers"], bs, bw, path + bname + ".", src, c.values));
      check(bs.rank >= 2, bw, ": gives ", bs.str(), ", expected (N, C, ...) to concatenate along C");
      if (i == 0) {
        out = bs;
      } else {
        Shape a = bs, o = out;
        a[1] = o[1] = 0;
        check(a == o, bw, ": gives ", bs.str(), " but the branches before give ", out.str(),
              ": all but the channel dimension must agree");
        out[1] += bs[1];
      }
    }
    m = std::make_unique<Concat>(std::move(branches));
    m->path = path.empty() ? path : path.substr(0, path.size() - 1);
    shape = out;
    return m;
  } else if (t == "Residual") {
    check_keys(j, {"body", "shortcut", "shortcut_name", "activation"}, c);
    check(j.contains("body") && j["body"].is_array(), c.where, ": 'body' must be an array of layers");
    Shape body_shape = shape, short_shape = shape;
    auto body = build_sequence(j["body"], body_shape, c.where + " body", path, src, c.values);
    check(!j.contains("shortcut_name") || (j["shortcut_name"].is_string() && !j["shortcut_name"].get<std::string>().empty() &&
                                           j["shortcut_name"].get<std::string>().find('.') == std::string::npos),
          c.where, ": 'shortcut_name' must be a non-empty string without dots");
    std::string sname = j.value("shortcut_name", std::string("shortcut"));
    std::unique_ptr<Sequential> shortcut;
    if (j.contains("shortcut") && !j["shortcut"].is_null()) {
      check(j["shortcut"].is_array(), c.where, ": 'shortcut' must be an array of layers or null");
      shortcut = build_sequence(j["shortcut"], short_shape, c.where + " shortcut", path + sname + ".", src, c.values);
    }
    check(body_shape == short_shape, c.where, ": the body gives ", body_shape.str(),
          " but the shortcut gives ", short_shape.str());
    ModulePtr post;
    if (j.contains("activation") && !j["activation"].is_null()) {
      const std::string a = j["activation"].is_string() ? j["activation"].get<std::string>() : "";
      if (a == "ReLU") post = std::make_unique<Activation>(ActivationKind::ReLU);
      else if (a == "ELU") post = std::make_unique<Activation>(ActivationKind::ELU, 1.0);
      else fail(c.where, ": 'activation' must be \"ReLU\", \"ELU\" or null, got ", j["activation"].dump());
      post->path = path + "post";
    }
    m = std::make_unique<Residual>(std::move(body), std::move(shortcut), sname, std::move(post));
    m->path = path.empty() ? path : path.substr(0, path.size() - 1);
    shape = body_shape;
    return m;
  } else if (t == "BatchRenorm2d" || t == "BatchRenorm1d") {
    check_keys(j, {"num_features", "eps", "momentum", "r_max", "d_max", "affine", "warmup"}, c);
    BatchRenormOptions o;
    o.dims = t == "BatchRenorm1d" ? 1 : 2;
    o.num_features = get_int(j, "num_features", 0, c, true);
    o.eps = get_num(j, "eps", 1e-5, c);
    if (j.contains("momentum") && j["momentum"].is_null()) o.momentum = std::nullopt;
    else o.momentum = get_num(j, "momentum", 0.01, c);
    o.r_max = get_num(j, "r_max", 3.0, c);
    o.d_max = get_num(j, "d_max", 5.0, c);
    o.affine = get_bool(j, "affine", true, c);
    reserve(c, {{6, o.num_features}});  // with last_r, last_d
    if (j.contains("warmup")) {
      const json& w = j["warmup"];
      check(w.is_array() && w.size() == 2 && in_range(w[0]) && in_range(w[1]),
            c.where, ": 'warmup' must be [start_step, end_step], got ", w.dump());
      o.warmup_start = w[0].get<int64_t>();
      o.warmup_end = w[1].get<int64_t>();
    }
    try {
      m = std::make_unique<BatchRenorm>(o);
    } catch (const Error& e) {
      fail(c.where, ": ", e.what());
    }
  } else if (t == "GhostBatchNorm2d" || t == "GhostBatchNorm1d") {
    check_keys(j, {"num_features", "virtual_batch_size", "eps", "momentum", "affine",
                   "track_running_stats"}, c);
    GhostBatchNormOptions o;
    o.dims = t == "GhostBatchNorm1d" ? 1 : 2;
    o.num_features = get_int(j, "num_features", 0, c, true);
    o.virtual_batch_size = get_int(j, "virtual_batch_size", 0, c, true);
    o.eps = get_num(j, "eps", 1e-5, c);
    if (j.contains("momentum") && j["momentum"].is_null()) o.momentum = std::nullopt;
    else o.momentum = get_num(j, "momentum", 0.1, c);
    o.affine = get_bool(j, "affine", true, c);
    o.track_running_stats = get_bool(j, "track_running_stats", true, c);
    reserve(c, {{4, o.num_features}});
    try {
      m = std::make_unique<GhostBatchNorm>(o);
    } catch (const Error& e) {
      fail(c.where, ": ", e.what());
    }
  } else if (t == "FrozenBatchNorm2d") {
    check_keys(j, {"num_features", "eps"}, c);
    const int64_t nf = get_int(j, "num_features", 0, c, true);
    const double eps = get_num(j, "eps", 1e-5, c);
    reserve(c, {{4, nf}});
    try {
      m = std::make_unique<FrozenBatchNorm>(nf, eps);
    } catch (const Error& e) {
      fail(c.where, ": ", e.what());
    }
  } else {
    fail(c.where, ": unknown layer type '", t,
         "' (known: Conv1d, Conv2d, Linear, BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, "
         "InstanceNorm1d, InstanceNorm2d, BatchRenorm1d, BatchRenorm2d, GhostBatchNorm1d, "
         "GhostBatchNorm2d, FrozenBatchNorm2d, ReLU, LeakyReLU, ELU, "
         "MaxPool1d, MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten, Reshape, Dropout, Identity, Residual, Concat)");
  }
  m->path = path.empty() ? path : path.substr(0, path.size() - 1);
  try {
    shape = m->output_shape(shape);
  } catch (const Error& e) {
    // Name the layer as every other description error does ("src: layers[4] (Conv2d 'conv2'):
    // ..."), not by its label alone, which gives no position in the file.
    std::string why = e.what();
    const std::string own = m->label() + ": ";
    if (why.rfind(own, 0) == 0) why.erase(0, own.size());
    fail(c.where, ": ", why);
  }
  return m;
}

std::unique_ptr<Sequential> build_sequence(const json& layers, Shape& shape, const std::string& base,
                                           const std::string& path_prefix, const std::string& src,
                                           int64_t* values) {
  auto seq = std::make_unique<Sequential>();
  check(layers.is_array(), base, ": 'layers' must be an array");
  std::set<std::string> names;
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& j = layers[i];
    std::string name = std::to_string(i);
    if (j.is_object() && j.contains("name")) {
      check(j["name"].is_string() && !j["name"].get<std::string>().empty() &&
                j["name"].get<std::string>().find('.') == std::string::npos,
            base, ": layers[", i, "]: 'name' must be a non-empty string without dots");
      name = j["name"];
    }
    check(names.insert(name).second, base, ": layers[", i, "]: duplicate layer name '", name, "'");
    Ctx c;
    c.values = values;
    c.where = base + ": layers[" + std::to_string(i) + "]" +
              (j.is_object() && j.contains("type") && j["type"].is_string()
                   ? " (" + j["type"].get<std::string>() + " '" + path_prefix + name + "')"
                   : "");
    seq->add(name, build_layer(j, shape, c, path_prefix + name + ".", src));
  }
  return seq;
}

}  // namespace

Shape Model::batch_shape(int64_t n) const {
  std::vector<int64_t> d{n};
  d.insert(d.end(), input.begin(), input.end());
  return Shape(d);
}

void Model::init_parameters(uint64_t seed) {
  Rng rng(seed);
  // Walk modules depth-first so the draw order is the state_dict order.
  std::vector<Module*> order;
  auto visit = [&](auto&& self, Module* m) -> void {
    order.push_back(m);
    for (auto& [n, c] : m->children()) self(self, c);
  };
  visit(visit, net.get());
  for (Module* m : order) m->reset_parameters(rng);
}

Model build_model(const std::string& text, const std::string& source) {
  json j = parse_description(text, source);  // nesting bounded (src/nn/description_json.h)
  check(j.is_object(), source, ": a model description must be a JSON object");
  Ctx top{source};
  check_keys(j, {"description", "notes", "input", "classes", "layers", "adapted_from"}, top);
  Model m;
  // json::value would throw nlohmann's type_error for a name that is not a string (found by
  // fuzz/fuzz_model.cpp).
  if (j.contains("name") && !j["name"].is_string()) fail(source, ": 'name' must be a string, got ", j["name"].dump());
  m.name = j.value("name", std::string("model"));
  m.spec = j.dump();
  check(j.contains("input") && j["input"].is_array() && !j["input"].empty() && j["input"].size() <= 3,
        source, ": 'input' must be the per-sample shape, e.g. [1, 28, 28]");
  for (auto& v : j["input"]) {
    check(v.is_number_integer() && v.get<int64_t>() > 0 && v.get<int64_t>() <= (1 << 20), source,
          ": bad input size ", v.dump());
    m.input.push_back(v.get<int64_t>());
  }
  m.classes = get_int(j, "classes", 10, top);
  check(m.classes >= 2 && m.classes <= 100000, source, ": 'classes' must be in [2, 100000]");
  check(j.contains("layers"), source, ": missing 'layers'");
  Shape shape = m.batch_shape(1);
  int64_t values = 0;
  m.net = build_sequence(j["layers"], shape, source, "", source, &values);
  check(shape.rank == 2 && shape[1] == m.classes, source, ": the network's output is ", shape.str(),
        " for one sample but the model has ", m.classes,
        " classes: the last layer must give (N, classes)");
  m.net->fuse();  // BN+ReLU and BN+add+ReLU fused kernels; same numbers and names
  m.init_parameters(0);
  return m;
}

}  // namespace normnet

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
#include "io/onnx_import.h"

#include <onnx/onnx_pb.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/layers.h"

namespace normnet {

namespace {

using json = nlohmann::json;

// The symbolic batch size inside shape values (Shape of a data value).
constexpr int64_t kBatch = std::numeric_limits<int64_t>::min();
// Values computed from constants (shape arithmetic) are small; this bounds what a file can make
// the importer allocate through them.
constexpr int64_t kMaxComputedElements = int64_t{1} << 16;
// Kernel sizes, strides, paddings, dilations, groups, axes.
constexpr int64_t kMaxAttrValue = int64_t{1} << 20;
constexpr int64_t kMaxInputDim = int64_t{1} << 20;  // as the model format's "input"
constexpr int64_t kMaxInputElements = int64_t{1} << 24;

// ------------------------------------------------------------------ small helpers

std::string dims_str(const std::vector<int64_t>& d) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < d.size(); ++i) {
    s << (i ? ", " : "");
    if (d[i] == kBatch) s << "N";
    else s << d[i];
  }
  s << "]";
  return s.str();
}

// (N, C, H, W) with the batch dimension written N.
std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "(N";
  for (int i = 1; i < s.rank; ++i) o << ", " << s[i];
  o << ")";
  return o.str();
}

std::vector<int64_t> per_sample(const Shape& s) {
  std::vector<int64_t> v = s.vec();
  v.erase(v.begin());
  return v;
}

// The float as the shortest decimal that reads back as the same float, as a double: ONNX
// attributes are float, so PyTorch's eps 1e-5 arrives as 9.99999975e-06 and leaves as 1e-05.
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

// "layer1_0.conv1" from "layer1_0.conv1.weight" (suffix "weight"); "" when it does not end so.
std::string strip_suffix(const std::string& name, const char* suffix) {
  const std::string s = std::string(".") + suffix;
  if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
    return name.substr(0, name.size() - s.size());
  return "";
}

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

// ------------------------------------------------------------------ tensors

struct DtypeInfo {
  int code;
  const char* name;
  int64_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {1, "FLOAT", 4},  {2, "UINT8", 1},   {3, "INT8", 1},   {4, "UINT16", 2},     {5, "INT16", 2},
    {6, "INT32", 4},  {7, "INT64", 8},   {8, "STRING", 0}, {9, "BOOL", 1},       {10, "FLOAT16", 2},
    {11, "DOUBLE", 8}, {12, "UINT32", 4}, {13, "UINT64", 8}, {14, "COMPLEX64", 8}, {15, "COMPLEX128", 16},
    {16, "BFLOAT16", 2},
};

const DtypeInfo* find_dtype(int code) {
  for (const DtypeInfo& d : kDtypes)
    if (d.code == code) return &d;
  return nullptr;
}

// A constant: float (FLOAT, DOUBLE) or integer (every integer type and BOOL, as int64; the
// symbolic batch size kBatch may appear in shape values). `error` set: present but unusable
// (another data type); says why when something uses it.
struct Const {
  bool is_float = true;
  std::vector<int64_t> dims;
  std::shared_ptr<const std::vector<float>> f;
  std::shared_ptr<const std::vector<int64_t>> i;
  std::string origin;  // the initializer it comes from (through Identity, Unsqueeze, ...)
  std::string error;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;  // bounded when created
    return n;
  }
};

template <typename T>
void read_le(const std::string& raw, int64_t n, std::vector<T>& out) {
  out.resize(static_cast<size_t>(n));
  if (n > 0) std::memcpy(out.data(), raw.data(), static_cast<size_t>(n) * sizeof(T));
}

// Checks and decodes a TensorProto (`what`: "initializer 'x'", "node 'c' (Constant): value").
Const decode_tensor(const onnx::TensorProto& t, const std::string& what) {
  Const c;
  check(t.dims_size() <= kOnnxMaxRank, what, ": rank ", t.dims_size(), " exceeds the limit of ",
        kOnnxMaxRank);
  int64_t n = 1;
  for (int k = 0; k < t.dims_size(); ++k) {
    const int64_t d = t.dims(k);
    check(d > 0, what, ": dimension ", k, " is ", d, " (dimensions must be positive)");
    check(!__builtin_mul_overflow(n, d, &n) && n <= kOnnxMaxFileBytes, what, ": dimensions ",
          dims_str({t.dims().begin(), t.dims().end()}), " hold more elements than a file can");
    c.dims.push_back(d);
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0) {
    std::string location;
    for (const auto& e : t.external_data())
      if (e.key() == "location") location = e.value();
    fail(what, ": its data is stored in an external file",
         location.empty() ? std::string() : " ('" + location + "')",
         "; external data is not supported (save the model as one file: onnx.save_model(m, path, "
         "save_as_external_data=False))");
  }
  check(!t.has_segment(), what, ": segmented tensors are not supported");
  const DtypeInfo* dt = find_dtype(t.data_type());
  check(dt != nullptr, what, ": unknown data type ", t.data_type());
  check(dt->size > 0, what, ": data type ", dt->name, " is not supported");
  const int code = dt->code;
  const bool complex = code == 14 || code == 15;
  if (t.has_raw_data()) {
    const uint64_t need = static_cast<uint64_t>(n) * static_cast<uint64_t>(dt->size);
    check(t.raw_data().size() == need, what, ": raw_data holds ", t.raw_data().size(),
          " bytes but its shape ", dims_str(c.dims), " of ", dt->name, " needs ", need);
  } else {
    int64_t count = 0;
    const char* field = "";
    switch (code) {
      case 1: case 14: count = t.float_data_size(); field = "float_data"; break;
      case 11: case 15: count = t.double_data_size(); field = "double_data"; break;
      case 7: count = t.int64_data_size(); field = "int64_data"; break;
      case 12: case 13: count = t.uint64_data_size(); field = "uint64_data"; break;
      default: count = t.int32_data_size(); field = "int32_data"; break;
    }
    const int64_t need = complex ? 2 * n : n;
    check(count == need, what, ": ", field, " holds ", count, " values but its shape ",
          dims_str(c.dims), " of ", dt->name, " needs ", need);
  }
  const std::string& raw = t.raw_data();
  const bool has_raw = t.has_raw_data();
  if (code == 1 || code == 11) {
    auto v = std::make_shared<std::vector<float>>();
    if (code == 1) {
      if (has_raw) read_le(raw, n, *v);
      else v->assign(t.float_data().begin(), t.float_data().end());
    } else {
      std::vector<double> d;
      if (has_raw) read_le(raw, n, d);
      else d.assign(t.double_data().begin(), t.double_data().end());
      v->resize(d.size());
      for (size_t k = 0; k < d.size(); ++k) (*v)[k] = static_cast<float>(d[k]);
    }
    c.is_float = true;
    c.f = std::move(v);
    return c;
  }
  if (code == 10 || code == 16 || complex) {
    c.error = what + ": data type " + dt->name + " is not supported (only FLOAT, DOUBLE and integers)";
    return c;
  }
  auto v = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    int64_t x = 0;
    if (has_raw) {
      const char* p = raw.data() + k * dt->size;
      switch (code) {
        case 2: case 9: x = static_cast<uint8_t>(*p); break;
        case 3: x = static_cast<int8_t>(*p); break;
        case 4: { uint16_t u; std::memcpy(&u, p, 2); x = u; break; }
        case 5: { int16_t u; std::memcpy(&u, p, 2); x = u; break; }
        case 6: { int32_t u; std::memcpy(&u, p, 4); x = u; break; }
        case 7: std::memcpy(&x, p, 8); break;
        case 12: { uint32_t u; std::memcpy(&u, p, 4); x = u; break; }
        case 13: {
          uint64_t u;
          std::memcpy(&u, p, 8);
          check(u <= static_cast<uint64_t>(INT64_MAX), what, ": UINT64 value ", u, " at index ", k,
                " does not fit in int64");
          x = static_cast<int64_t>(u);
          break;
        }
        default: break;
      }
    } else if (code == 7) {
      x = t.int64_data(static_cast<int>(k));
    } else if (code == 12 || code == 13) {
      const uint64_t u = t.uint64_data(static_cast<int>(k));
      check(u <= static_cast<uint64_t>(INT64_MAX), what, ": value ", u, " at index ", k,
            " does not fit in int64");
      x = static_cast<int64_t>(u);
    } else {
      x = t.int32_data(static_cast<int>(k));
    }
    (*v)[k] = x;
  }
  c.is_float = false;
  c.i = std::move(v);
  return c;
}

// ------------------------------------------------------------------ attributes

const char* attr_type_name(int t) {
  switch (t) {
    case onnx::AttributeProto::FLOAT: return "FLOAT";
    case onnx::AttributeProto::INT: return "INT";
    case onnx::AttributeProto::STRING: return "STRING";
    case onnx::AttributeProto::TENSOR: return "TENSOR";
    case onnx::AttributeProto::GRAPH: return "GRAPH";
    case onnx::AttributeProto::FLOATS: return "FLOATS";
    case onnx::AttributeProto::INTS: return "INTS";
    case onnx::AttributeProto::STRINGS: return "STRINGS";
    case onnx::AttributeProto::TENSORS: return "TENSORS";
    case onnx::AttributeProto::GRAPHS: return "GRAPHS";
    default: return "UNDEFINED";
  }
}

class Attrs {
 public:
  Attrs(const onnx::NodeProto& n, const std::string& where) : where_(where) {
    for (const auto& a : n.attribute())
      check(map_.emplace(a.name(), &a).second, where_, ": attribute '", a.name(), "' is given twice");
  }
  // Every attribute must be one of these (an unknown one may change the meaning).
  void allow(std::initializer_list<const char*> names) const {
    for (const auto& [name, a] : map_) {
      bool ok = false;
      for (const char* k : names) ok = ok || name == k;
      check(ok, where_, ": attribute '", name, "' is not supported");
    }
  }
  bool has(const char* n) const { return map_.count(n) != 0; }
  int64_t i(const char* n, int64_t dflt) const {
    const auto* a = get(n, onnx::AttributeProto::INT);
    return a ? a->i() : dflt;
  }
  float f(const char* n, float dflt) const {
    const auto* a = get(n, onnx::AttributeProto::FLOAT);
    return a ? a->f() : dflt;
  }
  std::string s(const char* n, const std::string& dflt) const {
    const auto* a = get(n, onnx::AttributeProto::STRING);
    return a ? a->s() : dflt;
  }
  std::optional<std::vector<int64_t>> ints(const char* n) const {
    const auto* a = get(n, onnx::AttributeProto::INTS);
    if (!a) return std::nullopt;
    return std::vector<int64_t>(a->ints().begin(), a->ints().end());
  }
  std::optional<std::vector<float>> floats(const char* n) const {
    const auto* a = get(n, onnx::AttributeProto::FLOATS);
    if (!a) return std::nullopt;
    return std::vector<float>(a->floats().begin(), a->floats().end());
  }
  const onnx::TensorProto* tensor(const char* n) const {
    const auto* a = get(n, onnx::AttributeProto::TENSOR);
    return a ? &a->t() : nullptr;
  }

 private:
  const onnx::AttributeProto* get(const char* n, int type) const {
    auto it = map_.find(n);
    if (it == map_.end()) return nullptr;
    check(it->second->type() == type, where_, ": attribute '", n, "' has type ",
          attr_type_name(it->second->type()), ", expected ", attr_type_name(type));
    return it->second;
  }
  std::string where_;
  std::map<std::string, const onnx::AttributeProto*> map_;
};

// ------------------------------------------------------------------ layers and ops

// One layer of the description being built (or, before the rewrites of step 4, a piece of one:
// "Pad", "MulConst", "AddConst").
struct Layer {
  std::string type;
  json spec = json::object();                           // keys other than type and name
  std::vector<std::pair<std::string, Tensor>> tensors;  // state_dict entries by local name
  Tensor operand;                                       // MulConst / AddConst
  std::vector<int64_t> operand_dims;                    // the constant's own dims (broadcast)
  std::vector<int64_t> pads;                            // Pad: per spatial dimension
  bool matmul = false;                                  // Linear from MatMul, no bias yet
  bool unit_affine = false;                             // InstanceNorm with weight 1, bias 0
  std::string hint;                                     // suggested module path
  std::string where;                                    // the node(s), for messages
  Shape in, out;                                        // batch 1
  // Residual and Concat
  std::vector<Layer> body, shortcut;
  bool has_shortcut = false;
  std::string activation;
  std::vector<std::vector<Layer>> branches;
  // names (step 5)
  std::string name, shortcut_name;
  std::vector<std::string> branch_names;
};

struct Op {
  enum Kind { kLayers, kAdd, kConcat } kind = kLayers;
  std::vector<Layer> layers;  // kLayers: applied in order (none: the output is the input)
  std::vector<int> in;        // data value ids
  int out = -1;
  std::string where;
  bool visited = false;
};

struct DataValue {
  std::string name;
  Shape shape;      // batch 1
  int op = -1;      // producing op; -1: the graph input
  int idom = -1;    // immediate dominator (a data value id); -1 for the graph input
  int depth = 0;    // in the dominator tree
};

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

template <typename M, typename... Args>
std::unique_ptr<M> make_module(const std::string& where, Args&&... args) {
  try {
    return std::make_unique<M>(std::forward<Args>(args)...);
  } catch (const Error& e) {
    fail(where, ": ", e.what());
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

// ------------------------------------------------------------------ the importer

class Importer {
 public:
  Importer(const onnx::ModelProto& m, const std::string& what, const OnnxImportOptions& opt)
      : m_(m), what_(what), opt_(opt) {}

  ImportedOnnx run();

 private:
  const onnx::ModelProto& m_;
  std::string what_;
  OnnxImportOptions opt_;
  OnnxImportReport report_;
  int64_t opset_ = 0;
  int64_t fixed_batch_ = 0;  // the graph input's batch size when it is a number (else 0)
  std::map<std::string, Const> consts_;
  std::map<std::string, int> data_ids_;
  std::map<std::string, std::string> unusable_;  // outputs normnet does not compute -> why
  std::vector<DataValue> data_;
  std::vector<Op> ops_;
  std::set<std::string> notes_;

  template <typename... Parts>
  [[noreturn]] void bad(const Parts&... parts) const {
    fail(what_, ": ", parts...);
  }

  // --- values
  bool defined(const std::string& name) const { return consts_.count(name) || data_ids_.count(name); }

  void check_input_defined(const std::string& in, const std::string& where) const {
    if (defined(in)) return;
    auto u = unusable_.find(in);
    if (u != unusable_.end()) bad(where, ": uses '", in, "', ", u->second);
    bad(where, ": input '", in, "' is not defined before this node (nodes must be in topological "
        "order and use only initializers, the graph input and earlier nodes' outputs)");
  }

  void check_new_output(const std::string& name, const std::string& where) const {
    check(!name.empty(), what_, ": ", where, ": output without a name");
    if (defined(name) || unusable_.count(name))
      bad(where, ": output '", name, "' is already defined (every value must have one producer)");
  }

  void define_const(const onnx::NodeProto& n, Const c, const std::string& where) {
    const std::string& out = n.output(0);
    check_new_output(out, where);
    consts_.emplace(out, std::move(c));
  }

  int define_data(const std::string& name, const Shape& s, int op, const std::string& where) {
    check_new_output(name, where);
    DataValue v;
    v.name = name;
    v.shape = s;
    v.op = op;
    data_.push_back(v);
    const int id = static_cast<int>(data_.size()) - 1;
    data_ids_[name] = id;
    return id;
  }

  bool is_data(const onnx::NodeProto& n, int k) const {
    return k < n.input_size() && data_ids_.count(n.input(k)) != 0;
  }
  bool present(const onnx::NodeProto& n, int k) const { return k < n.input_size() && !n.input(k).empty(); }

  int data_in(const onnx::NodeProto& n, int k, const std::string& where) const {
    if (!present(n, k)) bad(where, ": input ", k, " is missing");
    auto it = data_ids_.find(n.input(k));
    if (it == data_ids_.end())
      bad(where, ": input ", k, " ('", n.input(k), "') is a constant; normnet needs the data here");
    return it->second;
  }

  const Const& const_in(const onnx::NodeProto& n, int k, const char* what, const std::string& where,
                        bool want_float) const {
    if (!present(n, k)) bad(where, ": ", what, " (input ", k, ") is missing");
    const std::string& name = n.input(k);
    auto it = consts_.find(name);
    if (it == consts_.end())
      bad(where, ": ", what, " (input ", k, ", '", name,
          "') is computed from the graph input; normnet needs it constant (an initializer)");
    const Const& c = it->second;
    if (!c.error.empty()) bad(where, ": ", what, ": ", c.error);
    if (want_float)
      check(c.is_float, what_, ": ", where, ": ", what, " ('", name, "') holds integers, expected FLOAT");
    else
      check(!c.is_float, what_, ": ", where, ": ", what, " ('", name, "') holds floats, expected integers");
    return c;
  }

  std::vector<int64_t> int_list(const Const& c, const char* what, const std::string& where,
                                bool allow_batch = false) const {
    check(c.dims.size() <= 1, what_, ": ", where, ": ", what, " has shape ", dims_str(c.dims),
          ", expected a list");
    std::vector<int64_t> v(c.i->begin(), c.i->end());
    if (!allow_batch)
      for (int64_t x : v)
        check(x != kBatch, what_, ": ", where, ": ", what, " depends on the batch size");
    return v;
  }

  // --- the parts of step 1
  void check_model();
  void read_initializers();
  void read_input();
  void node(const onnx::NodeProto& n, int index);
  void eval_const(const onnx::NodeProto& n, const std::string& where);
  void data_op(const onnx::NodeProto& n, const std::string& where);

  // --- data ops (step 2): each returns the op's layers and output shape
  Op conv(const onnx::NodeProto& n, const Attrs& a, const std::string& where);
  Op batchnorm(const onnx::NodeProto& n, const Attrs& a, const std::string& where);
  Op pool(const onnx::NodeProto& n, const Attrs& a, const std::string& where);
  Op gemm(const onnx::NodeProto& n, const Attrs& a, const std::string& where);
  Op matmul(const onnx::NodeProto& n, const std::string& where);
  Op reshape(const onnx::NodeProto& n, const Attrs& a, const std::string& where);
  Op reduce_mean(const onnx::NodeProto& n, const Attrs& a, const std::string& where);
  Op pad(const onnx::NodeProto& n, const Attrs& a, const std::string& where);
  Op instancenorm(const onnx::NodeProto& n, const Attrs& a, const std::string& where);
  Op layernorm(const onnx::NodeProto& n, const Attrs& a, const std::string& where);
  Op binary(const onnx::NodeProto& n, const std::string& where);
  Op concat(const onnx::NodeProto& n, const Attrs& a, const std::string& where);

  std::vector<int64_t> spatial_attr(const Attrs& a, const char* name, int spatial, int64_t dflt,
                                    int64_t lo, const std::string& where) const;
  std::vector<int64_t> symmetric_pads(const Attrs& a, int spatial, const std::string& where) const;
  Layer flatten_or_reshape(const Shape& in, const Shape& out, const std::string& where) const;

  // --- steps 3 to 6
  void dominators(int id);
  std::vector<Layer> chain(int from, int to, int depth);
  void rewrite(std::vector<Layer>& ls);
  void name_chain(std::vector<Layer>& ls, const std::string& prefix);
  json describe(const std::vector<Layer>& ls) const;
  void collect(const std::vector<Layer>& ls, const std::string& prefix,
               std::map<std::string, Tensor>& out) const;
};

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

// ------------------------------------------------------------------ constants (step 2)

void Importer::eval_const(const onnx::NodeProto& n, const std::string& where) {
  const std::string& op = n.op_type();
  const Attrs a(n, what_ + ": " + where);
  auto bound = [&](int64_t count) {
    check(count <= kMaxComputedElements, what_, ": ", where, ": the result would hold ", count,
          " values; computed constants are limited to ", kMaxComputedElements);
  };
  auto input = [&](int k, const char* what) -> const Const& {
    if (!present(n, k)) bad(where, ": ", what, " (input ", k, ") is missing");
    const Const& c = consts_.at(n.input(k));
    if (!c.error.empty()) bad(where, ": ", what, ": ", c.error);
    return c;
  };
  auto ints_of = [&](int k, const char* what) {
    return int_list(const_in(n, k, what, where, false), what, where);
  };
  auto make_ints = [](std::vector<int64_t> v, std::vector<int64_t> dims) {
    Const c;
    c.is_float = false;
    c.dims = std::move(dims);
    c.i = std::make_shared<std::vector<int64_t>>(std::move(v));
    return c;
  };
  Const out;
  if (op == "Constant") {
    a.allow({"value", "value_float", "value_floats", "value_int", "value_ints"});
    check(n.attribute_size() == 1, what_, ": ", where, ": expected exactly one value attribute");
    if (const auto* t = a.tensor("value")) {
      out = decode_tensor(*t, what_ + ": " + where + ": value");
    } else if (a.has("value_float")) {
      out.is_float = true;
      out.f = std::make_shared<std::vector<float>>(1, a.f("value_float", 0));
    } else if (a.has("value_floats")) {
      auto v = *a.floats("value_floats");
      check(!v.empty(), what_, ": ", where, ": empty value_floats");
      out.dims = {static_cast<int64_t>(v.size())};
      out.f = std::make_shared<std::vector<float>>(std::move(v));
    } else if (a.has("value_int")) {
      out = make_ints({a.i("value_int", 0)}, {});
    } else {
      auto v = *a.ints("value_ints");
      check(!v.empty(), what_, ": ", where, ": empty value_ints");
      out = make_ints(v, {static_cast<int64_t>(v.size())});
    }
  } else if (op == "Identity") {
    a.allow({});
    out = input(0, "the input");
    out.origin = n.output(0);  // torch.onnx names the alias of a shared parameter after the parameter
  } else if (op == "Shape") {
    a.allow({"start", "end"});
    std::vector<int64_t> dims;
    if (is_data(n, 0)) {
      const Shape& s = data_[data_ids_.at(n.input(0))].shape;
      dims = s.vec();
      dims[0] = kBatch;
    } else {
      dims = input(0, "the input").dims;
    }
    const int64_t r = static_cast<int64_t>(dims.size());
    int64_t start = a.i("start", 0), end = a.i("end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, 0, r);
    std::vector<int64_t> v;
    for (int64_t k = start; k < end; ++k) v.push_back(dims[k]);
    const int64_t len = static_cast<int64_t>(v.size());
    out = make_ints(std::move(v), {len});
  } else if (op == "Gather") {
    a.allow({"axis"});
    const Const& d = input(0, "the data");
    const Const& idx = const_in(n, 1, "the indices", where, false);
    check(d.dims.size() == 1 && (a.i("axis", 0) == 0 || a.i("axis", 0) == -1), what_, ": ", where,
          ": only gathering from a list (rank 1, axis 0) is supported");
    check(idx.dims.size() <= 1, what_, ": ", where, ": indices must be a scalar or a list");
    const int64_t len = d.dims[0];
    bound(idx.numel());
    std::vector<int64_t> vi;
    std::vector<float> vf;
    for (int64_t k = 0; k < idx.numel(); ++k) {
      int64_t j = (*idx.i)[k];
      check(j >= -len && j < len, what_, ": ", where, ": index ", j == kBatch ? std::string("N") : std::to_string(j),
            " is outside a list of ", len);
      if (j < 0) j += len;
      if (d.is_float) vf.push_back((*d.f)[j]);
      else vi.push_back((*d.i)[j]);
    }
    std::vector<int64_t> dims = idx.dims;
    if (d.is_float) {
      out.is_float = true;
      out.dims = dims;
      out.f = std::make_shared<std::vector<float>>(std::move(vf));
    } else {
      out = make_ints(std::move(vi), dims);
    }
  } else if (op == "Slice") {
    a.allow({});
    const Const& d = input(0, "the data");
    check(d.dims.size() == 1, what_, ": ", where, ": only slicing a list (rank 1) is supported");
    const auto starts = ints_of(1, "starts"), ends = ints_of(2, "ends");
    check(starts.size() == 1 && ends.size() == 1, what_, ": ", where, ": expected one start and one end");
    if (present(n, 3)) {
      const auto axes = ints_of(3, "axes");
      check(axes.size() == 1 && (axes[0] == 0 || axes[0] == -1), what_, ": ", where, ": axes must be [0]");
    }
    int64_t step = 1;
    if (present(n, 4)) {
      const auto steps = ints_of(4, "steps");
      check(steps.size() == 1 && steps[0] != 0, what_, ": ", where, ": steps must be one non-zero value");
      step = steps[0];
    }
    const int64_t len = d.dims[0];
    auto norm = [&](int64_t v, int64_t lo, int64_t hi) {
      if (v < 0) v = v < -len ? -1 : v + len;  // avoids overflow on INT64_MIN
      return std::clamp(v, lo, hi);
    };
    int64_t s, e;
    if (step > 0) {
      s = norm(starts[0], 0, len);
      e = norm(ends[0], 0, len);
    } else {
      s = norm(starts[0], -1, len - 1);
      e = norm(ends[0], -1, len - 1);
    }
    std::vector<int64_t> vi;
    std::vector<float> vf;
    for (int64_t k = s; step > 0 ? k < e : k > e; k += step) {
      if (d.is_float) vf.push_back((*d.f)[k]);
      else vi.push_back((*d.i)[k]);
      if (std::abs(step) > len) break;
    }
    const int64_t count = static_cast<int64_t>(d.is_float ? vf.size() : vi.size());
    check(count > 0, what_, ": ", where, ": the slice is empty");
    if (d.is_float) {
      out.is_float = true;
      out.dims = {count};
      out.f = std::make_shared<std::vector<float>>(std::move(vf));
    } else {
      out = make_ints(std::move(vi), {count});
    }
  } else if (op == "Concat") {
    a.allow({"axis"});
    check(a.i("axis", 0) == 0 || a.i("axis", 0) == -1, what_, ": ", where,
          ": only concatenating lists (axis 0) of constants is supported");
    std::vector<int64_t> vi;
    std::vector<float> vf;
    bool is_float = false;
    for (int k = 0; k < n.input_size(); ++k) {
      const Const& c = input(k, "an input");
      check(c.dims.size() == 1, what_, ": ", where, ": input ", k, " has shape ", dims_str(c.dims),
            ", expected a list");
      if (k == 0) is_float = c.is_float;
      check(c.is_float == is_float, what_, ": ", where, ": inputs of different types");
      bound(static_cast<int64_t>(vi.size() + vf.size()) + c.numel());
      if (is_float) vf.insert(vf.end(), c.f->begin(), c.f->end());
      else vi.insert(vi.end(), c.i->begin(), c.i->end());
    }
    check(n.input_size() > 0, what_, ": ", where, ": no inputs");
    const int64_t count = static_cast<int64_t>(is_float ? vf.size() : vi.size());
    if (is_float) {
      out.is_float = true;
      out.dims = {count};
      out.f = std::make_shared<std::vector<float>>(std::move(vf));
    } else {
      out = make_ints(std::move(vi), {count});
    }
  } else if (op == "Unsqueeze" || op == "Squeeze") {
    const bool unsq = op == "Unsqueeze";
    std::vector<int64_t> axes;
    bool have_axes = false;
    if (opset_ < 13) {
      a.allow({"axes"});
      if (auto v = a.ints("axes")) axes = *v, have_axes = true;
    } else {
      a.allow({});
      if (present(n, 1)) axes = ints_of(1, "axes"), have_axes = true;
    }
    out = input(0, "the data");
    const int64_t in_rank = static_cast<int64_t>(out.dims.size());
    if (unsq) {
      check(have_axes, what_, ": ", where, ": no axes");
      const int64_t r = in_rank + static_cast<int64_t>(axes.size());
      check(r <= kOnnxMaxRank, what_, ": ", where, ": the result would have rank ", r, " (limit ",
            kOnnxMaxRank, ")");
      std::vector<bool> added(static_cast<size_t>(r), false);
      for (int64_t x : axes) {
        check(x >= -r && x < r, what_, ": ", where, ": axis ", x, " is outside a rank-", r, " result");
        if (x < 0) x += r;
        check(!added[x], what_, ": ", where, ": axis ", x, " given twice");
        added[x] = true;
      }
      std::vector<int64_t> dims;
      size_t k = 0;
      for (int64_t j = 0; j < r; ++j) dims.push_back(added[j] ? 1 : out.dims[k++]);
      out.dims = dims;
    } else {
      std::vector<bool> drop(static_cast<size_t>(in_rank), !have_axes);
      if (!have_axes)
        for (int64_t j = 0; j < in_rank; ++j) drop[j] = out.dims[j] == 1;
      for (int64_t x : axes) {
        check(x >= -in_rank && x < in_rank, what_, ": ", where, ": axis ", x, " is outside rank ", in_rank);
        if (x < 0) x += in_rank;
        check(out.dims[x] == 1, what_, ": ", where, ": dimension ", x, " is ", out.dims[x], ", not 1");
        drop[x] = true;
      }
      std::vector<int64_t> dims;
      for (int64_t j = 0; j < in_rank; ++j)
        if (!drop[j]) dims.push_back(out.dims[j]);
      out.dims = dims;
    }
  } else if (op == "Reshape") {
    a.allow({"allowzero"});
    out = input(0, "the data");
    const auto target = ints_of(1, "the shape");
    check(target.size() <= static_cast<size_t>(kOnnxMaxRank), what_, ": ", where, ": rank ",
          target.size(), " exceeds the limit of ", kOnnxMaxRank);
    const int64_t numel = out.numel();
    std::vector<int64_t> dims;
    int infer = -1;
    int64_t known = 1;
    for (size_t k = 0; k < target.size(); ++k) {
      int64_t d = target[k];
      if (d == 0 && a.i("allowzero", 0) == 0) {
        check(k < out.dims.size(), what_, ": ", where, ": 0 at position ", k, " copies no dimension");
        d = out.dims[k];
      }
      if (d == -1) {
        check(infer < 0, what_, ": ", where, ": more than one -1 in the shape");
        infer = static_cast<int>(k);
        d = 1;
      } else {
        check(d > 0, what_, ": ", where, ": size ", d, " in the shape");
      }
      check(!__builtin_mul_overflow(known, d, &known), what_, ": ", where, ": the shape overflows");
      dims.push_back(d);
    }
    if (infer >= 0) {
      check(known > 0 && numel % known == 0, what_, ": ", where, ": cannot reshape ", numel, " values to ",
            dims_str(target));
      dims[infer] = numel / known;
      known = numel;
    }
    check(known == numel, what_, ": ", where, ": cannot reshape ", numel, " values to ", dims_str(target));
    out.dims = dims;
  } else if (op == "Cast") {
    a.allow({"to"});
    const Const& c = input(0, "the input");
    const int64_t to = a.i("to", 0);
    out = c;
    if (to == 1 || to == 11) {
      if (!c.is_float) {
        auto v = std::make_shared<std::vector<float>>();
        for (int64_t x : *c.i) {
          check(x != kBatch, what_, ": ", where, ": the batch size has no value to cast");
          v->push_back(static_cast<float>(x));
        }
        out.is_float = true;
        out.f = v;
        out.i.reset();
      }
    } else if (to == 7 || to == 6) {
      if (c.is_float) {
        auto v = std::make_shared<std::vector<int64_t>>();
        for (float x : *c.f) {
          check(std::isfinite(x) && std::fabs(x) < 9e18f, what_, ": ", where, ": ", x, " has no int64 value");
          v->push_back(static_cast<int64_t>(x));
        }
        out.is_float = false;
        out.i = v;
        out.f.reset();
      }
    } else {
      bad(where, ": casting to data type ", to, " is not supported (FLOAT, DOUBLE, INT32, INT64)");
    }
  } else {
    bad(where, ": operator '", op, "' on constants is not supported (shape arithmetic supports "
        "Constant, Identity, Shape, Gather, Slice, Concat, Unsqueeze, Squeeze, Reshape, Cast)");
  }
  define_const(n, std::move(out), where);
}

// ------------------------------------------------------------------ data ops (step 2)

std::vector<int64_t> Importer::spatial_attr(const Attrs& a, const char* name, int spatial, int64_t dflt,
                                            int64_t lo, const std::string& where) const {
  const auto v = a.ints(name);
  if (!v) return std::vector<int64_t>(static_cast<size_t>(spatial), dflt);
  check(static_cast<int>(v->size()) == spatial, what_, ": ", where, ": '", name, "' has ", v->size(),
        " values for ", spatial, " spatial dimension", spatial == 1 ? "" : "s");
  for (int64_t x : *v)
    check(x >= lo && x <= kMaxAttrValue, what_, ": ", where, ": '", name, "' value ", x, " is outside [",
          lo, ", ", kMaxAttrValue, "]");
  return *v;
}

std::vector<int64_t> Importer::symmetric_pads(const Attrs& a, int spatial, const std::string& where) const {
  const std::string auto_pad = a.s("auto_pad", "NOTSET");
  if (auto_pad == "VALID") {
    check(!a.has("pads"), what_, ": ", where, ": both auto_pad VALID and pads");
    return std::vector<int64_t>(static_cast<size_t>(spatial), 0);
  }
  check(auto_pad == "NOTSET", what_, ": ", where, ": auto_pad '", auto_pad,
        "' is not supported (give explicit pads)");
  const auto v = a.ints("pads");
  if (!v) return std::vector<int64_t>(static_cast<size_t>(spatial), 0);
  check(static_cast<int>(v->size()) == 2 * spatial, what_, ": ", where, ": 'pads' has ", v->size(),
        " values for ", spatial, " spatial dimension", spatial == 1 ? "" : "s", " (expected ", 2 * spatial, ")");
  std::vector<int64_t> p;
  for (int k = 0; k < spatial; ++k) {
    const int64_t b = (*v)[k], e = (*v)[k + spatial];
    check(b >= 0 && b <= kMaxAttrValue && e >= 0 && e <= kMaxAttrValue, what_, ": ", where, ": pads ",
          dims_str(*v), " must be in [0, ", kMaxAttrValue, "]");
    check(b == e, what_, ": ", where, ": pads ", dims_str(*v),
          " differ at the beginning and end of a dimension; normnet pads symmetrically");
    p.push_back(b);
  }
  return p;
}

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
  const std::vector<int64_t> kernel(w.dims.begin() + 2, w.dims.end());
  for (int64_t k : kernel)
    check(k <= kMaxAttrValue, what_, ": ", where, ": kernel size ", k, " exceeds ", kMaxAttrValue);
  if (const auto ks = a.ints("kernel_shape"))
    check(*ks == kernel, what_, ": ", where, ": kernel_shape ", dims_str(*ks), " differs from the weight's ",
          dims_str(w.dims));
  const auto strides = spatial_attr(a, "strides", sp, 1, 1, where);
  const auto dil = spatial_attr(a, "dilations", sp, 1, 1, where);
  const auto pads = symmetric_pads(a, sp, where);
  const int64_t group = a.i("group", 1);
  check(group >= 1 && group <= kMaxAttrValue, what_, ": ", where, ": group ", group);
  check(w.dims[1] * group == in[1], what_, ": ", where, ": weight ", dims_str(w.dims), " with group ", group,
        " takes ", w.dims[1] * group, " input channels, the input ", shape_str(in), " has ", in[1]);
  ConvOptions o;
  o.dims = sp;
  o.in_channels = in[1];
  o.out_channels = w.dims[0];
  o.groups = group;
  o.kernel_w = kernel.back();
  o.stride_w = strides.back();
  o.pad_w = pads.back();
  o.dilation_w = dil.back();
  if (sp == 2) {
    o.kernel_h = kernel[0];
    o.stride_h = strides[0];
    o.pad_h = pads[0];
    o.dilation_h = dil[0];
  }
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
  L.spec = {{"in_channels", o.in_channels}, {"out_channels", o.out_channels}, {"kernel_size", size_json(kernel)},
            {"stride", size_json(strides)}, {"padding", size_json(pads)}, {"dilation", size_json(dil)},
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
  check(a.has("kernel_shape"), what_, ": ", where, ": kernel_shape is missing");
  const auto kernel = spatial_attr(a, "kernel_shape", sp, 1, 1, where);
  const auto strides = spatial_attr(a, "strides", sp, 1, 1, where);
  const auto dil = spatial_attr(a, "dilations", sp, 1, 1, where);
  if (!max)
    for (int64_t d : dil) check(d == 1, what_, ": ", where, ": dilated average pooling is not supported");
  const auto pads = symmetric_pads(a, sp, where);
  const int64_t ceil = a.i("ceil_mode", 0), cip = a.i("count_include_pad", 0);
  check(ceil == 0 || ceil == 1, what_, ": ", where, ": ceil_mode ", ceil);
  check(cip == 0 || cip == 1, what_, ": ", where, ": count_include_pad ", cip);
  PoolOptions o;
  o.dims = sp;
  o.max = max;
  o.kernel_w = kernel.back();
  o.stride_w = strides.back();
  o.pad_w = pads.back();
  o.dilation_w = dil.back();
  if (sp == 2) {
    o.kernel_h = kernel[0];
    o.stride_h = strides[0];
    o.pad_h = pads[0];
    o.dilation_h = dil[0];
  }
  o.ceil_mode = ceil == 1;
  o.count_include_pad = cip == 1;
  Pool m(o);
  Layer L;
  L.type = max ? (sp == 1 ? "MaxPool1d" : "MaxPool2d") : "AvgPool2d";
  L.in = in;
  L.out = infer(m, in, what_ + ": " + where);
  L.spec = {{"kernel_size", size_json(kernel)}, {"stride", size_json(strides)}, {"padding", size_json(pads)},
            {"ceil_mode", o.ceil_mode}};
  if (max) L.spec["dilation"] = size_json(dil);
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
  Op op;
  GlobalAvgPool m;
  Layer L;
  L.type = "GlobalAvgPool";
  L.in = in;
  L.out = infer(m, in, what_ + ": " + where);
  op.layers.push_back(L);
  if (a.i("keepdims", 1) != 0) {
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
    const Shape in = data_[data_in(n, 0, where)].shape;
    GlobalAvgPool m;
    Layer L;
    L.type = "GlobalAvgPool";
    L.in = in;
    L.out = infer(m, in, what_ + ": " + where);
    std::vector<int64_t> kept{1, in[1]};
    for (int k = 2; k < in.rank; ++k) kept.push_back(1);
    op.layers.push_back(L);
    op.layers.push_back(flatten_or_reshape(L.out, Shape(kept), where));
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

}  // namespace

ImportedOnnx import_onnx(const uint8_t* data, size_t size, const std::string& what, const OnnxImportOptions& opt) {
  check(size <= static_cast<uint64_t>(kOnnxMaxFileBytes), what, ": ", size, " bytes exceed the limit of ",
        kOnnxMaxFileBytes, " for an ONNX file");
  onnx::ModelProto m;
  check(m.ParseFromArray(data, static_cast<int>(size)), what,
        ": not an ONNX model (protobuf cannot parse it as onnx.ModelProto)");
  return Importer(m, what, opt).run();
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

// Internals of the ONNX importer, shared by its files (the interface is io/onnx_import.h):
//   onnx_import.cpp         the driver: model checks, the graph input, the pass over the nodes,
//                           the tree, the rewrites, the names, the model and its tensors
//   onnx_import_values.cpp  tensors and attributes as read from the file, and the evaluation
//                           of nodes on constants (shape arithmetic)
//   onnx_import_ops.cpp     one converter per operator on the data (Conv, BatchNormalization,
//                           Gemm, pooling, ...) into normnet layers
// Everything here is in normnet::onnx_import, used by those files only.
#pragma once
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "io/onnx_import.h"
#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet::onnx_import {

using json = nlohmann::json;

// The symbolic batch size inside shape values (Shape of a data value).
inline constexpr int64_t kBatch = std::numeric_limits<int64_t>::min();
// Values computed from constants (shape arithmetic) are small; this bounds what a file can make
// the importer allocate through them.
inline constexpr int64_t kMaxComputedElements = int64_t{1} << 16;
// Kernel sizes, strides, paddings, dilations, groups, axes.
inline constexpr int64_t kMaxAttrValue = int64_t{1} << 20;
inline constexpr int64_t kMaxInputDim = int64_t{1} << 20;  // as the model format's "input"
inline constexpr int64_t kMaxInputElements = int64_t{1} << 24;

// ------------------------------------------------------------------ small helpers

// Lists and shapes for messages (onnx_import_values.cpp): [1, N, 64] (kBatch as N); (N, C, H, W).
std::string dims_str(const std::vector<int64_t>& d);
std::string shape_str(const Shape& s);
// A shape without its batch dimension.
std::vector<int64_t> per_sample(const Shape& s);

// The float as the shortest decimal that reads back as the same float, as a double: ONNX
// attributes are float, so PyTorch's eps 1e-5 arrives as 9.99999975e-06 and leaves as 1e-05.
// (onnx_import_ops.cpp, as the next two)
double short_float(float v);
// PyTorch's momentum (the weight of the new batch) from ONNX's (the weight of the old running
// value): 1 - m, as the shortest decimal whose 1 - x rounds back to m (0.9f -> 0.1).
double torch_momentum(float onnx_momentum);
// "layer1_0.conv1" from "layer1_0.conv1.weight" (suffix "weight"); "" when it does not end so.
std::string strip_suffix(const std::string& name, const char* suffix);

// The module path a node name suggests (onnx_import.cpp, with the other names): torch.onnx
// (1.13+) names nodes by module scope, "/layer1_0/conv1/Conv"; normnet export by layer path,
// "layer1_0.conv1".
std::string node_hint(const std::string& name);

// ------------------------------------------------------------------ tensors (onnx_import_values.cpp)

struct DtypeInfo {
  int code;
  const char* name;
  int64_t size;
};
// The ONNX data type of this code, or null.
const DtypeInfo* find_dtype(int code);

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

// Checks and decodes a TensorProto (`what`: "initializer 'x'", "node 'c' (Constant): value").
Const decode_tensor(const onnx::TensorProto& t, const std::string& what);

// ------------------------------------------------------------------ attributes

// "INTS" for onnx::AttributeProto::INTS (onnx_import_values.cpp).
const char* attr_type_name(int t);

// A node's attributes by name, each read with the type it must have.
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

// The output shape of m for `in` (batch 1); m's own complaint, prefixed by `where`, when m
// cannot take it (onnx_import_ops.cpp, as to_tensor and size_json).
Shape infer(Module& m, const Shape& in, const std::string& where);

// Module M built from args; its constructor's complaint prefixed by `where`.
template <typename M, typename... Args>
std::unique_ptr<M> make_module(const std::string& where, Args&&... args) {
  try {
    return std::make_unique<M>(std::forward<Args>(args)...);
  } catch (const Error& e) {
    fail(where, ": ", e.what());
  }
}

// The float constant as a tensor of `dims` (as many values).
Tensor to_tensor(const Const& c, const std::vector<int64_t>& dims);
// [a, b] as a JSON size: one integer when all are equal (PyTorch's style), else the array.
json size_json(const std::vector<int64_t>& v);

// ------------------------------------------------------------------ the importer

// One import: the file, the values defined so far and the ops on the data; run() does steps 1
// to 6 of onnx_import.cpp.
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

  // --- step 1 and the pass of step 2 (onnx_import.cpp)
  void check_model();
  void read_initializers();
  void read_input();
  void node(const onnx::NodeProto& n, int index);
  // A node on constants only (onnx_import_values.cpp).
  void eval_const(const onnx::NodeProto& n, const std::string& where);

  // --- data ops (step 2; onnx_import_ops.cpp): data_op dispatches on the operator, each
  // converter returns the op's layers (their output shapes) or the join
  void data_op(const onnx::NodeProto& n, const std::string& where);
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

  Layer flatten_or_reshape(const Shape& in, const Shape& out, const std::string& where) const;
  // GlobalAveragePool, or ReduceMean over the spatial axes: (N, C, 1, ...) when `keepdims`.
  Op global_average(const Shape& in, bool keepdims, const std::string& where) const;

  // --- steps 3 to 6 (onnx_import.cpp)
  void dominators(int id);
  std::vector<Layer> chain(int from, int to, int depth);
  void rewrite(std::vector<Layer>& ls);
  void name_chain(std::vector<Layer>& ls, const std::string& prefix);
  json describe(const std::vector<Layer>& ls) const;
  void collect(const std::vector<Layer>& ls, const std::string& prefix,
               std::map<std::string, Tensor>& out) const;
};

}  // namespace normnet::onnx_import

// ONNX import, values (src/io/onnx_import.cpp describes the whole): the shape and list text of
// messages; TensorProtos decoded into constants after checking rank, dimensions, data type and
// data size against the shape (no external or segmented data); attribute type names; and step
// 2's evaluation of a node whose inputs are all constants, the shape arithmetic exporters write
// (Constant, Identity, Shape, Gather, Slice, Concat, Unsqueeze, Squeeze, Reshape, Cast), every
// result bounded by kMaxComputedElements or kOnnxMaxRank.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "io/onnx_import_internal.h"

namespace normnet::onnx_import {

namespace {

constexpr DtypeInfo kDtypes[] = {
    {1, "FLOAT", 4},  {2, "UINT8", 1},   {3, "INT8", 1},   {4, "UINT16", 2},     {5, "INT16", 2},
    {6, "INT32", 4},  {7, "INT64", 8},   {8, "STRING", 0}, {9, "BOOL", 1},       {10, "FLOAT16", 2},
    {11, "DOUBLE", 8}, {12, "UINT32", 4}, {13, "UINT64", 8}, {14, "COMPLEX64", 8}, {15, "COMPLEX128", 16},
    {16, "BFLOAT16", 2},
};

template <typename T>
void read_le(const std::string& raw, int64_t n, std::vector<T>& out) {
  out.resize(static_cast<size_t>(n));
  if (n > 0) std::memcpy(out.data(), raw.data(), static_cast<size_t>(n) * sizeof(T));
}

}  // namespace

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

// ------------------------------------------------------------------ tensors

const DtypeInfo* find_dtype(int code) {
  for (const DtypeInfo& d : kDtypes)
    if (d.code == code) return &d;
  return nullptr;
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

}  // namespace normnet::onnx_import

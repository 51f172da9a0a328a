#include "io/onnx_proto.h"

#include <cstring>
#include <limits>

#include "normnet/error.h"
#include "normnet/fileio.h"

namespace normnet::onnx_io {

namespace {
int64_t product(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}
}  // namespace

void set_float_tensor(onnx::TensorProto* p, const std::string& name, const std::vector<float>& v,
                      const std::vector<int64_t>& dims) {
  check(product(dims) == static_cast<int64_t>(v.size()), "ONNX tensor '", name, "': ", v.size(),
        " values do not fill dimensions of ", product(dims), " elements");
  p->set_name(name);
  p->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) p->add_dims(d);
  static_assert(sizeof(float) == 4, "FLOAT is 4 bytes");
  p->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

void set_float_tensor(onnx::TensorProto* p, const std::string& name, const Tensor& t,
                      const std::vector<int64_t>& dims) {
  std::vector<int64_t> d = dims;
  if (d.empty())
    for (int i = 0; i < t.shape().rank; ++i) d.push_back(t.shape()[i]);
  const Tensor c = t.contiguous();
  set_float_tensor(p, name, std::vector<float>(c.data(), c.data() + c.numel()), d);
}

void set_int64_tensor(onnx::TensorProto* p, const std::string& name, const std::vector<int64_t>& v,
                      const std::vector<int64_t>& dims) {
  check(product(dims) == static_cast<int64_t>(v.size()), "ONNX tensor '", name, "': ", v.size(),
        " values do not fill dimensions of ", product(dims), " elements");
  p->set_name(name);
  p->set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : dims) p->add_dims(d);
  p->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(int64_t)));
}

void add_attribute(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void add_attribute(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

void add_attribute(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

void set_float_value_info(onnx::ValueInfoProto* v, const std::string& name,
                          const std::vector<int64_t>& dims, const std::string& symbol) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tt->mutable_shape();
  for (int64_t d : dims) {
    auto* dim = shape->add_dim();
    if (d < 0) dim->set_dim_param(symbol);
    else dim->set_dim_value(d);
  }
}

void write_model(const std::string& path, const onnx::ModelProto& m) {
  const size_t size = m.ByteSizeLong();
  check(size <= static_cast<size_t>(std::numeric_limits<int>::max()), path, ": the ONNX model is ",
        size, " bytes; protobuf cannot write more than 2 GB in one message");
  std::string bytes;
  check(m.SerializeToString(&bytes), path, ": protobuf could not serialize the ONNX model");
  write_file_atomic(path, bytes);
}

}  // namespace normnet::onnx_io

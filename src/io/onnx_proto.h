// ONNX protobuf helpers shared by the exporter (src/io/onnx_export.cpp) and a future importer:
// typed construction of initializers, attributes and nodes, and the file write. ONNX's
// generated classes (onnx::ModelProto, ...) come from Debian's libonnx-dev (onnx/onnx_pb.h,
// built against libprotobuf 3.21); only files in src/io/onnx_*.cpp include them, and they are
// compiled into the separate library normnet_onnx, so the core library has no protobuf
// dependency.
//
// Conventions (docs/onnx.md): float tensors are stored as FLOAT in raw_data (little-endian, as
// ONNX requires), int64 tensors as INT64 in raw_data; names are kept as given (state_dict names
// for weights), so an importer can map them back.
#pragma once
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "normnet/tensor.h"

namespace normnet::onnx_io {

// The opset the exporter writes: the newest that Debian's onnx 1.12 (checker, shape inference)
// knows, and the first with LayerNormalization. See docs/onnx.md.
inline constexpr int64_t kOpset = 17;
inline constexpr int64_t kIrVersion = 8;  // the IR version of opset 17 (onnx 1.12)

// A FLOAT tensor `name` with `dims` (t's shape when dims is empty and t is not a scalar) and
// t's values; t's element count must equal the product of dims.
void set_float_tensor(onnx::TensorProto* p, const std::string& name, const Tensor& t,
                      const std::vector<int64_t>& dims = {});
void set_float_tensor(onnx::TensorProto* p, const std::string& name, const std::vector<float>& v,
                      const std::vector<int64_t>& dims);
void set_int64_tensor(onnx::TensorProto* p, const std::string& name, const std::vector<int64_t>& v,
                      const std::vector<int64_t>& dims);

void add_attribute(onnx::NodeProto* n, const std::string& name, int64_t v);
void add_attribute(onnx::NodeProto* n, const std::string& name, float v);
void add_attribute(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v);

// A graph input or output of element type FLOAT; a dimension < 0 is symbolic and named
// `symbol` (the batch dimension, "N").
void set_float_value_info(onnx::ValueInfoProto* v, const std::string& name,
                          const std::vector<int64_t>& dims, const std::string& symbol = "N");

// Serializes and writes atomically (temporary file, fsync, rename); throws normnet::Error naming
// the path when protobuf cannot serialize (a model over 2 GB) or the write fails.
void write_model(const std::string& path, const onnx::ModelProto& m);

}  // namespace normnet::onnx_io

// safetensors files: 8-byte little-endian header length, a UTF-8 JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"key": "string value"}}, then the data bytes (little-endian).
// The reader validates everything before trusting it; the writer is atomic (temp file, fsync,
// rename). Tensors are written sorted by name, as the reference implementation does.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "normnet/tensor.h"

namespace normnet {

struct StTensor {
  std::string dtype;              // F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U64 U32 U16 U8 BOOL
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;     // little-endian
};

struct StFile {
  std::map<std::string, StTensor> tensors;
  std::map<std::string, std::string> metadata;
  std::string source;  // the file it was read from (set by the readers), named in messages

  // Typed helpers; get_* throw naming the tensor if missing or of another dtype/shape.
  void put_f32(const std::string& name, const Tensor& t);
  void put_i64(const std::string& name, const std::vector<int64_t>& shape, const int64_t* v);
  void put_raw(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
               const void* data, size_t bytes);
  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  Tensor get_f32(const std::string& name) const;
  std::vector<int64_t> get_i64(const std::string& name) const;
};

size_t dtype_size(const std::string& dtype);  // throws on an unknown dtype

StFile read_safetensors(const std::string& path);
StFile parse_safetensors(const std::vector<uint8_t>& file, const std::string& what);
std::vector<uint8_t> serialize_safetensors(const StFile& f);
void write_safetensors(const std::string& path, const StFile& f);

}  // namespace normnet

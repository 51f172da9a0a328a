// libFuzzer target: the safetensors reader (parse_safetensors, src/io/safetensors.cpp), its typed
// getters, and a round trip: whatever it accepts, the writer writes and the reader reads back to
// the same tensors and metadata (a difference is a bug, reported by abort()). A normnet::Error
// is a rejection; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "normnet/error.h"
#include "normnet/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  normnet::StFile f;
  try {
    f = normnet::parse_safetensors(std::vector<uint8_t>(data, data + size), "fuzz.safetensors");
  } catch (const normnet::Error&) {
    return 0;
  }
  for (const auto& [name, t] : f.tensors) {
    try {
      if (t.dtype == "F32") f.get_f32(name);
      if (t.dtype == "I64") f.get_i64(name);
    } catch (const normnet::Error&) {
    }
  }
  const normnet::StFile back = normnet::parse_safetensors(normnet::serialize_safetensors(f), "round trip");
  if (back.metadata != f.metadata || back.tensors.size() != f.tensors.size()) std::abort();
  for (const auto& [name, t] : f.tensors) {
    auto it = back.tensors.find(name);
    if (it == back.tensors.end() || it->second.dtype != t.dtype || it->second.shape != t.shape ||
        it->second.bytes != t.bytes)
      std::abort();
  }
  return 0;
}

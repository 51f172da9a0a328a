// libFuzzer target: the IDX reader (src/data/idx.cpp) on a file's bytes, raw or gzip, and the
// conversion of an image array to floats. A normnet::Error is a rejection; anything else that
// escapes (a crash, a sanitizer report, a leak, another exception) is a bug.
#include <cstddef>
#include <cstdint>

#include "normnet/data.h"
#include "normnet/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const normnet::IdxArray a = normnet::parse_idx(data, size, "fuzz-idx3-ubyte");
    if (a.type == 0x08 && a.dims.size() == 3) normnet::idx_to_images(a, "fuzz-idx3-ubyte");
  } catch (const normnet::Error&) {
  }
  return 0;
}

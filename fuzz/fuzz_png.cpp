// libFuzzer target: PNG decoding for `normnet predict` (src/data/png.cpp, libpng's simplified
// API) as gray and RGB. The size the image must have is taken from its own header (bounded), so
// the fuzzer reaches the decoder instead of the size check; a 1x1 request covers the mismatch.
// A normnet::Error is a rejection; anything else is a bug.
#include <cstddef>
#include <cstdint>

#include "normnet/error.h"
#include "normnet/image.h"

namespace {
uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int64_t w = 1, h = 1;
  if (size >= 24) {  // signature (8), IHDR length and type (8), width, height
    w = be32(data + 16);
    h = be32(data + 20);
    if (w < 1 || h < 1 || w > 1024 || h > 1024 || w * h > 65536) w = h = 1;
  }
  for (int64_t channels : {1, 3}) {
    try {
      normnet::decode_png(data, size, "fuzz.png", channels, h, w);
    } catch (const normnet::Error&) {
    }
  }
  try {
    normnet::decode_png(data, size, "fuzz.png", 1, 1, 1);
  } catch (const normnet::Error&) {
  }
  return 0;
}

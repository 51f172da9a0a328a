// libFuzzer target: ONNX import (src/io/onnx_import.cpp) on a file's bytes: protobuf parsing,
// the bounds on what the file declares, constant evaluation, the graph to tree conversion, the
// model build. A normnet::Error is a rejection; anything else is a bug.
#include <cstddef>
#include <cstdint>

#include "io/onnx_import.h"
#include "normnet/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    normnet::import_onnx(data, size, "fuzz.onnx");
  } catch (const normnet::Error&) {
  }
  return 0;
}

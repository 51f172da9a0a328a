// libFuzzer target: a CIFAR-10 binary batch file (src/data/cifar.cpp), for 10 classes and for a
// model of 3. A normnet::Error is a rejection; anything else is a bug.
#include <cstddef>
#include <cstdint>

#include "normnet/data.h"
#include "normnet/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (int64_t classes : {10, 3}) {
    try {
      normnet::parse_cifar10(data, size, "fuzz_batch.bin", classes);
    } catch (const normnet::Error&) {
    }
  }
  return 0;
}

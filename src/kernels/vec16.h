// Sixteen floats as one GCC vector (one AVX-512 register, two AVX2 ones, four SSE ones), with
// unaligned loads and stores: the register tiles of the GEMM and convolution micro-kernels.
// Use only inside NORMNET_MULTIVERSION functions (or helpers inlined into them), so that each
// clone compiles these for its own instruction set; -Wpsabi is silenced for that reason (no
// 64-byte vector ever crosses a call).
#pragma once
#include "kernels/multiversion.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace normnet::kernels {

typedef float v16 __attribute__((vector_size(64)));

NORMNET_INLINE v16 load16(const float* p) {
  v16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
NORMNET_INLINE void store16(float* p, v16 v) { __builtin_memcpy(p, &v, sizeof v); }

}  // namespace normnet::kernels

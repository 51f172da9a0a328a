// Sixteen floats as one GCC vector (one AVX-512 register, two AVX2 ones, four SSE ones), with
// unaligned loads and stores: the register tiles of the GEMM and convolution micro-kernels.
// Use only inside NORMNET_MULTIVERSION functions (or helpers inlined into them), so that each
// clone compiles these for its own instruction set; -Wpsabi is silenced for that reason (no
// 64-byte vector ever crosses a call).
#pragma once
#include <cstdint>

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

// The 16 x 16 transpose of r[0..16) (rows of 16 floats), in four levels b = 8, 4, 2, 1: rows i
// and i + b (bit b of i clear) swap the elements whose column has bit b set in row i and clear
// in row i + b. Swapping every bit between row and column index is the transpose.
typedef int32_t i16v __attribute__((vector_size(64)));
template <int B>
NORMNET_INLINE void transpose_level(v16* r, i16v lo, i16v hi) {
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i)
    if ((i & B) == 0) {
      const v16 a = r[i], b = r[i + B];
      r[i] = __builtin_shuffle(a, b, lo);
      r[i + B] = __builtin_shuffle(a, b, hi);
    }
}

NORMNET_INLINE void transpose16(v16* r) {
  transpose_level<8>(r, i16v{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
                     i16v{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31});
  transpose_level<4>(r, i16v{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
                     i16v{4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31});
  transpose_level<2>(r, i16v{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
                     i16v{2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31});
  transpose_level<1>(r, i16v{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
                     i16v{1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31});
}

}  // namespace normnet::kernels

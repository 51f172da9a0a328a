// Small element-wise kernels: residual addition and dropout.
//   add:     out = a + b.  backward: da = db = dout (callers pass dout on).
//   dropout: out = in * mask / (1 - p), mask[i] = 1 with probability 1 - p, drawn from a
//            counter-based generator keyed by (seed, i), so masks do not depend on threads.
#pragma once
#include <cstdint>

namespace normnet::kernels {

template <typename T>
void add_forward(T* out, const T* a, const T* b, int64_t n);

template <typename T>
void dropout_forward(T* out, uint8_t* mask, const T* in, double p, uint64_t seed, int64_t n);
template <typename T>
void dropout_backward(T* din, const T* dout, const uint8_t* mask, double p, int64_t n);

}  // namespace normnet::kernels

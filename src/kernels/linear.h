// Linear, as torch.nn.Linear: out (N, O) = in (N, I) * weight^T (weight is (O, I)) + bias (O).
// backward: din overwritten (may be null), dweight and dbias accumulated (+=; dbias may be null).
#pragma once
#include <cstdint>

namespace normnet::kernels {

template <typename T>
void linear_forward(T* out, const T* in, const T* weight, const T* bias, int64_t n, int64_t in_f,
                    int64_t out_f);

template <typename T>
void linear_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                     int64_t n, int64_t in_f, int64_t out_f);

}  // namespace normnet::kernels

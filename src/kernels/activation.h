// Element-wise activations; each forward/backward pair lives in its own .cpp.
// Backward takes the forward's output (ReLU, ELU) or input (LeakyReLU) as noted; din is
// overwritten. din may alias dout.
//   relu:       y = max(x, 0)                   dx = dy * (y > 0)
//   leaky_relu: y = x > 0 ? x : slope * x       dx = dy * (x > 0 ? 1 : slope)
//   elu:        y = x > 0 ? x : alpha*(e^x - 1) dx = dy * (y > 0 ? 1 : y + alpha)
#pragma once
#include <cstdint>

namespace normnet::kernels {

template <typename T>
void relu_forward(T* out, const T* in, int64_t n);
template <typename T>
void relu_backward(T* din, const T* dout, const T* out, int64_t n);

template <typename T>
void leaky_relu_forward(T* out, const T* in, T slope, int64_t n);
template <typename T>
void leaky_relu_backward(T* din, const T* dout, const T* in, T slope, int64_t n);

template <typename T>
void elu_forward(T* out, const T* in, T alpha, int64_t n);
template <typename T>
void elu_backward(T* din, const T* dout, const T* out, T alpha, int64_t n);

}  // namespace normnet::kernels

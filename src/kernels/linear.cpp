// Linear: out (N x O) = in (N x I) * W^T + b, W is (O x I) as in PyTorch.
// Backward: din (N x I) = dout (N x O) * W (O x I); dW (O x I) += dout^T (O x N) * in (N x I);
// db += column sums of dout. Rows of the outputs are split across threads; every element is a
// sum in a fixed order, so results do not depend on the thread count.
#include "kernels/linear.h"

#include <algorithm>
#include <vector>

#include "kernels/gemm.h"

namespace normnet::kernels {

namespace {
// Splits rows [0, m) into fixed blocks and runs fn(begin, end) on each, in parallel.
template <typename F>
void parallel_rows(int64_t m, int64_t block, F fn) {
  const int64_t blocks = (m + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) fn(b * block, std::min(m, (b + 1) * block));
}
}  // namespace

template <typename T>
void linear_forward(T* out, const T* in, const T* weight, const T* bias, int64_t n, int64_t in_f,
                    int64_t out_f) {
  // out = in * W^T: W is stored O x I, i.e. B = W^T stored transposed; pack once.
  std::vector<T> wt(static_cast<size_t>(in_f * out_f));
  for (int64_t o = 0; o < out_f; ++o)
    for (int64_t i = 0; i < in_f; ++i) wt[i * out_f + o] = weight[o * in_f + i];
  parallel_rows(n, 16, [&](int64_t r0, int64_t r1) {
    T* y = out + r0 * out_f;
    if (bias)
      for (int64_t r = r0; r < r1; ++r) std::copy(bias, bias + out_f, out + r * out_f);
    gemm(false, false, r1 - r0, out_f, in_f, in + r0 * in_f, in_f, wt.data(), out_f,
         bias ? T(1) : T(0), y, out_f);
  });
}

template <typename T>
void linear_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                     int64_t n, int64_t in_f, int64_t out_f) {
  if (din)
    parallel_rows(n, 16, [&](int64_t r0, int64_t r1) {
      gemm(false, false, r1 - r0, in_f, out_f, dout + r0 * out_f, out_f, weight, in_f, T(0),
           din + r0 * in_f, in_f);
    });
  // dW rows: dW[o, :] += sum_n dout[n, o] * in[n, :]
  std::vector<T> dt(static_cast<size_t>(out_f * n));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out_f; ++o) dt[o * n + r] = dout[r * out_f + o];
  parallel_rows(out_f, 4, [&](int64_t o0, int64_t o1) {
    gemm(false, false, o1 - o0, in_f, n, dt.data() + o0 * n, n, in, in_f, T(1),
         dweight + o0 * in_f, in_f);
  });
  if (dbias)
    for (int64_t o = 0; o < out_f; ++o) {
      double acc = 0.0;
      for (int64_t r = 0; r < n; ++r) acc += dout[r * out_f + o];
      dbias[o] += static_cast<T>(acc);
    }
}

template void linear_forward<float>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t);
template void linear_forward<double>(double*, const double*, const double*, const double*, int64_t, int64_t, int64_t);
template void linear_backward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t, int64_t, int64_t);
template void linear_backward<double>(double*, double*, double*, const double*, const double*, const double*, int64_t, int64_t, int64_t);

}  // namespace normnet::kernels

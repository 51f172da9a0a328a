// Row-major GEMM, single-threaded, compiled for AVX-512, AVX2+FMA and baseline x86-64 and
// chosen at run time. Transposed operands are packed into row-major scratch first so the
// inner kernel is always C[i, :] += A[i, k] * B[k, :], vectorized over the columns of C:
// every C element is a sum over k in increasing order, whatever the instruction set width.
#include "kernels/gemm.h"

#include <algorithm>
#include <vector>

namespace normnet::kernels {

#if defined(__x86_64__) && !defined(__clang__)
#define NORMNET_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NORMNET_MULTIVERSION
#endif

namespace {

// C (M x N) += A (M x K, row-major lda) * B (K x N, row-major ldb). Four rows at a time share
// each load of B; columns are blocked so a panel of B stays in cache.
template <typename T>
inline __attribute__((always_inline)) void gemm_nn_accumulate_impl(int64_t M, int64_t N, int64_t K, const T* A,
                                             int64_t lda, const T* B, int64_t ldb, T* C,
                                             int64_t ldc) {
  constexpr int64_t kNB = 512;
  for (int64_t j0 = 0; j0 < N; j0 += kNB) {
    const int64_t nb = std::min(kNB, N - j0);
    int64_t i = 0;
    for (; i + 4 <= M; i += 4) {
      T* c0 = C + (i + 0) * ldc + j0;
      T* c1 = C + (i + 1) * ldc + j0;
      T* c2 = C + (i + 2) * ldc + j0;
      T* c3 = C + (i + 3) * ldc + j0;
      for (int64_t k = 0; k < K; ++k) {
        const T a0 = A[(i + 0) * lda + k], a1 = A[(i + 1) * lda + k];
        const T a2 = A[(i + 2) * lda + k], a3 = A[(i + 3) * lda + k];
        const T* b = B + k * ldb + j0;
        for (int64_t j = 0; j < nb; ++j) {
          const T bj = b[j];
          c0[j] += a0 * bj;
          c1[j] += a1 * bj;
          c2[j] += a2 * bj;
          c3[j] += a3 * bj;
        }
      }
    }
    for (; i < M; ++i) {
      T* c = C + i * ldc + j0;
      for (int64_t k = 0; k < K; ++k) {
        const T a = A[i * lda + k];
        const T* b = B + k * ldb + j0;
        for (int64_t j = 0; j < nb; ++j) c[j] += a * b[j];
      }
    }
  }
}

NORMNET_MULTIVERSION void gemm_nn_accumulate(int64_t M, int64_t N, int64_t K, const float* A,
                                             int64_t lda, const float* B, int64_t ldb, float* C,
                                             int64_t ldc) {
  gemm_nn_accumulate_impl(M, N, K, A, lda, B, ldb, C, ldc);
}
NORMNET_MULTIVERSION void gemm_nn_accumulate(int64_t M, int64_t N, int64_t K, const double* A,
                                             int64_t lda, const double* B, int64_t ldb, double* C,
                                             int64_t ldc) {
  gemm_nn_accumulate_impl(M, N, K, A, lda, B, ldb, C, ldc);
}

template <typename T>
void transpose_into(std::vector<T>& dst, const T* src, int64_t rows, int64_t cols, int64_t ld) {
  // src is rows x cols (leading dimension ld); dst becomes cols x rows, row-major.
  dst.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * ld + c];
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0))
      std::fill(c, c + N, T(0));
    else if (beta != T(1))
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
  }
  if (K <= 0) return;
  std::vector<T> ta, tb;
  if (trans_a) {  // A stored K x M
    transpose_into(ta, A, K, M, lda);
    A = ta.data();
    lda = K;
  }
  if (trans_b) {  // B stored N x K
    transpose_into(tb, B, N, K, ldb);
    B = tb.data();
    ldb = N;
  }
  gemm_nn_accumulate(M, N, K, A, lda, B, ldb, C, ldc);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace normnet::kernels

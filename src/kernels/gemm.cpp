// Row-major GEMM, single-threaded. The float kernel is compiled for AVX-512, AVX2+FMA and
// baseline x86-64 and chosen at run time. Transposed operands are packed into row-major
// scratch first, so the kernel is always C += A * B with every C element summed over k in
// increasing order.
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

// Reference-order kernel for double (used by the gradient checks): C[i, :] += A[i, k] * B[k, :].
void gemm_nn_accumulate(int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
                        const double* B, int64_t ldb, double* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const double a = A[i * lda + k];
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] += a * B[k * ldb + j];
    }
}

// float: a register-blocked micro-kernel. A tile of kMR x kNR outputs lives in registers
// (GCC vector extensions: one 512-bit register on AVX-512, two 256-bit on AVX2) while k runs
// over the whole depth; the tile's sums are then added to C. Ragged edges are copied into
// zero-padded tiles and go through the same micro-kernel, so every output element is computed
// by the same instructions in the same order wherever it falls: results do not depend on how
// callers split M or N.
// The helpers below are always inlined into the multiversioned kernel, so the vector ABI note
// GCC gives for 64-byte vectors does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v16 __attribute__((vector_size(64)));
constexpr int64_t kMR = 4, kNR = 32;

inline __attribute__((always_inline)) v16 load16(const float* p) {
  v16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline __attribute__((always_inline)) void store16(float* p, v16 v) { __builtin_memcpy(p, &v, sizeof v); }

// acc (kMR x kNR) = A (kMR rows, stride lda) * B (K x kNR, stride ldb); then C += acc.
inline __attribute__((always_inline)) void micro_kernel(int64_t K, const float* A, int64_t lda,
                                                        const float* B, int64_t ldb, float* C,
                                                        int64_t ldc) {
  v16 c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
  for (int64_t k = 0; k < K; ++k) {
    const v16 b0 = load16(B + k * ldb), b1 = load16(B + k * ldb + 16);
    const float a0 = A[k], a1 = A[lda + k], a2 = A[2 * lda + k], a3 = A[3 * lda + k];
    c00 += a0 * b0;
    c01 += a0 * b1;
    c10 += a1 * b0;
    c11 += a1 * b1;
    c20 += a2 * b0;
    c21 += a2 * b1;
    c30 += a3 * b0;
    c31 += a3 * b1;
  }
  store16(C, load16(C) + c00);
  store16(C + 16, load16(C + 16) + c01);
  store16(C + ldc, load16(C + ldc) + c10);
  store16(C + ldc + 16, load16(C + ldc + 16) + c11);
  store16(C + 2 * ldc, load16(C + 2 * ldc) + c20);
  store16(C + 2 * ldc + 16, load16(C + 2 * ldc + 16) + c21);
  store16(C + 3 * ldc, load16(C + 3 * ldc) + c30);
  store16(C + 3 * ldc + 16, load16(C + 3 * ldc + 16) + c31);
}

NORMNET_MULTIVERSION void gemm_nn_accumulate(int64_t M, int64_t N, int64_t K, const float* A,
                                             int64_t lda, const float* B, int64_t ldb, float* C,
                                             int64_t ldc) {
  std::vector<float> bpad, apad;
  float ctile[kMR * kNR];
  for (int64_t j0 = 0; j0 < N; j0 += kNR) {
    const int64_t nb = std::min(kNR, N - j0);
    const float* Bp = B + j0;
    int64_t ldbp = ldb;
    if (nb < kNR) {  // ragged columns: a zero-padded copy of the panel
      bpad.assign(static_cast<size_t>(K * kNR), 0.0f);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < nb; ++j) bpad[k * kNR + j] = B[k * ldb + j0 + j];
      Bp = bpad.data();
      ldbp = kNR;
    }
    for (int64_t i0 = 0; i0 < M; i0 += kMR) {
      const int64_t mb = std::min(kMR, M - i0);
      const float* Ap = A + i0 * lda;
      int64_t ldap = lda;
      if (mb < kMR) {  // ragged rows: zero-padded rows
        apad.assign(static_cast<size_t>(kMR * K), 0.0f);
        for (int64_t i = 0; i < mb; ++i)
          for (int64_t k = 0; k < K; ++k) apad[i * K + k] = A[(i0 + i) * lda + k];
        Ap = apad.data();
        ldap = K;
      }
      if (mb == kMR && nb == kNR) {
        micro_kernel(K, Ap, ldap, Bp, ldbp, C + i0 * ldc + j0, ldc);
        continue;
      }
      for (int64_t i = 0; i < kMR; ++i)
        for (int64_t j = 0; j < kNR; ++j)
          ctile[i * kNR + j] = (i < mb && j < nb) ? C[(i0 + i) * ldc + j0 + j] : 0.0f;
      micro_kernel(K, Ap, ldap, Bp, ldbp, ctile, kNR);
      for (int64_t i = 0; i < mb; ++i)
        for (int64_t j = 0; j < nb; ++j) C[(i0 + i) * ldc + j0 + j] = ctile[i * kNR + j];
    }
  }
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

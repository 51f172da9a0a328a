// Row-major GEMM, single-threaded. The float kernel is compiled for AVX-512, AVX2+FMA and
// baseline x86-64 and chosen at run time. Transposed operands are packed into row-major
// scratch first, so the kernel is always C += A * B with every C element summed over k in
// increasing order.
#include "kernels/gemm.h"
#include "kernels/multiversion.h"
#include "kernels/vec16.h"

#include <algorithm>
#include <vector>

namespace normnet::kernels {

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
// The helpers below are always inlined into the multiversioned kernel (vec16.h).
constexpr int64_t kMR = 8, kNR = 32;

// acc (kMR x kNR) = A (kMR rows, stride lda) * B (K x kNR, packed: row k at B + k * kNR); then
// C += acc. 16 accumulators: each B row loaded is used by 8 multiply-adds per register.
inline __attribute__((always_inline)) void micro_kernel(int64_t K, const float* A, int64_t lda,
                                                        const float* B, float* C, int64_t ldc) {
  v16 c[kMR][2] = {};
  for (int64_t k = 0; k < K; ++k) {
    const v16 b0 = load16(B + k * kNR), b1 = load16(B + k * kNR + 16);
#pragma GCC unroll 8
    for (int64_t i = 0; i < kMR; ++i) {
      const float a = A[i * lda + k];
      c[i][0] += a * b0;
      c[i][1] += a * b1;
    }
  }
#pragma GCC unroll 8
  for (int64_t i = 0; i < kMR; ++i) {
    store16(C + i * ldc, load16(C + i * ldc) + c[i][0]);
    store16(C + i * ldc + 16, load16(C + i * ldc + 16) + c[i][1]);
  }
}

NORMNET_MULTIVERSION void gemm_nn_accumulate(int64_t M, int64_t N, int64_t K, const float* A,
                                             int64_t lda, const float* B, int64_t ldb, float* C,
                                             int64_t ldc) {
  // The panel of B for kNR columns is packed once (K x kNR, contiguous, ragged columns
  // zero-padded) and used by every row tile: sequential reads that stay in cache.
  std::vector<float> bpack(static_cast<size_t>(K * kNR)), apad;
  float ctile[kMR * kNR];
  for (int64_t j0 = 0; j0 < N; j0 += kNR) {
    const int64_t nb = std::min(kNR, N - j0);
    for (int64_t k = 0; k < K; ++k) {
      float* dst = bpack.data() + k * kNR;
      const float* src = B + k * ldb + j0;
      if (nb == kNR) {
        store16(dst, load16(src));
        store16(dst + 16, load16(src + 16));
      } else {
        for (int64_t j = 0; j < kNR; ++j) dst[j] = j < nb ? src[j] : 0.0f;
      }
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
        micro_kernel(K, Ap, ldap, bpack.data(), C + i0 * ldc + j0, ldc);
        continue;
      }
      for (int64_t i = 0; i < kMR; ++i)
        for (int64_t j = 0; j < kNR; ++j)
          ctile[i * kNR + j] = (i < mb && j < nb) ? C[(i0 + i) * ldc + j0 + j] : 0.0f;
      micro_kernel(K, Ap, ldap, bpack.data(), ctile, kNR);
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

// Single-threaded matrix product on row-major matrices:
//   C (M x N) = op(A) (M x K) * op(B) (K x N) + beta * C
// op(A) = A (lda >= K) or A^T stored K x M (lda >= M); likewise op(B).
// Each element of C is summed over k in increasing order, so results do not depend on
// how callers split M or N across threads. Callers parallelize; gemm itself never does.
#pragma once
#include <cstdint>

namespace normnet::kernels {

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace normnet::kernels

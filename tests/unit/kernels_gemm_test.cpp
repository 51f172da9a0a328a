// gemm float kernel vs the double reference: all transpose combinations, beta 0 and 1, odd
// sizes, leading dimensions wider than the matrices.
#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include "kernel_test_util.h"
#include "kernels/gemm.h"
#include "ref/reference.h"

namespace normnet {
namespace {

using test::abs_of;
using test::expect_close;
using test::random_floats;
using test::to_double;

class GemmTester {
 public:
  GemmTester& m(int64_t v) { return m_ = v, *this; }
  GemmTester& n(int64_t v) { return n_ = v, *this; }
  GemmTester& k(int64_t v) { return k_ = v, *this; }
  GemmTester& trans(bool a, bool b) { return ta_ = a, tb_ = b, *this; }
  GemmTester& beta(float b) { return beta_ = b, *this; }
  GemmTester& ld_padding(int64_t p) { return ld_pad_ = p, *this; }  // extra columns per row
  GemmTester& seed(uint64_t s) { return seed_ = s, *this; }

  void Test() const {
    std::ostringstream o;
    o << "gemm ta=" << ta_ << " tb=" << tb_ << " M=" << m_ << " N=" << n_ << " K=" << k_
      << " beta=" << beta_ << " ld+" << ld_pad_;
    const std::string what = o.str();
    // Stored shapes: A is M x K (or K x M), B is K x N (or N x K), C is M x N.
    const int64_t a_rows = ta_ ? k_ : m_, a_cols = ta_ ? m_ : k_;
    const int64_t b_rows = tb_ ? n_ : k_, b_cols = tb_ ? k_ : n_;
    const int64_t lda = a_cols + ld_pad_, ldb = b_cols + ld_pad_, ldc = n_ + ld_pad_;

    Rng rng(seed_);
    const auto A = random_floats(rng, a_rows * lda), B = random_floats(rng, b_rows * ldb);
    const auto C0 = random_floats(rng, m_ * ldc);
    std::vector<float> C = C0;
    if (beta_ == 0.f)  // beta == 0: C must not be read (it may hold NaN from an empty buffer)
      for (int64_t i = 0; i < m_; ++i)
        for (int64_t j = 0; j < n_; ++j) C[i * ldc + j] = NAN;
    kernels::gemm(ta_, tb_, m_, n_, k_, A.data(), lda, B.data(), ldb, beta_, C.data(), ldc);

    const auto Ad = to_double(A), Bd = to_double(B);
    std::vector<double> ref = to_double(C0), mag = abs_of(ref);
    ref::gemm(ta_, tb_, m_, n_, k_, Ad.data(), lda, Bd.data(), ldb, beta_, ref.data(), ldc);
    ref::gemm(ta_, tb_, m_, n_, k_, abs_of(Ad).data(), lda, abs_of(Bd).data(), ldb,
              std::fabs(beta_), mag.data(), ldc);
    expect_close(C, ref, mag, double(k_ + 1), what);  // padding columns: ref keeps C0 there
  }

 private:
  int64_t m_ = 1, n_ = 1, k_ = 1, ld_pad_ = 0;
  bool ta_ = false, tb_ = false;
  float beta_ = 0.f;
  uint64_t seed_ = 1;
};

TEST(kernels_gemm, TransposeCombinationsOddSizes) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.f, 1.f})
        for (int64_t M : {1, 3, 7, 17})
          for (int64_t N : {1, 5, 33})
            for (int64_t K : {1, 9, 31})
              GemmTester().trans(ta, tb).beta(beta).m(M).n(N).k(K).Test();
}

TEST(kernels_gemm, LeadingDimensionsWiderThanMatrix) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.f, 1.f})
        GemmTester().trans(ta, tb).beta(beta).m(13).n(11).k(7).ld_padding(5).Test();
}

TEST(kernels_gemm, OtherBeta) {
  for (bool ta : {false, true}) GemmTester().trans(ta, !ta).beta(0.5f).m(6).n(9).k(10).Test();
  GemmTester().beta(-2.f).m(5).n(5).k(5).Test();
}

TEST(kernels_gemm, LargeBlocks) {  // crosses the kernel's column blocking and 4-row tiles
  GemmTester().m(37).n(530).k(65).beta(1.f).Test();
  GemmTester().trans(true, true).m(66).n(1031).k(3).Test();
  GemmTester().m(9).n(7).k(1000).beta(1.f).Test();
}

TEST(kernels_gemm, ZeroK) {  // C = beta * C
  GemmTester().m(3).n(4).k(0).beta(1.f).Test();
  GemmTester().m(3).n(4).k(0).beta(0.f).Test();
}

// gemm.h: every element is summed over k in increasing order, so splitting M or N across
// callers gives the same bits.
TEST(kernels_gemm, SplittingRowsOrColumnsGivesSameBits) {
  const int64_t M = 23, N = 37, K = 51;
  Rng rng(7);
  const auto A = random_floats(rng, M * K), B = random_floats(rng, K * N);
  std::vector<float> whole(M * N), rows(M * N), cols(M * N);
  kernels::gemm(false, false, M, N, K, A.data(), K, B.data(), N, 0.f, whole.data(), N);
  for (int64_t i = 0; i < M; ++i)  // one row at a time
    kernels::gemm(false, false, 1, N, K, A.data() + i * K, K, B.data(), N, 0.f, rows.data() + i * N,
                  N);
  for (int64_t j = 0; j < N; j += 5)  // column panels of 5
    kernels::gemm(false, false, M, std::min<int64_t>(5, N - j), K, A.data(), K, B.data() + j, N,
                  0.f, cols.data() + j, N);
  EXPECT_EQ(0, std::memcmp(whole.data(), rows.data(), whole.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(whole.data(), cols.data(), whole.size() * sizeof(float)));
}

}  // namespace
}  // namespace normnet

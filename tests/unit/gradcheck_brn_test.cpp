// Central finite-difference checks of the Batch Renormalization backward kernel in double
// (src/kernels/batchrenorm.h), as gradcheck_norm_test does for the other normalizations.
//
// The paper's backward treats r and d as constants (stop_gradient). So for the input the
// numerical derivative is taken of
//   F(x) = sum R * (gamma * (xhat(x) * r0 + d0) + beta)
// with r0, d0 the kernel's values at the unperturbed x held fixed, xhat(x) from the BatchNorm
// kernel (batch mean and variance still depend on x). For gamma and beta the kernel's own
// forward is differentiated (r and d do not depend on them). Where r and d are both clipped in
// every channel they are locally constant, so there the stop-gradient backward is the true
// gradient of the kernel's forward, which the last test checks without freezing anything.
//
// Tolerance as gradcheck_norm_test: 1e-6 relative plus 1e-9 * (1 + sum |out * R|).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "gradcheck_util.h"
#include "kernel_test_util.h"
#include "kernels/batchnorm.h"
#include "kernels/batchrenorm.h"

namespace normnet {
namespace {

namespace k = kernels;
using Vec = std::vector<double>;
using test::random_doubles;

using test::GradCheck;
using test::Zeros;

// rm, rv: the running statistics r and d are computed from.
void CheckBatchRenorm(const k::BatchNormShape& s, bool affine, const Vec& rm, const Vec& rv,
                      const k::RenormLimits& lim, const std::string& what) {
  const int64_t total = s.n * s.c * s.spatial, C = s.c;
  Rng rng(61);
  Vec in = random_doubles(rng, total), gamma = random_doubles(rng, C, 0.5, 1.5);
  Vec beta = random_doubles(rng, C);
  Vec mean(C), var(C), invstd(C), r(C), d(C);
  const double* g = affine ? gamma.data() : nullptr;
  const double* b = affine ? beta.data() : nullptr;
  auto kernel_forward = [&] {
    Vec out(total);
    k::batchrenorm_forward_train(out.data(), mean.data(), var.data(), invstd.data(), r.data(),
                                 d.data(), in.data(), g, b, rm.data(), rv.data(), 1e-5, lim, s);
    return out;
  };
  const Vec R = random_doubles(rng, total);
  const Vec y0 = kernel_forward();
  const Vec r0 = r, d0 = d, mean0 = mean, invstd0 = invstd;
  // r and d are the paper's clipped ratios.
  for (int64_t c = 0; c < C; ++c) {
    const double sigma = std::sqrt(rv[c] + 1e-5);
    EXPECT_NEAR(r0[c], std::clamp(std::sqrt(var[c] + 1e-5) / sigma, 1 / lim.r_max, lim.r_max), 1e-14) << what;
    EXPECT_NEAR(d0[c], std::clamp((mean[c] - rm[c]) / sigma, -lim.d_max, lim.d_max), 1e-14) << what;
  }
  // The input with r0, d0 frozen.
  GradCheck frozen{[&] {
                     Vec xhat(total), m(C), v(C), is(C);
                     k::batchnorm_forward_train(xhat.data(), m.data(), v.data(), is.data(),
                                                in.data(), static_cast<const double*>(nullptr),
                                                static_cast<const double*>(nullptr), 1e-5, s);
                     Vec out(total);
                     for (int64_t i = 0; i < total; ++i) {
                       const int64_t c = (i / s.spatial) % C;
                       out[i] = (affine ? gamma[c] : 1.0) * (xhat[i] * r0[c] + d0[c]) +
                                (affine ? beta[c] : 0.0);
                     }
                     return out;
                   },
                   R};
  const Vec yf = frozen.forward();
  for (int64_t i = 0; i < total; ++i) ASSERT_NEAR(yf[i], y0[i], 1e-12) << what << " frozen forward";
  Vec din = Zeros(total), dgamma = Zeros(C), dbeta = Zeros(C);
  k::batchrenorm_backward_train(din.data(), affine ? dgamma.data() : nullptr,
                                affine ? dbeta.data() : nullptr, R.data(), in.data(), mean0.data(),
                                invstd0.data(), r0.data(), d0.data(), g, s);
  frozen.Check(in, din, what + " din (r, d constant)");
  if (affine) {
    GradCheck direct{kernel_forward, R};
    direct.Check(gamma, dgamma, what + " dgamma");
    direct.Check(beta, dbeta, what + " dbeta");
  }
}

TEST(gradcheck_brn, StopGradientBackward) {
  const k::RenormLimits lim{1.5, 0.5};
  Rng rng(62);
  for (bool affine : {true, false}) {
    const std::string a = affine ? " affine" : " no affine";
    // Random inputs in [-1, 1] have std about 0.58: running variances 0.05 .. 3 give r clipped
    // high, free and clipped low; running means -1 .. 1 give d free and clipped.
    CheckBatchRenorm({.n = 4, .c = 3, .spatial = 5}, affine, {0.0, 0.9, -1.0}, {0.05, 0.4, 3.0},
                     lim, "brn (4,3,5)" + a);
    CheckBatchRenorm({.n = 6, .c = 2, .spatial = 1}, affine, {0.1, -0.2}, {0.3, 0.3}, lim,
                     "brn (6,2,1)" + a);
    CheckBatchRenorm({.n = 2, .c = 4, .spatial = 3}, affine, random_doubles(rng, 4, -1, 1),
                     random_doubles(rng, 4, 0.05, 3), {3.0, 5.0}, "brn (2,4,3) default limits" + a);
  }
}

// r and d clipped in every channel: the stop-gradient backward is the exact gradient.
TEST(gradcheck_brn, ClippedEverywhereIsTheTrueGradient) {
  const k::BatchNormShape s{.n = 3, .c = 3, .spatial = 4};
  const int64_t total = s.n * s.c * s.spatial;
  const k::RenormLimits lim{2.0, 1.0};
  Rng rng(63);
  Vec in = random_doubles(rng, total), gamma = random_doubles(rng, 3, 0.5, 1.5),
      beta = random_doubles(rng, 3);
  const Vec rm{10.0, -30.0, 5.0}, rv{0.001, 100.0, 0.002};  // far from the batch statistics
  Vec mean(3), var(3), invstd(3), r(3), d(3);
  GradCheck gc{[&] {
                 Vec out(total);
                 k::batchrenorm_forward_train(out.data(), mean.data(), var.data(), invstd.data(),
                                              r.data(), d.data(), in.data(), gamma.data(),
                                              beta.data(), rm.data(), rv.data(), 1e-5, lim, s);
                 return out;
               },
               random_doubles(rng, total)};
  gc.forward();
  for (int c = 0; c < 3; ++c) {
    EXPECT_TRUE(std::fabs(r[c]) == 2.0 || std::fabs(r[c]) == 0.5) << "r[" << c << "] = " << r[c];
    EXPECT_EQ(std::fabs(d[c]), 1.0) << "d[" << c << "]";
  }
  Vec din = Zeros(total), dgamma = Zeros(3), dbeta = Zeros(3);
  k::batchrenorm_backward_train(din.data(), dgamma.data(), dbeta.data(), gc.R.data(), in.data(),
                                mean.data(), invstd.data(), r.data(), d.data(), gamma.data(), s);
  gc.Check(in, din, "brn clipped din");
  gc.Check(gamma, dgamma, "brn clipped dgamma");
  gc.Check(beta, dbeta, "brn clipped dbeta");
}

}  // namespace
}  // namespace normnet

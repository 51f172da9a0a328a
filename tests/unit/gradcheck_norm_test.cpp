// Central finite-difference checks of the GroupNorm, LayerNorm and InstanceNorm backward
// kernels in double precision (their double instantiations), for the input, the weight and the
// bias, as gradcheck_test does for the other kernels.
//
// Method: loss = sum(out * R) for a fixed random R, so dloss/dout = R is what each backward is
// given; for every element x_i the numerical derivative (L(x + h e_i) - L(x - h e_i)) / 2h with
// h = 1e-6 is compared with the analytic one.
//
// Tolerance (as gradcheck_test). Truncation error h^2/6 * |L'''|: the normalizations are smooth
// with O(1) third derivatives at these scales (std about 0.6, eps 1e-5), so about 1e-13;
// rounding error about DBL_EPSILON * S / h with S = sum |out * R| (1e-10 * S). We allow 1e-6
// relative to the gradient plus 1e-9 * (1 + S) absolute: both errors with a wide margin, while
// a missing term (the mean's or the variance's dependence on x, a gamma applied to the wrong
// channel or position) is an error of the order of the gradient itself. Normalization sets of
// one value (GroupNorm with G = C on one position) are excluded here: their output is beta
// whatever x, which the kernel test covers.
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
#include "kernels/groupnorm.h"
#include "kernels/layernorm.h"

namespace normnet {
namespace {

namespace k = kernels;
using Vec = std::vector<double>;
using test::random_doubles;

using test::GradCheck;
using test::Zeros;

// GroupNorm (and InstanceNorm in training, or without running statistics: groups == c).
void CheckGroupNorm(const k::GroupNormShape& s, bool affine) {
  const std::string what = "groupnorm (" + std::to_string(s.n) + "," + std::to_string(s.c) + "," +
                           std::to_string(s.spatial) + ") G=" + std::to_string(s.groups) +
                           " affine=" + std::to_string(affine);
  const int64_t total = s.n * s.c * s.spatial, NG = s.n * s.groups;
  Rng rng(51);
  Vec in = random_doubles(rng, total), gamma = random_doubles(rng, s.c, 0.5, 1.5);
  Vec beta = random_doubles(rng, s.c);
  Vec mean(NG), var(NG), invstd(NG);
  const double* g = affine ? gamma.data() : nullptr;
  const double* b = affine ? beta.data() : nullptr;
  GradCheck gc{[&] {
                 Vec out(total);
                 k::groupnorm_forward(out.data(), mean.data(), var.data(), invstd.data(), in.data(),
                                      g, b, 1e-5, s);
                 return out;
               },
               random_doubles(rng, total)};
  gc.forward();  // mean and invstd for backward
  Vec din = Zeros(total), dgamma = Zeros(s.c), dbeta = Zeros(s.c);
  k::groupnorm_backward(din.data(), affine ? dgamma.data() : nullptr,
                        affine ? dbeta.data() : nullptr, gc.R.data(), in.data(), mean.data(),
                        invstd.data(), g, s);
  gc.Check(in, din, what + " din");
  if (affine) {
    gc.Check(gamma, dgamma, what + " dgamma");
    gc.Check(beta, dbeta, what + " dbeta");
  }
}

TEST(gradcheck_norm, GroupNorm) {
  CheckGroupNorm({.n = 2, .c = 6, .spatial = 5, .groups = 2}, true);
  CheckGroupNorm({.n = 3, .c = 4, .spatial = 3, .groups = 1}, true);  // one group: LayerNorm-like
  CheckGroupNorm({.n = 1, .c = 6, .spatial = 1, .groups = 3}, true);  // (N, C) input
  CheckGroupNorm({.n = 2, .c = 3, .spatial = 7, .groups = 3}, false);
}

TEST(gradcheck_norm, InstanceNormTrain) {  // the GroupNorm kernels with one group per channel
  CheckGroupNorm({.n = 2, .c = 3, .spatial = 6, .groups = 3}, true);
  CheckGroupNorm({.n = 1, .c = 2, .spatial = 9, .groups = 2}, true);
  CheckGroupNorm({.n = 3, .c = 2, .spatial = 4, .groups = 2}, false);
}

// InstanceNorm in evaluation with running statistics: the BatchNorm evaluation kernels on
// (N, C, S), statistics constant.
TEST(gradcheck_norm, InstanceNormEvalRunningStats) {
  const k::BatchNormShape s{.n = 2, .c = 3, .spatial = 5};
  const int64_t total = s.n * s.c * s.spatial;
  Rng rng(52);
  Vec in = random_doubles(rng, total), gamma = random_doubles(rng, s.c, 0.5, 1.5);
  Vec beta = random_doubles(rng, s.c);
  const Vec rmean = random_doubles(rng, s.c, -0.2, 0.2), rvar = random_doubles(rng, s.c, 0.5, 2);
  GradCheck gc{[&] {
                 Vec out(total);
                 k::batchnorm_forward_eval(out.data(), in.data(), rmean.data(), rvar.data(),
                                           gamma.data(), beta.data(), 1e-5, s);
                 return out;
               },
               random_doubles(rng, total)};
  Vec din = Zeros(total), dgamma = Zeros(s.c), dbeta = Zeros(s.c);
  k::batchnorm_backward_eval(din.data(), dgamma.data(), dbeta.data(), gc.R.data(), in.data(),
                             rmean.data(), rvar.data(), gamma.data(), 1e-5, s);
  gc.Check(in, din, "instancenorm eval din");
  gc.Check(gamma, dgamma, "instancenorm eval dgamma");
  gc.Check(beta, dbeta, "instancenorm eval dbeta");
}

void CheckLayerNorm(const k::LayerNormShape& s, bool affine) {
  const std::string what = "layernorm (" + std::to_string(s.rows) + "," + std::to_string(s.cols) +
                           ") affine=" + std::to_string(affine);
  const int64_t total = s.rows * s.cols;
  Rng rng(53);
  Vec in = random_doubles(rng, total), gamma = random_doubles(rng, s.cols, 0.5, 1.5);
  Vec beta = random_doubles(rng, s.cols);
  Vec mean(s.rows), var(s.rows), invstd(s.rows);
  const double* g = affine ? gamma.data() : nullptr;
  const double* b = affine ? beta.data() : nullptr;
  GradCheck gc{[&] {
                 Vec out(total);
                 k::layernorm_forward(out.data(), mean.data(), var.data(), invstd.data(), in.data(),
                                      g, b, 1e-5, s);
                 return out;
               },
               random_doubles(rng, total)};
  gc.forward();
  Vec din = Zeros(total), dgamma = Zeros(s.cols), dbeta = Zeros(s.cols);
  k::layernorm_backward(din.data(), affine ? dgamma.data() : nullptr,
                        affine ? dbeta.data() : nullptr, gc.R.data(), in.data(), mean.data(),
                        invstd.data(), g, s);
  gc.Check(in, din, what + " din");
  if (affine) {
    gc.Check(gamma, dgamma, what + " dgamma");
    gc.Check(beta, dbeta, what + " dbeta");
  }
}

TEST(gradcheck_norm, LayerNorm) {
  CheckLayerNorm({.rows = 3, .cols = 8}, true);   // e.g. (N=3, features=8)
  CheckLayerNorm({.rows = 4, .cols = 12}, true);  // e.g. (2, 2, 3, 4) over [3, 4]
  CheckLayerNorm({.rows = 1, .cols = 5}, true);
  CheckLayerNorm({.rows = 2, .cols = 6}, false);
}

}  // namespace
}  // namespace normnet

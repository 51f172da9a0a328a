// Central finite-difference gradient checks of the fused BatchNorm + ReLU,
// BatchNorm + add + ReLU and BatchNorm + ReLU + MaxPool kernels (kernels/batchnorm_relu.h) in double precision, in training
// (batch statistics: the full BN backward) and evaluation (running statistics).
//
// Method and tolerance as gradcheck_test.cpp: loss = sum(out * R) for a fixed random R, the
// numerical derivative (L(p + h) - L(p - h)) / 2h with h = 1e-6 against the analytic one, within
// 1e-6 relative plus 1e-9 * (1 + sum|out * R|) absolute. ReLU has a kink at 0: a perturbation
// that flips any element's mask bit (compared with the unperturbed forward) is skipped, and the
// check requires that at least 3/4 of the points were checked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "gradcheck_util.h"
#include "kernel_test_util.h"
#include "kernels/batchnorm_relu.h"

namespace normnet {
namespace {

namespace k = kernels;
using Vec = std::vector<double>;
using Mask = std::vector<uint64_t>;
using test::random_doubles;

using test::GradCheck;

struct Fixture {
  k::BatchNormShape s;
  bool train = true, residual = false, affine = true;
  Vec in, res, gamma, beta, rm, rv, R;
  Vec mean, var, invstd;
  Mask mask, base_mask;

  Fixture(k::BatchNormShape shape, bool tr, bool resid, bool aff, uint64_t seed)
      : s(shape), train(tr), residual(resid), affine(aff) {
    Rng rng(seed);
    const int64_t total = s.n * s.c * s.spatial;
    in = random_doubles(rng, total, -2, 2);
    res = random_doubles(rng, total);
    gamma = random_doubles(rng, s.c, 0.5, 1.5);
    beta = random_doubles(rng, s.c, -0.5, 0.5);
    rm = random_doubles(rng, s.c, -0.5, 0.5);
    rv = random_doubles(rng, s.c, 0.3, 2.0);
    R = random_doubles(rng, total);
    mean.assign(s.c, 0), var.assign(s.c, 0), invstd.assign(s.c, 0);
    mask.assign(k::relu_mask_words(total), 0);
  }

  Vec Forward() {
    Vec out(in.size());
    const double* g = affine ? gamma.data() : nullptr;
    const double* b = affine ? beta.data() : nullptr;
    if (train && residual)
      k::batchnorm_add_relu_forward_train(out.data(), mask.data(), mean.data(), var.data(), invstd.data(),
                                          in.data(), res.data(), g, b, 1e-5, s);
    else if (train)
      k::batchnorm_relu_forward_train(out.data(), mask.data(), mean.data(), var.data(), invstd.data(),
                                      in.data(), g, b, 1e-5, s);
    else if (residual)
      k::batchnorm_add_relu_forward_eval(out.data(), mask.data(), in.data(), res.data(), rm.data(),
                                         rv.data(), g, b, 1e-5, s);
    else
      k::batchnorm_relu_forward_eval(out.data(), mask.data(), in.data(), rm.data(), rv.data(), g, b,
                                     1e-5, s);
    return out;
  }

  // Through the shared check: a perturbation that flips any mask bit (against base_mask) has
  // crossed the ReLU kink and is skipped.
  void Check(Vec& param, const Vec& analytic, const std::string& what) {
    GradCheck gc{[this] { return Forward(); }, R};
    gc.crossed = [this] { return mask != base_mask; };
    gc.Check(param, analytic, what);
  }

  void Run() {
    const std::string what = std::string(residual ? "bn_add_relu" : "bn_relu") + (train ? " train" : " eval") +
                             " (" + std::to_string(s.n) + "," + std::to_string(s.c) + "," +
                             std::to_string(s.spatial) + ") affine=" + std::to_string(affine);
    Forward();  // statistics and mask for backward
    base_mask = mask;
    const int64_t total = in.size();
    Vec din(total, 0), dres(residual ? total : 0, 0), dgamma(s.c, 0), dbeta(s.c, 0);
    const double* g = affine ? gamma.data() : nullptr;
    double* dg = affine ? dgamma.data() : nullptr;
    double* db = affine ? dbeta.data() : nullptr;
    if (train && residual)
      k::batchnorm_add_relu_backward_train(din.data(), dres.data(), dg, db, R.data(), mask.data(), in.data(),
                                           mean.data(), invstd.data(), g, s);
    else if (train)
      k::batchnorm_relu_backward_train(din.data(), dg, db, R.data(), mask.data(), in.data(), mean.data(),
                                       invstd.data(), g, s);
    else if (residual)
      k::batchnorm_add_relu_backward_eval(din.data(), dres.data(), dg, db, R.data(), mask.data(), in.data(),
                                          rm.data(), rv.data(), g, 1e-5, s);
    else
      k::batchnorm_relu_backward_eval(din.data(), dg, db, R.data(), mask.data(), in.data(), rm.data(),
                                      rv.data(), g, 1e-5, s);
    Check(in, din, what + " din");
    if (residual) Check(res, dres, what + " dresidual");
    if (affine) {
      Check(gamma, dgamma, what + " dgamma");
      Check(beta, dbeta, what + " dbeta");
    }
  }
};

TEST(gradcheck_fused, BatchNormReluTrain) {
  Fixture({3, 2, 5}, true, false, true, 41).Run();
  Fixture({6, 3, 1}, true, false, true, 42).Run();  // BatchNorm1d on (N, C)
  Fixture({2, 2, 4}, true, false, false, 43).Run();
}

TEST(gradcheck_fused, BatchNormReluEval) {
  Fixture({3, 2, 5}, false, false, true, 44).Run();
  Fixture({2, 3, 3}, false, false, false, 45).Run();
}

TEST(gradcheck_fused, BatchNormAddReluTrain) {
  Fixture({3, 2, 5}, true, true, true, 46).Run();
  Fixture({5, 2, 1}, true, true, false, 47).Run();
}

TEST(gradcheck_fused, BatchNormAddReluEval) {
  Fixture({3, 2, 5}, false, true, true, 48).Run();
}

// BatchNorm + ReLU + MaxPool2d(2), training: loss = sum(pooled * R). A perturbation that
// changes any window's winner (or whether the ReLU blocks it) crosses a kink and is skipped.
struct PoolFixture {
  k::BatchNormShape s;
  int64_t h, w;
  bool affine;
  Vec in, gamma, beta, R, mean, var, invstd;
  std::vector<int32_t> win, base_win;

  PoolFixture(int64_t n, int64_t c, int64_t hh, int64_t ww, bool aff, uint64_t seed)
      : s{n, c, hh * ww}, h(hh), w(ww), affine(aff) {
    Rng rng(seed);
    in = random_doubles(rng, n * c * h * w, -2, 2);
    gamma = random_doubles(rng, c, 0.5, 1.5);
    beta = random_doubles(rng, c, -0.5, 0.5);
    R = random_doubles(rng, n * c * (h / 2) * (w / 2));
    mean.assign(c, 0), var.assign(c, 0), invstd.assign(c, 0);
    win.assign(R.size(), 0);
  }

  Vec Forward() {
    Vec out(R.size());
    k::batchnorm_relu_maxpool_forward_train(out.data(), win.data(), mean.data(), var.data(), invstd.data(),
                                            in.data(), affine ? gamma.data() : nullptr,
                                            affine ? beta.data() : nullptr, 1e-5, s, h, w);
    return out;
  }

  void Check(Vec& param, const Vec& analytic, const std::string& what) {
    GradCheck gc{[this] { return Forward(); }, R};
    gc.crossed = [this] { return win != base_win; };
    gc.Check(param, analytic, what);
  }

  void Run() {
    const std::string what = "bn_relu_maxpool train (" + std::to_string(s.n) + "," + std::to_string(s.c) +
                             "," + std::to_string(h) + "x" + std::to_string(w) + ") affine=" + std::to_string(affine);
    Forward();
    base_win = win;
    Vec din(in.size(), 0), dgamma(s.c, 0), dbeta(s.c, 0);
    k::batchnorm_relu_maxpool_backward_train(din.data(), affine ? dgamma.data() : nullptr,
                                             affine ? dbeta.data() : nullptr, R.data(), win.data(), in.data(),
                                             mean.data(), invstd.data(), affine ? gamma.data() : nullptr, s, h, w);
    Check(in, din, what + " din");
    if (affine) {
      Check(gamma, dgamma, what + " dgamma");
      Check(beta, dbeta, what + " dbeta");
    }
  }
};

TEST(gradcheck_fused, BatchNormReluMaxPoolTrain) {
  PoolFixture(3, 2, 4, 6, true, 49).Run();
  PoolFixture(2, 2, 5, 5, false, 50).Run();  // the odd last row and column: no window
}

}  // namespace
}  // namespace normnet

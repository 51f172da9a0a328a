// BatchNorm float kernels vs the double reference: train forward/backward, eval
// forward/backward, running-statistics update.
//
// Tolerances (u = FLT_EPSILON / 2). batchnorm.h promises the statistics are summed in double, so
// mean, var and invstd may only carry the final rounding to float: we allow 4 * FLT_EPSILON
// relative to their magnitude. The output y = (x - mean) * invstd * gamma + beta takes a few
// float operations, and mean itself is rounded by up to u * |mean|, so y is compared with
// 4 * FLT_EPSILON * ((|x - mean| + |mean|) * invstd * |gamma| + |beta|). Backward sums run over
// M = N * S values; for those we use the generic sqrt(M) bound of expect_close.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "kernel_test_util.h"
#include "kernels/batchnorm.h"
#include "ref/reference.h"

namespace normnet {
namespace {

using kernels::BatchNormShape;
using test::expect_close;
using test::random_floats;
using test::to_double;

class BatchNormTester {
 public:
  BatchNormTester& batch(int64_t n) { return s_.n = n, *this; }
  BatchNormTester& channels(int64_t c) { return s_.c = c, *this; }
  BatchNormTester& spatial(int64_t s) { return s_.spatial = s, *this; }
  BatchNormTester& affine(bool a) { return affine_ = a, *this; }
  BatchNormTester& input_mean(double m) { return mean_ = m, *this; }  // input ~ mean + std * N(0,1)
  BatchNormTester& input_std(double s) { return std_ = s, *this; }
  BatchNormTester& seed(uint64_t s) { return seed_ = s, *this; }

  void Test() const {
    ASSERT_GE(s_.count(), 2) << "training batch norm needs more than one value per channel";
    std::ostringstream o;
    o << "batchnorm n=" << s_.n << " c=" << s_.c << " s=" << s_.spatial << " affine=" << affine_
      << " mean=" << mean_ << " std=" << std_;
    what_ = o.str();
    Rng rng(seed_);
    in_.resize(s_.n * s_.c * s_.spatial);
    for (auto& x : in_) x = static_cast<float>(mean_ + std_ * rng.normal());
    gamma_ = random_floats(rng, s_.c, 0.5f, 1.5f);
    beta_ = random_floats(rng, s_.c);
    dout_ = random_floats(rng, in_.size());
    dgamma0_ = random_floats(rng, s_.c), dbeta0_ = random_floats(rng, s_.c);
    TestTrain();
    TestEval();
    TestUpdateRunning(rng);
  }

 private:
  const float* gamma() const { return affine_ ? gamma_.data() : nullptr; }
  const float* beta() const { return affine_ ? beta_.data() : nullptr; }
  double gamma_at(int64_t c) const { return affine_ ? gamma_[c] : 1.0; }
  double beta_at(int64_t c) const { return affine_ ? beta_[c] : 0.0; }
  int64_t index(int64_t n, int64_t c, int64_t k) const { return (n * s_.c + c) * s_.spatial + k; }

  // Magnitude of y = (x - mean) * invstd * gamma + beta, counting mean's own rounding.
  std::vector<double> y_magnitude(const std::vector<double>& mean,
                                  const std::vector<double>& invstd) const {
    std::vector<double> mag(in_.size());
    for (int64_t n = 0; n < s_.n; ++n)
      for (int64_t c = 0; c < s_.c; ++c)
        for (int64_t k = 0; k < s_.spatial; ++k) {
          const int64_t i = index(n, c, k);
          mag[i] = (std::fabs(in_[i] - mean[c]) + std::fabs(mean[c])) * invstd[c] *
                       std::fabs(gamma_at(c)) +
                   std::fabs(beta_at(c));
        }
    return mag;
  }

  void TestTrain() const {
    const int64_t C = s_.c, total = in_.size();
    std::vector<float> out(total, NAN), mean(C), var(C), invstd(C);
    kernels::batchnorm_forward_train(out.data(), mean.data(), var.data(), invstd.data(), in_.data(),
                                     gamma(), beta(), eps_, s_);
    const auto in_d = to_double(in_), g_d = to_double(gamma_), b_d = to_double(beta_);
    std::vector<double> out_r(total), mean_r(C), var_r(C), invstd_r(C);
    ref::batchnorm_forward_train(out_r.data(), mean_r.data(), var_r.data(), invstd_r.data(),
                                 in_d.data(), affine_ ? g_d.data() : nullptr,
                                 affine_ ? b_d.data() : nullptr, eps_, s_);
    std::vector<double> mean_mag(C), var_mag = var_r, invstd_mag = invstd_r;
    for (int64_t c = 0; c < C; ++c) mean_mag[c] = std::fabs(mean_r[c]) + std::sqrt(var_r[c]);
    expect_close(mean, mean_r, mean_mag, 4, what_ + " train mean");
    expect_close(var, var_r, var_mag, 4, what_ + " train var");
    expect_close(invstd, invstd_r, invstd_mag, 4, what_ + " train invstd");
    expect_close(out, out_r, y_magnitude(mean_r, invstd_r), 4, what_ + " train out");
    for (int64_t c = 0; c < C; ++c)  // the brief's large-mean criterion, stated directly
      EXPECT_LT(std::fabs(var[c] - var_r[c]), 1e-3 * var_r[c]) << what_ << " channel " << c;

    // Backward, each side with its own statistics.
    std::vector<float> din(total, 1e30f), dgamma = dgamma0_, dbeta = dbeta0_;
    kernels::batchnorm_backward_train(din.data(), affine_ ? dgamma.data() : nullptr,
                                      affine_ ? dbeta.data() : nullptr, dout_.data(), in_.data(),
                                      mean.data(), invstd.data(), gamma(), s_);
    const auto dout_d = to_double(dout_);
    std::vector<double> din_r(total), dgamma_r = to_double(dgamma0_), dbeta_r = to_double(dbeta0_);
    ref::batchnorm_backward_train(din_r.data(), dgamma_r.data(), dbeta_r.data(), dout_d.data(),
                                  in_d.data(), mean_r.data(), invstd_r.data(),
                                  affine_ ? g_d.data() : nullptr, s_);
    // Magnitudes of the terms of dx = g*is/M * (M*dy - sum dy - xhat * sum dy*xhat), with the
    // float mean's rounding (u*|mean|*is in xhat) carried through.
    const double M = double(s_.count());
    std::vector<double> din_mag(total), dgamma_mag(C), dbeta_mag(C);
    for (int64_t c = 0; c < C; ++c) {
      double A = 0, B = 0;
      const double shift = std::fabs(mean_r[c]) * invstd_r[c];
      for (int64_t n = 0; n < s_.n; ++n)
        for (int64_t k = 0; k < s_.spatial; ++k) {
          const int64_t i = index(n, c, k);
          A += std::fabs(dout_d[i]);
          B += std::fabs(dout_d[i] * (in_d[i] - mean_r[c]) * invstd_r[c]);
        }
      B += shift * A;
      dgamma_mag[c] = B + std::fabs(dgamma0_[c]);
      dbeta_mag[c] = A + std::fabs(dbeta0_[c]);
      for (int64_t n = 0; n < s_.n; ++n)
        for (int64_t k = 0; k < s_.spatial; ++k) {
          const int64_t i = index(n, c, k);
          const double xhat = std::fabs(in_d[i] - mean_r[c]) * invstd_r[c];
          din_mag[i] = std::fabs(gamma_at(c)) * invstd_r[c] *
                       (std::fabs(dout_d[i]) + A / M + (xhat + shift) * B / M);
        }
    }
    expect_close(din, din_r, din_mag, M, what_ + " train din");
    if (affine_) {
      expect_close(dgamma, dgamma_r, dgamma_mag, M, what_ + " train dgamma");
      expect_close(dbeta, dbeta_r, dbeta_mag, M, what_ + " train dbeta");
    }
  }

  void TestEval() const {
    const int64_t C = s_.c, total = in_.size();
    Rng rng(seed_ + 1000);  // running statistics near the data's
    std::vector<float> rmean(C), rvar(C);
    for (int64_t c = 0; c < C; ++c) {
      rmean[c] = static_cast<float>(mean_ + 0.1 * std_ * rng.normal());
      rvar[c] = static_cast<float>(std_ * std_ * (0.5 + rng.uniform()));
    }
    const auto in_d = to_double(in_), g_d = to_double(gamma_), b_d = to_double(beta_);
    const auto rm_d = to_double(rmean), rv_d = to_double(rvar), dout_d = to_double(dout_);
    std::vector<float> out(total, NAN);
    kernels::batchnorm_forward_eval(out.data(), in_.data(), rmean.data(), rvar.data(), gamma(),
                                    beta(), eps_, s_);
    std::vector<double> out_r(total), invstd(C);
    ref::batchnorm_forward_eval(out_r.data(), in_d.data(), rm_d.data(), rv_d.data(),
                                affine_ ? g_d.data() : nullptr, affine_ ? b_d.data() : nullptr,
                                eps_, s_);
    for (int64_t c = 0; c < C; ++c) invstd[c] = 1 / std::sqrt(rv_d[c] + eps_);
    expect_close(out, out_r, y_magnitude(rm_d, invstd), 4, what_ + " eval out");

    std::vector<float> din(total, 1e30f), dgamma = dgamma0_, dbeta = dbeta0_;
    kernels::batchnorm_backward_eval(din.data(), affine_ ? dgamma.data() : nullptr,
                                     affine_ ? dbeta.data() : nullptr, dout_.data(), in_.data(),
                                     rmean.data(), rvar.data(), gamma(), eps_, s_);
    std::vector<double> din_r(total), dgamma_r = to_double(dgamma0_), dbeta_r = to_double(dbeta0_);
    ref::batchnorm_backward_eval(din_r.data(), dgamma_r.data(), dbeta_r.data(), dout_d.data(),
                                 in_d.data(), rm_d.data(), rv_d.data(),
                                 affine_ ? g_d.data() : nullptr, eps_, s_);
    std::vector<double> din_mag(total), dgamma_mag(C), dbeta_mag(C);
    for (int64_t c = 0; c < C; ++c) {
      dgamma_mag[c] = std::fabs(dgamma0_[c]), dbeta_mag[c] = std::fabs(dbeta0_[c]);
      for (int64_t n = 0; n < s_.n; ++n)
        for (int64_t k = 0; k < s_.spatial; ++k) {
          const int64_t i = index(n, c, k);
          din_mag[i] = std::fabs(dout_d[i] * gamma_at(c)) * invstd[c];
          dbeta_mag[c] += std::fabs(dout_d[i]);
          dgamma_mag[c] += std::fabs(dout_d[i]) *
                           (std::fabs(in_d[i] - rm_d[c]) + std::fabs(rm_d[c])) * invstd[c];
        }
    }
    expect_close(din, din_r, din_mag, 4, what_ + " eval din");
    if (affine_) {
      expect_close(dgamma, dgamma_r, dgamma_mag, double(s_.count()), what_ + " eval dgamma");
      expect_close(dbeta, dbeta_r, dbeta_mag, double(s_.count()), what_ + " eval dbeta");
    }
  }

  void TestUpdateRunning(Rng& rng) const {
    const int64_t C = s_.c;
    const auto rm0 = random_floats(rng, C), rv0 = random_floats(rng, C, 0.5f, 2.f);
    const auto mean = random_floats(rng, C), var = random_floats(rng, C, 0.1f, 3.f);
    for (double factor : {0.1, 1.0, 1.0 / 3}) {  // momentum, first batch, cumulative average
      std::vector<float> rm = rm0, rv = rv0;
      kernels::batchnorm_update_running(rm.data(), rv.data(), mean.data(), var.data(), C,
                                        s_.count(), factor);
      std::vector<double> rm_r = to_double(rm0), rv_r = to_double(rv0), rm_mag(C), rv_mag(C);
      const auto mean_d = to_double(mean), var_d = to_double(var);
      ref::batchnorm_update_running(rm_r.data(), rv_r.data(), mean_d.data(), var_d.data(), C,
                                    s_.count(), factor);
      const double unbias = double(s_.count()) / (s_.count() - 1);
      for (int64_t c = 0; c < C; ++c) {
        rm_mag[c] = (1 - factor) * std::fabs(rm0[c]) + factor * std::fabs(mean[c]);
        rv_mag[c] = (1 - factor) * std::fabs(rv0[c]) + factor * var[c] * unbias;
      }
      expect_close(rm, rm_r, rm_mag, 4, what_ + " running_mean");
      expect_close(rv, rv_r, rv_mag, 4, what_ + " running_var");
    }
  }

  BatchNormShape s_;
  bool affine_ = true;
  double mean_ = 0, std_ = 1, eps_ = 1e-5;
  uint64_t seed_ = 1;
  mutable std::string what_;
  mutable std::vector<float> in_, gamma_, beta_, dout_, dgamma0_, dbeta0_;
};

TEST(kernels_batchnorm, Shapes) {
  for (int64_t n : {1, 2, 5, 16})
    for (int64_t c : {1, 3, 17})
      for (int64_t s : {1, 7, 49, 143}) {
        if (n * s < 2) continue;
        BatchNormTester().batch(n).channels(c).spatial(s).Test();
      }
}

TEST(kernels_batchnorm, BatchNorm1dOnNC) {  // spatial 1: (N, C)
  for (int64_t n : {2, 3, 33, 128})
    for (int64_t c : {1, 5, 64}) BatchNormTester().batch(n).channels(c).spatial(1).Test();
}

TEST(kernels_batchnorm, AffineOff) {
  for (int64_t s : {1, 9, 25})
    BatchNormTester().batch(4).channels(5).spatial(s).affine(false).Test();
}

// Mean 1e4, std 1: E[x^2] - E[x]^2 in float would lose everything; the variance must still be
// accurate to 1e-3 relative (checked directly, on top of the 4-epsilon comparison).
TEST(kernels_batchnorm, LargeMean) {
  BatchNormTester().batch(8).channels(3).spatial(50).input_mean(1e4).Test();
  BatchNormTester().batch(256).channels(4).spatial(1).input_mean(1e4).Test();
  BatchNormTester()
      .batch(4)
      .channels(2)
      .spatial(30)
      .input_mean(-3e4)
      .input_std(2)
      .affine(false)
      .Test();
}

TEST(kernels_batchnorm, SmallAndLargeScale) {
  BatchNormTester().batch(4).channels(3).spatial(20).input_std(1e-3).Test();
  BatchNormTester().batch(4).channels(3).spatial(20).input_mean(5).input_std(100).Test();
}

TEST(kernels_batchnorm, SeedsSweep) {
  for (uint64_t seed = 2; seed < 8; ++seed)
    BatchNormTester().batch(3).channels(4).spatial(11).seed(seed).Test();
}

}  // namespace
}  // namespace normnet

// GroupNorm, LayerNorm and InstanceNorm float kernels vs the double references of
// tests/ref/norm_reference.h: forward (output and statistics), backward (din, dgamma, dbeta
// accumulated onto non-zero values), the InstanceNorm running-statistics update, over swept
// shapes (groups 1, 2 and C, so InstanceNorm's G = C is covered; odd spatial sizes; batch 1;
// channels 3, 6, 17; LayerNorm rows wider than one parameter-gradient block), inputs with a large
// mean, and bit-identical results with 1 and 2 threads.
//
// Tolerances follow kernels_batchnorm_test (u = FLT_EPSILON / 2). The headers promise sums in
// double, so mean, var and invstd only carry their final rounding to float: 4 * FLT_EPSILON of
// their magnitude. The output (x - mean) * invstd * gamma + beta takes a few float operations on
// top of mean's own rounding (u * |mean|), so it is compared with 4 * FLT_EPSILON of
// (|x - mean| + |mean|) * invstd * |gamma| + |beta|. Backward sums run over the D values of a
// normalization set (din) or over the N * S (R) values of a channel (position) for dgamma and
// dbeta; those use expect_close's sqrt(terms) bound on the sum of the absolute terms, with the
// float mean's rounding carried into every xhat. With a large mean (1e4 +- 1) the variance is
// also checked directly to 1e-3 relative: a float E[x^2] - E[x]^2 would lose all of it.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>

#include "kernel_test_util.h"
#include "kernels/groupnorm.h"
#include "kernels/layernorm.h"
#include "ref/norm_reference.h"

namespace normnet {
namespace {

using kernels::GroupNormShape;
using kernels::LayerNormShape;
using test::expect_close;
using test::random_floats;
using test::to_double;

// The checks shared by both kernels, on a "normalization set" view: set k (a (sample, group) or
// a row) holds the elements listed in members[k]; param_of[i] is the gamma/beta index of
// element i.
struct NormCase {
  std::string what;
  std::vector<std::vector<int64_t>> members;
  std::vector<int64_t> param_of;
  int64_t params = 0;
  std::vector<float> in, gamma, beta, dout, dgamma0, dbeta0;
  bool affine = true;
  double eps = 1e-5;

  double g_at(int64_t i) const { return affine ? gamma[param_of[i]] : 1.0; }
  double b_at(int64_t i) const { return affine ? beta[param_of[i]] : 0.0; }

  // Statistics and output: the reference's statistics (double) vs the kernel's (float).
  void CheckForward(const std::vector<float>& out, const std::vector<float>& mean,
                    const std::vector<float>& var, const std::vector<float>& invstd,
                    const std::vector<double>& out_r, const std::vector<double>& mean_r,
                    const std::vector<double>& var_r, const std::vector<double>& invstd_r,
                    bool check_var_directly) const {
    const size_t sets = members.size();
    std::vector<double> mean_mag(sets), out_mag(in.size());
    for (size_t k = 0; k < sets; ++k) {
      mean_mag[k] = std::fabs(mean_r[k]) + std::sqrt(var_r[k]);
      for (int64_t i : members[k])
        out_mag[i] = (std::fabs(in[i] - mean_r[k]) + std::fabs(mean_r[k])) * invstd_r[k] *
                         std::fabs(g_at(i)) +
                     std::fabs(b_at(i));
    }
    expect_close(mean, mean_r, mean_mag, 4, what + " mean");
    expect_close(var, var_r, var_r, 4, what + " var");
    expect_close(invstd, invstd_r, invstd_r, 4, what + " invstd");
    expect_close(out, out_r, out_mag, 4, what + " out");
    if (!check_var_directly) return;
    for (size_t k = 0; k < sets; ++k)
      EXPECT_LT(std::fabs(var[k] - var_r[k]), 1e-3 * var_r[k]) << what << " set " << k;
  }

  // din, dgamma, dbeta: kernel (float, its own statistics) vs reference (double statistics).
  void CheckBackward(const std::vector<float>& din, const std::vector<float>& dgamma,
                     const std::vector<float>& dbeta, const std::vector<double>& din_r,
                     const std::vector<double>& dgamma_r, const std::vector<double>& dbeta_r,
                     const std::vector<double>& mean_r, const std::vector<double>& invstd_r) const {
    std::vector<double> din_mag(in.size()), dgamma_mag(params), dbeta_mag(params);
    std::vector<double> param_terms(params, 0.0);
    for (int64_t p = 0; p < params; ++p)
      dgamma_mag[p] = std::fabs(dgamma0[p]), dbeta_mag[p] = std::fabs(dbeta0[p]);
    double set_size = 1;
    for (size_t k = 0; k < members.size(); ++k) {
      const double is = invstd_r[k], shift = std::fabs(mean_r[k]) * is;  // mean's rounding
      const double D = static_cast<double>(members[k].size());
      set_size = std::max(set_size, D);
      double A = 0, B = 0;  // sum |gamma dy|, sum |gamma dy| * (|xhat| + shift)
      for (int64_t i : members[k]) {
        const double gdy = std::fabs(g_at(i) * dout[i]);
        const double xhat = std::fabs(in[i] - mean_r[k]) * is + shift;
        A += gdy;
        B += gdy * xhat;
        dgamma_mag[param_of[i]] += std::fabs(dout[i]) * xhat;
        dbeta_mag[param_of[i]] += std::fabs(dout[i]);
        param_terms[param_of[i]] += 1;
      }
      for (int64_t i : members[k]) {
        const double xhat = std::fabs(in[i] - mean_r[k]) * is + shift;
        din_mag[i] = is * (std::fabs(g_at(i) * dout[i]) + A / D + xhat * B / D);
      }
    }
    expect_close(din, din_r, din_mag, set_size, what + " din");
    if (affine) {
      const double terms = *std::max_element(param_terms.begin(), param_terms.end());
      expect_close(dgamma, dgamma_r, dgamma_mag, terms, what + " dgamma");
      expect_close(dbeta, dbeta_r, dbeta_mag, terms, what + " dbeta");
    }
  }

  void Fill(Rng& rng, double input_mean, double input_std) {
    for (auto& x : in) x = static_cast<float>(input_mean + input_std * rng.normal());
    gamma = random_floats(rng, params, 0.5f, 1.5f);
    beta = random_floats(rng, params);
    dout = random_floats(rng, in.size());
    dgamma0 = random_floats(rng, params), dbeta0 = random_floats(rng, params);
  }
};

class GroupNormTester {
 public:
  GroupNormTester& batch(int64_t n) { return s_.n = n, *this; }
  GroupNormTester& channels(int64_t c) { return s_.c = c, *this; }
  GroupNormTester& groups(int64_t g) { return s_.groups = g, *this; }
  GroupNormTester& spatial(int64_t s) { return s_.spatial = s, *this; }
  GroupNormTester& affine(bool a) { return affine_ = a, *this; }
  GroupNormTester& input_mean(double m) { return mean_ = m, *this; }
  GroupNormTester& input_std(double s) { return std_ = s, *this; }
  GroupNormTester& seed(uint64_t s) { return seed_ = s, *this; }

  void Test() const {
    ASSERT_EQ(s_.c % s_.groups, 0);
    NormCase k;
    std::ostringstream o;
    o << "groupnorm n=" << s_.n << " c=" << s_.c << " g=" << s_.groups << " s=" << s_.spatial
      << " affine=" << affine_ << " mean=" << mean_ << " std=" << std_;
    k.what = o.str();
    k.affine = affine_;
    k.params = s_.c;
    const int64_t total = s_.n * s_.c * s_.spatial, cg = s_.c / s_.groups, NG = s_.n * s_.groups;
    k.in.resize(total);
    k.param_of.resize(total);
    k.members.resize(NG);
    for (int64_t n = 0; n < s_.n; ++n)
      for (int64_t c = 0; c < s_.c; ++c)
        for (int64_t j = 0; j < s_.spatial; ++j) {
          const int64_t i = (n * s_.c + c) * s_.spatial + j;
          k.param_of[i] = c;
          k.members[n * s_.groups + c / cg].push_back(i);
        }
    Rng rng(seed_);
    k.Fill(rng, mean_, std_);
    const float* g = affine_ ? k.gamma.data() : nullptr;
    const float* b = affine_ ? k.beta.data() : nullptr;

    std::vector<float> out(total, NAN), mean(NG), var(NG), invstd(NG);
    kernels::groupnorm_forward(out.data(), mean.data(), var.data(), invstd.data(), k.in.data(), g,
                               b, k.eps, s_);
    const auto in_d = to_double(k.in), g_d = to_double(k.gamma), b_d = to_double(k.beta);
    std::vector<double> out_r(total), mean_r(NG), var_r(NG), invstd_r(NG);
    ref::groupnorm_forward(out_r.data(), mean_r.data(), var_r.data(), invstd_r.data(), in_d.data(),
                           affine_ ? g_d.data() : nullptr, affine_ ? b_d.data() : nullptr, k.eps,
                           s_);
    k.CheckForward(out, mean, var, invstd, out_r, mean_r, var_r, invstd_r,
                   std::fabs(mean_) > 100 * std_ && cg * s_.spatial > 1);

    std::vector<float> din(total, 1e30f), dgamma = k.dgamma0, dbeta = k.dbeta0;
    kernels::groupnorm_backward(din.data(), affine_ ? dgamma.data() : nullptr,
                                affine_ ? dbeta.data() : nullptr, k.dout.data(), k.in.data(),
                                mean.data(), invstd.data(), g, s_);
    const auto dout_d = to_double(k.dout);
    std::vector<double> din_r(total), dgamma_r = to_double(k.dgamma0),
                                      dbeta_r = to_double(k.dbeta0);
    ref::groupnorm_backward(din_r.data(), dgamma_r.data(), dbeta_r.data(), dout_d.data(),
                            in_d.data(), mean_r.data(), invstd_r.data(),
                            affine_ ? g_d.data() : nullptr, s_);
    k.CheckBackward(din, dgamma, dbeta, din_r, dgamma_r, dbeta_r, mean_r, invstd_r);
  }

 private:
  GroupNormShape s_;
  bool affine_ = true;
  double mean_ = 0, std_ = 1;
  uint64_t seed_ = 1;
};

class LayerNormTester {
 public:
  LayerNormTester& rows(int64_t r) { return s_.rows = r, *this; }
  LayerNormTester& cols(int64_t d) { return s_.cols = d, *this; }
  LayerNormTester& affine(bool a) { return affine_ = a, *this; }
  LayerNormTester& input_mean(double m) { return mean_ = m, *this; }
  LayerNormTester& input_std(double s) { return std_ = s, *this; }
  LayerNormTester& seed(uint64_t s) { return seed_ = s, *this; }

  void Test() const {
    NormCase k;
    std::ostringstream o;
    o << "layernorm rows=" << s_.rows << " cols=" << s_.cols << " affine=" << affine_
      << " mean=" << mean_ << " std=" << std_;
    k.what = o.str();
    k.affine = affine_;
    k.params = s_.cols;
    const int64_t total = s_.rows * s_.cols, R = s_.rows;
    k.in.resize(total);
    k.param_of.resize(total);
    k.members.resize(R);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < s_.cols; ++j) {
        k.param_of[r * s_.cols + j] = j;
        k.members[r].push_back(r * s_.cols + j);
      }
    Rng rng(seed_);
    k.Fill(rng, mean_, std_);
    const float* g = affine_ ? k.gamma.data() : nullptr;
    const float* b = affine_ ? k.beta.data() : nullptr;

    std::vector<float> out(total, NAN), mean(R), var(R), invstd(R);
    kernels::layernorm_forward(out.data(), mean.data(), var.data(), invstd.data(), k.in.data(), g,
                               b, k.eps, s_);
    const auto in_d = to_double(k.in), g_d = to_double(k.gamma), b_d = to_double(k.beta);
    std::vector<double> out_r(total), mean_r(R), var_r(R), invstd_r(R);
    ref::layernorm_forward(out_r.data(), mean_r.data(), var_r.data(), invstd_r.data(), in_d.data(),
                           affine_ ? g_d.data() : nullptr, affine_ ? b_d.data() : nullptr, k.eps,
                           s_);
    k.CheckForward(out, mean, var, invstd, out_r, mean_r, var_r, invstd_r,
                   std::fabs(mean_) > 100 * std_ && s_.cols > 1);

    std::vector<float> din(total, 1e30f), dgamma = k.dgamma0, dbeta = k.dbeta0;
    kernels::layernorm_backward(din.data(), affine_ ? dgamma.data() : nullptr,
                                affine_ ? dbeta.data() : nullptr, k.dout.data(), k.in.data(),
                                mean.data(), invstd.data(), g, s_);
    const auto dout_d = to_double(k.dout);
    std::vector<double> din_r(total), dgamma_r = to_double(k.dgamma0),
                                      dbeta_r = to_double(k.dbeta0);
    ref::layernorm_backward(din_r.data(), dgamma_r.data(), dbeta_r.data(), dout_d.data(),
                            in_d.data(), mean_r.data(), invstd_r.data(),
                            affine_ ? g_d.data() : nullptr, s_);
    k.CheckBackward(din, dgamma, dbeta, din_r, dgamma_r, dbeta_r, mean_r, invstd_r);
  }

 private:
  LayerNormShape s_;
  bool affine_ = true;
  double mean_ = 0, std_ = 1;
  uint64_t seed_ = 1;
};

TEST(kernels_norm, GroupNormShapes) {
  for (int64_t n : {1, 2, 5})
    for (int64_t c : {3, 6, 17})
      for (int64_t g : {int64_t{1}, int64_t{2}, c}) {
        if (c % g != 0) continue;
        for (int64_t s : {1, 7, 25, 49})
          GroupNormTester().batch(n).channels(c).groups(g).spatial(s).Test();
      }
}

TEST(kernels_norm, GroupNormAffineOff) {
  for (int64_t g : {1, 3, 6})
    for (int64_t s : {1, 9})
      GroupNormTester().batch(3).channels(6).groups(g).spatial(s).affine(false).Test();
}

// Mean 1e4 (and -3e4), std 1 or 2: the variance must survive (checked to 1e-3 relative).
TEST(kernels_norm, GroupNormLargeMean) {
  for (int64_t g : {1, 2, 6})
    GroupNormTester().batch(3).channels(6).groups(g).spatial(25).input_mean(1e4).Test();
  GroupNormTester().batch(2).channels(17).groups(17).spatial(7).input_mean(1e4).Test();
  GroupNormTester()
      .batch(2)
      .channels(4)
      .groups(2)
      .spatial(30)
      .input_mean(-3e4)
      .input_std(2)
      .affine(false)
      .Test();
}

TEST(kernels_norm, GroupNormScalesAndSeeds) {
  GroupNormTester().batch(2).channels(6).groups(2).spatial(11).input_std(1e-3).Test();
  GroupNormTester().batch(2).channels(6).groups(3).spatial(11).input_mean(5).input_std(100).Test();
  for (uint64_t seed = 2; seed < 6; ++seed)
    GroupNormTester().batch(3).channels(6).groups(2).spatial(5).seed(seed).Test();
}

TEST(kernels_norm, LayerNormShapes) {
  // cols 300 and 600 span several 256-wide parameter-gradient blocks, one of them ragged.
  for (int64_t r : {1, 2, 5, 33})
    for (int64_t d : {1, 3, 7, 85, 300, 600}) {
      LayerNormTester().rows(r).cols(d).Test();
      if (r == 5) LayerNormTester().rows(r).cols(d).affine(false).Test();
    }
}

TEST(kernels_norm, LayerNormLargeMean) {
  LayerNormTester().rows(4).cols(147).input_mean(1e4).Test();
  LayerNormTester().rows(3).cols(20).input_mean(-3e4).input_std(2).affine(false).Test();
  LayerNormTester().rows(3).cols(50).input_std(1e-3).Test();
}

TEST(kernels_norm, InstanceNormRunningStats) {
  for (int64_t spatial : {2, 7, 49})
    for (int64_t n : {1, 4}) {
      const int64_t C = 5;
      Rng rng(31 + spatial + n);
      const auto rm0 = random_floats(rng, C), rv0 = random_floats(rng, C, 0.5f, 2.f);
      const auto mean = random_floats(rng, n * C), var = random_floats(rng, n * C, 0.1f, 3.f);
      for (double momentum : {0.1, 0.5, 1.0, 0.0}) {
        std::vector<float> rm = rm0, rv = rv0;
        kernels::instancenorm_update_running(rm.data(), rv.data(), mean.data(), var.data(), n, C,
                                             spatial, momentum);
        std::vector<double> rm_r = to_double(rm0), rv_r = to_double(rv0), rm_mag(C), rv_mag(C);
        const auto mean_d = to_double(mean), var_d = to_double(var);
        ref::instancenorm_update_running(rm_r.data(), rv_r.data(), mean_d.data(), var_d.data(), n,
                                         C, spatial, momentum);
        const double unbias = double(spatial) / (spatial - 1);
        for (int64_t c = 0; c < C; ++c) {
          rm_mag[c] = (1 - momentum) * std::fabs(rm0[c]);
          rv_mag[c] = (1 - momentum) * std::fabs(rv0[c]);
          for (int64_t i = 0; i < n; ++i) {
            rm_mag[c] += momentum * std::fabs(mean[i * C + c]) / n;
            rv_mag[c] += momentum * var[i * C + c] * unbias / n;
          }
        }
        std::ostringstream what;
        what << "instancenorm running n=" << n << " s=" << spatial << " momentum=" << momentum;
        expect_close(rm, rm_r, rm_mag, 4, what.str() + " running_mean");
        expect_close(rv, rv_r, rv_mag, 4, what.str() + " running_var");
      }
    }
}

// ---------------------------------------------------------------- determinism

void ExpectSameBitsForAnyThreadCount(const std::function<std::vector<float>()>& fn,
                                     const char* what) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<float> one = fn();
  for (int threads : {2, 3}) {
    omp_set_num_threads(threads);
    const std::vector<float> many = fn();
    ASSERT_EQ(one.size(), many.size()) << what;
    EXPECT_EQ(0, std::memcmp(one.data(), many.data(), one.size() * sizeof(float)))
        << what << ": " << threads << " threads differ from 1";
  }
  omp_set_num_threads(saved);
}

void Append(std::vector<float>& all, const std::vector<float>& part) {
  all.insert(all.end(), part.begin(), part.end());
}

TEST(kernels_norm, GroupNormDeterministic) {
  for (int64_t groups : {1, 2, 6}) {  // 6: InstanceNorm
    const GroupNormShape s{.n = 7, .c = 6, .spatial = 37, .groups = groups};
    const int64_t total = s.n * s.c * s.spatial, NG = s.n * groups;
    Rng rng(41);
    const auto in = random_floats(rng, total, 90.f, 110.f), dout = random_floats(rng, total);
    const auto gamma = random_floats(rng, s.c), beta = random_floats(rng, s.c);
    ExpectSameBitsForAnyThreadCount(
        [&] {
          std::vector<float> out(total), mean(NG), var(NG), invstd(NG), din(total);
          std::vector<float> dgamma(s.c, 0.25f), dbeta(s.c, 0.25f);
          std::vector<float> rm(s.c, 0.f), rv(s.c, 1.f);
          kernels::groupnorm_forward(out.data(), mean.data(), var.data(), invstd.data(), in.data(),
                                     gamma.data(), beta.data(), 1e-5, s);
          kernels::groupnorm_backward(din.data(), dgamma.data(), dbeta.data(), dout.data(),
                                      in.data(), mean.data(), invstd.data(), gamma.data(), s);
          std::vector<float> all;
          for (const auto* v : {&out, &mean, &var, &invstd, &din, &dgamma, &dbeta}) Append(all, *v);
          if (groups == s.c) {
            kernels::instancenorm_update_running(rm.data(), rv.data(), mean.data(), var.data(), s.n,
                                                 s.c, s.spatial, 0.1);
            Append(all, rm), Append(all, rv);
          }
          return all;
        },
        groups == 6 ? "groupnorm G=C (instancenorm)" : "groupnorm");
  }
}

TEST(kernels_norm, LayerNormDeterministic) {
  const LayerNormShape s{.rows = 9, .cols = 700};
  const int64_t total = s.rows * s.cols;
  Rng rng(42);
  const auto in = random_floats(rng, total, -5.f, 20.f), dout = random_floats(rng, total);
  const auto gamma = random_floats(rng, s.cols), beta = random_floats(rng, s.cols);
  ExpectSameBitsForAnyThreadCount(
      [&] {
        std::vector<float> out(total), mean(s.rows), var(s.rows), invstd(s.rows), din(total);
        std::vector<float> dgamma(s.cols, 0.25f), dbeta(s.cols, 0.25f);
        kernels::layernorm_forward(out.data(), mean.data(), var.data(), invstd.data(), in.data(),
                                   gamma.data(), beta.data(), 1e-5, s);
        kernels::layernorm_backward(din.data(), dgamma.data(), dbeta.data(), dout.data(), in.data(),
                                    mean.data(), invstd.data(), gamma.data(), s);
        std::vector<float> all;
        for (const auto* v : {&out, &mean, &var, &invstd, &din, &dgamma, &dbeta}) Append(all, *v);
        return all;
      },
      "layernorm");
}

}  // namespace
}  // namespace normnet

// BatchRenorm1d/2d (docs/normalization.md, src/kernels/batchrenorm.h):
// - the module over several training steps against a direct implementation of the paper's
//   equations (Ioffe 2017, Algorithm 1) written here in double, with r and d clipping active:
//   outputs, r, d, running statistics (PyTorch's update: unbiased variance), and the
//   stop-gradient backward (input, weight and bias gradients);
// - the warmup schedule (plain BatchNorm, then limits rising linearly);
// - r_max = 1, d_max = 0 is BatchNorm bit for bit (outputs, gradients, running statistics,
//   evaluation), so the two share every rounding;
// - model keys, defaults, state_dict names and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "normnet/error.h"
#include "normnet/layers.h"
#include "normnet/model.h"
#include "normnet/random.h"

namespace normnet {
namespace {

// The paper's equations for one training step, per channel, in double, from scratch:
//   mu_B, sigma_B = sqrt(var_B + eps) (var_B biased), sigma = sqrt(rv + eps),
//   r = clip(sigma_B / sigma, 1/rmax, rmax), d = clip((mu_B - rm) / sigma, -dmax, dmax),
//   y = gamma * ((x - mu_B) / sigma_B * r + d) + beta,
//   rm += momentum * (mu_B - rm), rv += momentum * (var_B * M/(M-1) - rv);
// and the backward with r, d constants:
//   dxhat = dy * gamma * r, dvar = sum dxhat (x - mu) (-1/2) sigma_B^-3,
//   dmu = -sum dxhat / sigma_B, dx = dxhat / sigma_B + dvar * 2 (x - mu) / M + dmu / M,
//   dgamma = sum dy * (xhat r + d), dbeta = sum dy      (Algorithm 1's chain rule, spelled out).
struct RefStep {
  std::vector<double> y, r, d, dx, dgamma, dbeta;
};

RefStep reference_step(const std::vector<double>& x, const std::vector<double>& dy, int64_t N,
                       int64_t C, int64_t S, const std::vector<double>& gamma,
                       const std::vector<double>& beta, std::vector<double>& rm,
                       std::vector<double>& rv, double eps, double momentum, double rmax,
                       double dmax) {
  RefStep o;
  o.y.assign(x.size(), 0);
  o.dx.assign(x.size(), 0);
  const double M = static_cast<double>(N * S);
  auto at = [&](int64_t n, int64_t c, int64_t s) { return (n * C + c) * S + s; };
  for (int64_t c = 0; c < C; ++c) {
    double mu = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) mu += x[at(n, c, s)];
    mu /= M;
    double var = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) var += (x[at(n, c, s)] - mu) * (x[at(n, c, s)] - mu);
    var /= M;
    const double sb = std::sqrt(var + eps), sg = std::sqrt(rv[c] + eps);
    const double r = std::min(std::max(sb / sg, 1.0 / rmax), rmax);
    const double d = std::min(std::max((mu - rm[c]) / sg, -dmax), dmax);
    o.r.push_back(r);
    o.d.push_back(d);
    double sum_dxhat_xmu = 0, sum_dxhat = 0, dg = 0, db = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = at(n, c, s);
        const double xhat = (x[i] - mu) / sb;
        o.y[i] = gamma[c] * (xhat * r + d) + beta[c];
        const double dxhat = dy[i] * gamma[c] * r;
        sum_dxhat_xmu += dxhat * (x[i] - mu);
        sum_dxhat += dxhat;
        dg += dy[i] * (xhat * r + d);
        db += dy[i];
      }
    const double dvar = sum_dxhat_xmu * -0.5 * std::pow(sb, -3.0);
    const double dmu = -sum_dxhat / sb;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = at(n, c, s);
        o.dx[i] = dy[i] * gamma[c] * r / sb + dvar * 2.0 * (x[i] - mu) / M + dmu / M;
      }
    o.dgamma.push_back(dg);
    o.dbeta.push_back(db);
    rm[c] += momentum * (mu - rm[c]);
    rv[c] += momentum * (var * M / (M - 1) - rv[c]);
  }
  return o;
}

void expect_close(const float* got, const std::vector<double>& want, double rel,
                  const std::string& what) {
  double scale = 0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  size_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= rel * (scale + 1e-3)) && bad++ < 3)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
  EXPECT_EQ(bad, 0u) << what;
}

// Step k's batch: channel c centred at shift[k] + c with spread scale[k] * (1 + c/2): the
// running statistics (momentum 0.05) lag behind, so r and d clip in some steps and not others.
Tensor batch_for_step(const Shape& shape, int k, Rng& rng) {
  const double shift[] = {0.0, 0.5, 30.0, -2.0, 1.0, 8.0, 0.2};
  const double scale[] = {1.0, 0.9, 10.0, 0.05, 1.2, 2.0, 1.0};
  Tensor x(shape);
  const int64_t N = shape[0], C = shape[1], S = shape.numel() / (N * C);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s)
        x.data()[(n * C + c) * S + s] = static_cast<float>(
            shift[k] + c + scale[k] * (1.0 + 0.5 * c) * (2.0 * rng.uniform() - 1.0));
  return x;
}

std::vector<double> as_double(const Tensor& t) { return {t.data(), t.data() + t.numel()}; }

TEST(BatchRenorm, MatchesThePaperOverSeveralStepsWithClipping) {
  for (int dims : {1, 2})
    for (const Shape& shape : dims == 2 ? std::vector<Shape>{Shape{4, 3, 3, 2}, Shape{2, 3, 1, 5}}
                                        : std::vector<Shape>{Shape{7, 3}, Shape{3, 3, 4}}) {
      const std::string what = "BatchRenorm" + std::to_string(dims) + "d on " + shape.str();
      BatchRenormOptions o;
      o.dims = dims;
      o.num_features = 3;
      o.momentum = 0.05;
      o.r_max = 2.0;
      o.d_max = 1.5;
      BatchRenorm brn(o);
      const std::vector<double> gamma{0.5, -1.25, 2.0}, beta{0.25, 1.0, -3.0};
      for (int c = 0; c < 3; ++c)
        brn.weight.value.data()[c] = static_cast<float>(gamma[c]),
        brn.bias.value.data()[c] = static_cast<float>(beta[c]);
      std::vector<double> rm(3, 0.0), rv(3, 1.0);
      Rng rng(5);
      int r_clipped = 0, r_free = 0, d_clipped = 0, d_free = 0;
      for (int k = 0; k < 7; ++k) {
        const std::string step = what + " step " + std::to_string(k);
        const Tensor x = batch_for_step(shape, k, rng);
        Tensor dy(shape);
        for (int64_t i = 0; i < dy.numel(); ++i) dy.data()[i] = rng.uniform(-1.f, 1.f);
        brn.zero_grad();
        const Tensor y = brn.forward(x);
        const Tensor dx = brn.backward(dy);
        const RefStep want = reference_step(as_double(x), as_double(dy), shape[0], 3,
                                            shape.numel() / (shape[0] * 3), gamma, beta, rm, rv,
                                            1e-5, 0.05, 2.0, 1.5);
        for (int c = 0; c < 3; ++c) {
          (std::fabs(want.r[c]) == 2.0 || std::fabs(want.r[c]) == 0.5 ? r_clipped : r_free)++;
          (std::fabs(want.d[c]) == 1.5 ? d_clipped : d_free)++;
        }
        expect_close(y.data(), want.y, 2e-6, step + ": y");
        expect_close(brn.last_r.data(), want.r, 1e-6, step + ": r");
        expect_close(brn.last_d.data(), want.d, 1e-6, step + ": d");
        expect_close(dx.data(), want.dx, 1e-5, step + ": dx");
        expect_close(brn.weight.grad.data(), want.dgamma, 1e-5, step + ": dweight");
        expect_close(brn.bias.grad.data(), want.dbeta, 1e-5, step + ": dbias");
        expect_close(brn.running_mean.data(), rm, 1e-6, step + ": running_mean");
        expect_close(brn.running_var.data(), rv, 1e-6, step + ": running_var");
        EXPECT_EQ(brn.num_batches_tracked, k + 1) << step;
      }
      // The data was built so that both regimes occur.
      EXPECT_GT(r_clipped, 0) << what;
      EXPECT_GT(r_free, 0) << what;
      EXPECT_GT(d_clipped, 0) << what;
      EXPECT_GT(d_free, 0) << what;
      // Evaluation: BatchNorm's formula with the running statistics.
      brn.eval();
      const Tensor x = batch_for_step(shape, 0, rng);
      const Tensor y = brn.forward(x);
      std::vector<double> want(x.numel());
      const int64_t S = shape.numel() / (shape[0] * 3);
      for (int64_t i = 0; i < x.numel(); ++i) {
        const int64_t c = (i / S) % 3;
        want[i] = (x.data()[i] - rm[c]) / std::sqrt(rv[c] + 1e-5) * gamma[c] + beta[c];
      }
      expect_close(y.data(), want, 2e-6, what + ": eval y");
    }
}

TEST(BatchRenorm, WarmupSchedule) {
  BatchRenormOptions o;
  o.num_features = 2;
  o.r_max = 3.0;
  o.d_max = 5.0;
  o.warmup_start = 2;
  o.warmup_end = 6;
  BatchRenorm brn(o);
  const double want_r[] = {1, 1, 1, 1.5, 2, 2.5, 3, 3, 3};
  const double want_d[] = {0, 0, 0, 1.25, 2.5, 3.75, 5, 5, 5};
  Rng rng(1);
  for (int t = 0; t < 9; ++t) {
    EXPECT_EQ(brn.num_batches_tracked, t);
    EXPECT_DOUBLE_EQ(brn.current_r_max(), want_r[t]) << "step " << t;
    EXPECT_DOUBLE_EQ(brn.current_d_max(), want_d[t]) << "step " << t;
    // Batches far from the running statistics: r and d sit at the limits in force.
    Tensor x(Shape{4, 2, 2, 2});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = 100.0f + 50.0f * rng.uniform(-1.f, 1.f);
    brn.running_mean.fill(0.0f);
    brn.running_var.fill(1.0f);
    brn.forward(x);
    for (int c = 0; c < 2; ++c) {
      EXPECT_FLOAT_EQ(brn.last_r.data()[c], static_cast<float>(want_r[t])) << "step " << t;
      EXPECT_FLOAT_EQ(brn.last_d.data()[c], static_cast<float>(want_d[t])) << "step " << t;
    }
  }
  o.warmup_start = o.warmup_end = 0;  // default: the full limits from the first step
  BatchRenorm full(o);
  EXPECT_EQ(full.current_r_max(), 3.0);
  EXPECT_EQ(full.current_d_max(), 5.0);
}

template <typename A, typename B>
void expect_same_bytes(const A& a, const B& b, const std::string& what) {
  ASSERT_EQ(a.numel(), b.numel()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()), 0) << what;
}

TEST(BatchRenorm, RmaxOneDmaxZeroIsBatchNorm) {
  for (int dims : {1, 2})
    for (bool affine : {true, false}) {
      const Shape shape = dims == 2 ? Shape{5, 4, 3, 3} : Shape{9, 4};
      const std::string what = "dims " + std::to_string(dims) + (affine ? " affine" : " no affine");
      BatchRenormOptions ro;
      ro.dims = dims;
      ro.num_features = 4;
      ro.momentum = 0.1;
      ro.r_max = 1.0;
      ro.d_max = 0.0;
      ro.affine = affine;
      BatchNormOptions bo;
      bo.dims = dims;
      bo.num_features = 4;
      bo.momentum = 0.1;
      bo.affine = affine;
      BatchRenorm brn(ro);
      BatchNorm bn(bo);
      Rng rng(9);
      if (affine)
        for (int c = 0; c < 4; ++c) {
          const float g = rng.uniform(0.5f, 2.f), b = rng.uniform(-1.f, 1.f);
          brn.weight.value.data()[c] = bn.weight.value.data()[c] = g;
          brn.bias.value.data()[c] = bn.bias.value.data()[c] = b;
        }
      for (int k = 0; k < 4; ++k) {
        const Tensor x = batch_for_step(shape, k, rng);
        Tensor dy(shape);
        for (int64_t i = 0; i < dy.numel(); ++i) dy.data()[i] = rng.uniform(-1.f, 1.f);
        const std::string step = what + " step " + std::to_string(k);
        expect_same_bytes(brn.forward(x), bn.forward(x), step + ": y");
        expect_same_bytes(brn.backward(dy), bn.backward(dy), step + ": dx");
        if (affine) {
          expect_same_bytes(brn.weight.grad, bn.weight.grad, step + ": dweight");
          expect_same_bytes(brn.bias.grad, bn.bias.grad, step + ": dbias");
        }
        expect_same_bytes(brn.running_mean, bn.running_mean, step + ": running_mean");
        expect_same_bytes(brn.running_var, bn.running_var, step + ": running_var");
        EXPECT_EQ(brn.num_batches_tracked, bn.num_batches_tracked) << step;
      }
      brn.eval();
      bn.eval();
      const Tensor x = batch_for_step(shape, 5, rng);
      Tensor dy(shape);
      for (int64_t i = 0; i < dy.numel(); ++i) dy.data()[i] = rng.uniform(-1.f, 1.f);
      expect_same_bytes(brn.forward(x), bn.forward(x), what + ": eval y");
      expect_same_bytes(brn.backward(dy), bn.backward(dy), what + ": eval dx");
    }
}

std::vector<std::string> state_names(Model& m) {
  std::vector<std::string> out;
  for (auto& [n, p] : m.net->named_parameters()) out.push_back("P " + n);
  for (auto& [n, b] : m.net->named_buffers()) out.push_back("B " + n);
  return out;
}

TEST(BatchRenorm, ModelKeysDefaultsAndStateDict) {
  Model m = build_model(R"({"input": [3, 4, 4], "classes": 48, "layers": [
      {"type": "BatchRenorm2d", "name": "brn", "num_features": 3},
      {"type": "Flatten"}]})", "m.json");
  auto* brn = dynamic_cast<BatchRenorm*>(&m.net->at(0));
  ASSERT_NE(brn, nullptr);
  EXPECT_EQ(brn->opt.eps, 1e-5);
  ASSERT_TRUE(brn->opt.momentum.has_value());
  EXPECT_EQ(*brn->opt.momentum, 0.01);
  EXPECT_EQ(brn->opt.r_max, 3.0);
  EXPECT_EQ(brn->opt.d_max, 5.0);
  EXPECT_TRUE(brn->opt.affine);
  EXPECT_EQ(brn->opt.warmup_start, 0);
  EXPECT_EQ(brn->opt.warmup_end, 0);
  EXPECT_EQ(brn->describe(), "BatchRenorm2d(3)");
  EXPECT_EQ(state_names(m), (std::vector<std::string>{"P brn.weight", "P brn.bias", "B brn.running_mean",
                                                      "B brn.running_var", "B brn.num_batches_tracked"}));

  Model m1 = build_model(R"({"input": [3], "classes": 3, "layers": [
      {"type": "BatchRenorm1d", "num_features": 3, "momentum": null, "r_max": 2, "d_max": 0.5,
       "affine": false, "eps": 0.001, "warmup": [10, 100]}]})", "m1.json");
  auto* b1 = dynamic_cast<BatchRenorm*>(&m1.net->at(0));
  ASSERT_NE(b1, nullptr);
  EXPECT_FALSE(b1->opt.momentum.has_value());
  EXPECT_EQ(b1->opt.warmup_start, 10);
  EXPECT_EQ(b1->opt.warmup_end, 100);
  EXPECT_EQ(b1->describe(),
            "BatchRenorm1d(3, eps=0.001, momentum=None, r_max=2, d_max=0.5, warmup=[10, 100], affine=False)");
  EXPECT_EQ(state_names(m1), (std::vector<std::string>{"B 0.running_mean", "B 0.running_var",
                                                       "B 0.num_batches_tracked"}));

  auto error_of = [](const std::string& layer) {
    try {
      build_model(R"({"input": [3, 4, 4], "classes": 48, "layers": [)" + layer + R"(, {"type": "Flatten"}]})",
                  "bad.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of(R"({"type": "BatchRenorm2d", "name": "b", "num_features": 3, "r_max": 0.5})"),
            "bad.json: layers[0] (BatchRenorm2d 'b'): BatchRenorm: r_max must be at least 1, got 0.5");
  EXPECT_EQ(error_of(R"({"type": "BatchRenorm2d", "name": "b", "num_features": 3, "d_max": -1})"),
            "bad.json: layers[0] (BatchRenorm2d 'b'): BatchRenorm: d_max must be at least 0, got -1");
  EXPECT_EQ(error_of(R"({"type": "BatchRenorm2d", "name": "b", "num_features": 3, "warmup": [5, 2]})"),
            "bad.json: layers[0] (BatchRenorm2d 'b'): BatchRenorm: warmup must be [start, end] with 0 <= "
            "start <= end, got [5, 2]");
  EXPECT_EQ(error_of(R"({"type": "BatchRenorm2d", "name": "b", "num_features": 3, "warmup": 5})"),
            "bad.json: layers[0] (BatchRenorm2d 'b'): 'warmup' must be [start_step, end_step], got 5");
  EXPECT_EQ(error_of(R"({"type": "BatchRenorm2d", "name": "b", "num_features": 4})"),
            "bad.json: layers[0] (BatchRenorm2d 'b'): expected 4 channels, got input (1, 3, 4, 4)");
  EXPECT_EQ(error_of(R"({"type": "BatchRenorm2d", "name": "b", "num_features": 3, "rmax": 2})"),
            "bad.json: layers[0] (BatchRenorm2d 'b'): unknown key 'rmax'");
}

TEST(BatchRenorm, OneValuePerChannelAndEmptyBatch) {
  BatchRenormOptions o;
  o.dims = 1;
  o.num_features = 2;
  BatchRenorm brn(o);
  brn.path = "brn";
  try {
    brn.forward(Tensor(Shape{1, 2}));
    ADD_FAILURE() << "no error for one value per channel";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "BatchRenorm1d 'brn': expected more than 1 value per channel when training, "
                           "got input (1, 2)");
  }
  const Tensor y = brn.forward(Tensor(Shape{0, 2}));
  EXPECT_EQ(y.shape(), (Shape{0, 2}));
  EXPECT_EQ(brn.num_batches_tracked, 0);
  EXPECT_EQ(brn.backward(Tensor(Shape{0, 2})).shape(), (Shape{0, 2}));
  EXPECT_EQ(brn.weight.grad.data()[0], 0.0f);
  brn.eval();  // one sample is fine with the running statistics
  EXPECT_EQ(brn.forward(Tensor::full(Shape{1, 2}, 2.0f)).data()[0], static_cast<float>(2.0 / std::sqrt(1.0 + 1e-5)));
}

}  // namespace
}  // namespace normnet

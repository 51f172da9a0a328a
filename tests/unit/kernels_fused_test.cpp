// Fused BatchNorm + ReLU and BatchNorm + add + ReLU kernels (kernels/batchnorm_relu.h) vs the
// unfused sequence of the tested kernels they replace:
//   forward:  batchnorm_forward_{train,eval} -> [add_forward] -> relu_forward
//   backward: relu_backward -> [dresidual = its output] -> batchnorm_backward_{train,eval}
// over swept shapes (spatial sizes around the 64-element mask word, S = 1 for BatchNorm1d on
// (N, C), affine on and off), in training and evaluation.
//
// Tolerance: none. The fused kernels are written with the same float operations, operands and
// roundings as the unfused ones (the header says so), so every output, statistic and gradient
// must be bit-identical (compared with memcmp, which also tells -0 from +0); the mask must hold
// exactly !(y <= 0) with zero padding bits. Thread counts 1, 2 and 3 must give the same bytes.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <sstream>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "kernels/batchnorm_relu.h"
#include "kernels/elementwise.h"

namespace normnet {
namespace {

using kernels::BatchNormShape;
using test::random_floats;
using Vec = std::vector<float>;
using Mask = std::vector<uint64_t>;

template <typename V>
void expect_bitwise(const V& got, const V& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  if (got.empty()) return;
  if (std::memcmp(got.data(), want.data(), got.size() * sizeof(got[0])) == 0) return;
  size_t first = 0;
  while (std::memcmp(&got[first], &want[first], sizeof(got[0])) == 0) ++first;
  ADD_FAILURE() << what << ": not bit-identical; first difference at " << first << ": got "
                << got[first] << ", want " << want[first];
}

// The mask must be exactly !(y <= 0) per element, with zero bits past the last element.
void expect_mask(const Mask& mask, const Vec& y, const std::string& what) {
  ASSERT_EQ(mask.size(), static_cast<size_t>(kernels::relu_mask_words(y.size()))) << what;
  size_t bad = 0;
  for (size_t i = 0; i < mask.size() * 64; ++i) {
    const bool want = i < y.size() && !(y[i] <= 0.f);  // relu_backward passes where !(y <= 0)
    if (kernels::relu_mask_bit(mask.data(), i) != want) ++bad;
  }
  EXPECT_EQ(bad, 0u) << what << ": mask bits differ from !(y <= 0)";
}

struct Case {
  BatchNormShape s;
  bool affine = true, residual = false;
  uint64_t seed = 1;
  std::string name() const {
    std::ostringstream o;
    o << (residual ? "bn_add_relu" : "bn_relu") << " n=" << s.n << " c=" << s.c << " s=" << s.spatial
      << " affine=" << affine;
    return o.str();
  }
};

struct Data {
  Vec in, res, gamma, beta, rm, rv, dout, dgamma0, dbeta0;
  explicit Data(const Case& k) {
    Rng rng(k.seed);
    const int64_t total = k.s.n * k.s.c * k.s.spatial;
    in = random_floats(rng, total, -2.f, 3.f);
    res = random_floats(rng, total, -1.f, 1.f);
    gamma = random_floats(rng, k.s.c, -1.5f, 1.5f);  // negative gammas flip which side passes
    beta = random_floats(rng, k.s.c, -0.5f, 0.5f);
    rm = random_floats(rng, k.s.c, -0.5f, 0.5f);
    rv = random_floats(rng, k.s.c, 0.2f, 2.f);
    dout = random_floats(rng, total);
    dgamma0 = random_floats(rng, k.s.c);
    dbeta0 = random_floats(rng, k.s.c);
  }
};

struct Result {
  Vec out, mean, var, invstd, dx, dres, dgamma, dbeta;
  Mask mask;
};

// The unfused sequence. train: batch statistics; else running statistics.
Result unfused(const Case& k, const Data& d, bool train) {
  const int64_t total = d.in.size(), C = k.s.c;
  const float* g = k.affine ? d.gamma.data() : nullptr;
  const float* b = k.affine ? d.beta.data() : nullptr;
  Result r;
  Vec z(total), t(total);
  r.out.assign(total, 0.f), r.mean.assign(C, 0.f), r.var.assign(C, 0.f), r.invstd.assign(C, 0.f);
  if (train)
    kernels::batchnorm_forward_train(z.data(), r.mean.data(), r.var.data(), r.invstd.data(), d.in.data(),
                                     g, b, 1e-5, k.s);
  else
    kernels::batchnorm_forward_eval(z.data(), d.in.data(), d.rm.data(), d.rv.data(), g, b, 1e-5, k.s);
  if (k.residual) kernels::add_forward(t.data(), z.data(), d.res.data(), total);
  else t = z;
  kernels::relu_forward(r.out.data(), t.data(), total);
  Vec grad(total);
  kernels::relu_backward(grad.data(), d.dout.data(), r.out.data(), total);
  if (k.residual) r.dres = grad;
  r.dx.assign(total, 0.f);
  r.dgamma = d.dgamma0, r.dbeta = d.dbeta0;
  float* dg = k.affine ? r.dgamma.data() : nullptr;
  float* db = k.affine ? r.dbeta.data() : nullptr;
  if (train)
    kernels::batchnorm_backward_train(r.dx.data(), dg, db, grad.data(), d.in.data(), r.mean.data(),
                                      r.invstd.data(), g, k.s);
  else
    kernels::batchnorm_backward_eval(r.dx.data(), dg, db, grad.data(), d.in.data(), d.rm.data(),
                                     d.rv.data(), g, 1e-5, k.s);
  return r;
}

Result fused(const Case& k, const Data& d, bool train) {
  const int64_t total = d.in.size(), C = k.s.c;
  const float* g = k.affine ? d.gamma.data() : nullptr;
  const float* b = k.affine ? d.beta.data() : nullptr;
  Result r;
  r.out.assign(total, -7.f), r.mean.assign(C, 0.f), r.var.assign(C, 0.f), r.invstd.assign(C, 0.f);
  r.mask.assign(kernels::relu_mask_words(total), ~uint64_t{0});  // garbage: must be overwritten
  uint64_t* m = r.mask.data();
  if (train && k.residual)
    kernels::batchnorm_add_relu_forward_train(r.out.data(), m, r.mean.data(), r.var.data(),
                                              r.invstd.data(), d.in.data(), d.res.data(), g, b, 1e-5, k.s);
  else if (train)
    kernels::batchnorm_relu_forward_train(r.out.data(), m, r.mean.data(), r.var.data(), r.invstd.data(),
                                          d.in.data(), g, b, 1e-5, k.s);
  else if (k.residual)
    kernels::batchnorm_add_relu_forward_eval(r.out.data(), m, d.in.data(), d.res.data(), d.rm.data(),
                                             d.rv.data(), g, b, 1e-5, k.s);
  else
    kernels::batchnorm_relu_forward_eval(r.out.data(), m, d.in.data(), d.rm.data(), d.rv.data(), g, b,
                                         1e-5, k.s);
  r.dx.assign(total, -7.f);
  if (k.residual) r.dres.assign(total, -7.f);
  r.dgamma = d.dgamma0, r.dbeta = d.dbeta0;
  float* dg = k.affine ? r.dgamma.data() : nullptr;
  float* db = k.affine ? r.dbeta.data() : nullptr;
  if (train && k.residual)
    kernels::batchnorm_add_relu_backward_train(r.dx.data(), r.dres.data(), dg, db, d.dout.data(), m,
                                               d.in.data(), r.mean.data(), r.invstd.data(), g, k.s);
  else if (train)
    kernels::batchnorm_relu_backward_train(r.dx.data(), dg, db, d.dout.data(), m, d.in.data(),
                                           r.mean.data(), r.invstd.data(), g, k.s);
  else if (k.residual)
    kernels::batchnorm_add_relu_backward_eval(r.dx.data(), r.dres.data(), dg, db, d.dout.data(), m,
                                              d.in.data(), d.rm.data(), d.rv.data(), g, 1e-5, k.s);
  else
    kernels::batchnorm_relu_backward_eval(r.dx.data(), dg, db, d.dout.data(), m, d.in.data(), d.rm.data(),
                                          d.rv.data(), g, 1e-5, k.s);
  return r;
}

void expect_same(const Result& got, const Result& want, const std::string& what, bool stats) {
  expect_bitwise(got.out, want.out, what + " out");
  if (stats) {
    expect_bitwise(got.mean, want.mean, what + " mean");
    expect_bitwise(got.var, want.var, what + " var");
    expect_bitwise(got.invstd, want.invstd, what + " invstd");
  }
  expect_bitwise(got.dx, want.dx, what + " dx");
  expect_bitwise(got.dres, want.dres, what + " dresidual");
  expect_bitwise(got.dgamma, want.dgamma, what + " dgamma");
  expect_bitwise(got.dbeta, want.dbeta, what + " dbeta");
}

std::vector<Case> sweep() {
  std::vector<Case> cases;
  uint64_t seed = 100;
  for (int64_t n : {1, 2, 5})
    for (int64_t c : {1, 3, 8})
      for (int64_t sp : {1, 7, 63, 64, 65, 200})
        for (bool affine : {true, false})
          for (bool residual : {false, true}) {
            Case k;
            k.s = {n, c, sp};
            k.affine = affine, k.residual = residual, k.seed = seed++;
            cases.push_back(k);
          }
  return cases;
}

TEST(FusedBatchNormRelu, TrainMatchesUnfusedBitwise) {
  for (const Case& k : sweep()) {
    if (k.s.count() < 2) continue;  // training needs more than one value per channel
    const Data d(k);
    const Result want = unfused(k, d, true), got = fused(k, d, true);
    expect_same(got, want, k.name() + " train", true);
    expect_mask(got.mask, got.out, k.name() + " train");
  }
}

TEST(FusedBatchNormRelu, EvalMatchesUnfusedBitwise) {
  for (const Case& k : sweep()) {
    const Data d(k);
    const Result want = unfused(k, d, false), got = fused(k, d, false);
    expect_same(got, want, k.name() + " eval", false);
    expect_mask(got.mask, got.out, k.name() + " eval");
  }
}

// Eval forward without a mask (inference) gives the same output.
TEST(FusedBatchNormRelu, EvalWithoutMask) {
  Case k;
  k.s = {3, 4, 37};
  const Data d(k);
  Vec want(d.in.size()), got(d.in.size());
  Mask mask(kernels::relu_mask_words(d.in.size()));
  kernels::batchnorm_relu_forward_eval(want.data(), mask.data(), d.in.data(), d.rm.data(), d.rv.data(),
                                       d.gamma.data(), d.beta.data(), 1e-5, k.s);
  kernels::batchnorm_relu_forward_eval(got.data(), static_cast<uint64_t*>(nullptr), d.in.data(),
                                       d.rm.data(), d.rv.data(), d.gamma.data(), d.beta.data(), 1e-5, k.s);
  expect_bitwise(got, want, "eval forward, null mask");
}

// A larger input exercises the parallel loops; 1, 2 and 3 threads must
// give the same bytes, and the same as the unfused kernels.
TEST(FusedBatchNormRelu, ThreadCountDeterminism) {
  const int saved = omp_get_max_threads();
  for (bool residual : {false, true})
    for (bool train : {true, false}) {
      Case k;
      k.s = {4, 6, 999};
      k.residual = residual;
      const Data d(k);
      omp_set_num_threads(1);
      const Result one = fused(k, d, train);
      for (int threads : {2, 3}) {
        omp_set_num_threads(threads);
        const Result many = fused(k, d, train);
        const std::string what = k.name() + (train ? " train " : " eval ") + std::to_string(threads) + " threads";
        expect_same(many, one, what, train);
        expect_bitwise(many.mask, one.mask, what + " mask");
        expect_same(many, unfused(k, d, train), what + " vs unfused", train);
      }
    }
  omp_set_num_threads(saved);
}

// An empty batch touches nothing and reads nothing.
TEST(FusedBatchNormRelu, EmptyBatch) {
  BatchNormShape s{0, 3, 5};
  float gamma[3] = {1, 1, 1}, beta[3] = {0, 0, 0}, rm[3] = {0, 0, 0}, rv[3] = {1, 1, 1};
  float dg[3] = {0, 0, 0}, db[3] = {0, 0, 0};
  kernels::batchnorm_relu_forward_eval<float>(nullptr, nullptr, nullptr, rm, rv, gamma, beta, 1e-5, s);
  kernels::batchnorm_add_relu_backward_eval<float>(nullptr, nullptr, dg, db, nullptr, nullptr, nullptr, rm,
                                                   rv, gamma, 1e-5, s);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(dg[c], 0.f);
    EXPECT_EQ(db[c], 0.f);
  }
}

}  // namespace
}  // namespace normnet

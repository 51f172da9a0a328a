// Fused BatchNorm + ReLU + MaxPool2d(2) (kernels/batchnorm_relu.h) vs the unfused sequence of
// the tested kernels it replaces:
//   forward:  batchnorm_forward_{train,eval} -> relu_forward -> maxpool2d_forward (2x2, stride 2)
//   backward: maxpool2d_backward -> relu_backward -> batchnorm_backward_{train,eval}
// Training runs batchnorm_relu_maxpool_backward_train; evaluation runs relu_maxpool_scatter and
// batchnorm_backward_eval (what BatchNorm does in eval mode). Planes even and odd (an odd last
// row / column belongs to no window), from 2x2 up, at every 16-lane phase; affine on and off.
//
// Tolerance: none. The fused kernels compute the same float operations on the same operands,
// so outputs, statistics and gradients must be bit-identical (memcmp, which also tells -0 from
// +0), and each window's winner must be maxpool's argmax where the pooled value is not <= 0
// (positive or NaN) and -1 elsewhere. Thread counts 1, 2 and 3 must give the same bytes.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <sstream>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "kernels/batchnorm_relu.h"
#include "kernels/pool2d.h"

namespace normnet {
namespace {

using kernels::BatchNormShape;
using test::random_floats;
using Vec = std::vector<float>;
using Win = std::vector<int32_t>;

template <typename V>
void expect_bitwise(const V& got, const V& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  if (got.empty() || std::memcmp(got.data(), want.data(), got.size() * sizeof(got[0])) == 0) return;
  size_t first = 0;
  while (std::memcmp(&got[first], &want[first], sizeof(got[0])) == 0) ++first;
  ADD_FAILURE() << what << ": not bit-identical; first difference at " << first << ": got "
                << got[first] << ", want " << want[first];
}

struct Case {
  int64_t n = 1, c = 1, h = 2, w = 2;
  bool affine = true;
  uint64_t seed = 1;
  BatchNormShape bn() const { return {n, c, h * w}; }
  int64_t total() const { return n * c * h * w; }
  int64_t pooled() const { return n * c * (h / 2) * (w / 2); }
  std::string name() const {
    std::ostringstream o;
    o << "bn_relu_maxpool n=" << n << " c=" << c << " " << h << "x" << w << " affine=" << affine;
    return o.str();
  }
};

struct Data {
  Vec in, gamma, beta, rm, rv, dout, dgamma0, dbeta0;
  explicit Data(const Case& k) {
    Rng rng(k.seed);
    in = random_floats(rng, k.total(), -2.f, 3.f);
    gamma = random_floats(rng, k.c, -1.5f, 1.5f);  // negative gammas flip which side passes
    beta = random_floats(rng, k.c, -0.5f, 0.5f);
    rm = random_floats(rng, k.c, -0.5f, 0.5f);
    rv = random_floats(rng, k.c, 0.2f, 2.f);
    dout = random_floats(rng, k.pooled());
    dgamma0 = random_floats(rng, k.c);
    dbeta0 = random_floats(rng, k.c);
    if (!dout.empty()) dout[0] = -0.0f;  // a -0 gradient becomes +0 in the pooling's backward
  }
};

struct Result {
  Vec out, mean, var, invstd, dx, dgamma, dbeta;
  Win win;
};

Result unfused(const Case& k, const Data& d, bool train) {
  const BatchNormShape s = k.bn();
  const float* g = k.affine ? d.gamma.data() : nullptr;
  const float* b = k.affine ? d.beta.data() : nullptr;
  Result r;
  Vec z(k.total()), a(k.total());
  r.mean.assign(k.c, 0.f), r.var.assign(k.c, 0.f), r.invstd.assign(k.c, 0.f);
  if (train)
    kernels::batchnorm_forward_train(z.data(), r.mean.data(), r.var.data(), r.invstd.data(), d.in.data(),
                                     g, b, 1e-5, s);
  else
    kernels::batchnorm_forward_eval(z.data(), d.in.data(), d.rm.data(), d.rv.data(), g, b, 1e-5, s);
  kernels::relu_forward(a.data(), z.data(), k.total());
  kernels::Pool2dShape ps;
  ps.n = k.n, ps.c = k.c, ps.h = k.h, ps.w = k.w;
  ps.kernel_h = ps.kernel_w = ps.stride_h = ps.stride_w = 2;
  r.out.assign(k.pooled(), 0.f);
  Win argmax(k.pooled(), -1);
  kernels::maxpool2d_forward(r.out.data(), argmax.data(), a.data(), ps);
  r.win = argmax;
  for (int64_t j = 0; j < k.pooled(); ++j)
    if (r.out[j] <= 0.f) r.win[j] = -1;
  Vec da(k.total()), dz(k.total());
  kernels::maxpool2d_backward(da.data(), d.dout.data(), argmax.data(), ps);
  kernels::relu_backward(dz.data(), da.data(), a.data(), k.total());
  r.dx.assign(k.total(), 0.f);
  r.dgamma = d.dgamma0, r.dbeta = d.dbeta0;
  float* dg = k.affine ? r.dgamma.data() : nullptr;
  float* db = k.affine ? r.dbeta.data() : nullptr;
  if (train)
    kernels::batchnorm_backward_train(r.dx.data(), dg, db, dz.data(), d.in.data(), r.mean.data(),
                                      r.invstd.data(), g, s);
  else
    kernels::batchnorm_backward_eval(r.dx.data(), dg, db, dz.data(), d.in.data(), d.rm.data(),
                                     d.rv.data(), g, 1e-5, s);
  return r;
}

Result fused(const Case& k, const Data& d, bool train) {
  const BatchNormShape s = k.bn();
  const float* g = k.affine ? d.gamma.data() : nullptr;
  const float* b = k.affine ? d.beta.data() : nullptr;
  Result r;
  r.out.assign(k.pooled(), -7.f), r.win.assign(k.pooled(), 12345);  // garbage: must be overwritten
  r.mean.assign(k.c, 0.f), r.var.assign(k.c, 0.f), r.invstd.assign(k.c, 0.f);
  if (train)
    kernels::batchnorm_relu_maxpool_forward_train(r.out.data(), r.win.data(), r.mean.data(), r.var.data(),
                                                  r.invstd.data(), d.in.data(), g, b, 1e-5, s, k.h, k.w);
  else
    kernels::batchnorm_relu_maxpool_forward_eval(r.out.data(), r.win.data(), d.in.data(), d.rm.data(),
                                                 d.rv.data(), g, b, 1e-5, s, k.h, k.w);
  r.dx.assign(k.total(), -7.f);
  r.dgamma = d.dgamma0, r.dbeta = d.dbeta0;
  float* dg = k.affine ? r.dgamma.data() : nullptr;
  float* db = k.affine ? r.dbeta.data() : nullptr;
  if (train) {
    kernels::batchnorm_relu_maxpool_backward_train(r.dx.data(), dg, db, d.dout.data(), r.win.data(),
                                                   d.in.data(), r.mean.data(), r.invstd.data(), g, s,
                                                   k.h, k.w);
  } else {
    Vec dz(k.total(), -7.f);
    kernels::relu_maxpool_scatter(dz.data(), d.dout.data(), r.win.data(), k.n * k.c, k.h, k.w);
    kernels::batchnorm_backward_eval(r.dx.data(), dg, db, dz.data(), d.in.data(), d.rm.data(),
                                     d.rv.data(), g, 1e-5, s);
  }
  return r;
}

void expect_same(const Result& got, const Result& want, const std::string& what, bool stats) {
  expect_bitwise(got.out, want.out, what + " out");
  expect_bitwise(got.win, want.win, what + " winners");
  if (stats) {
    expect_bitwise(got.mean, want.mean, what + " mean");
    expect_bitwise(got.var, want.var, what + " var");
    expect_bitwise(got.invstd, want.invstd, what + " invstd");
  }
  expect_bitwise(got.dx, want.dx, what + " dx");
  expect_bitwise(got.dgamma, want.dgamma, what + " dgamma");
  expect_bitwise(got.dbeta, want.dbeta, what + " dbeta");
}

std::vector<Case> sweep() {
  std::vector<Case> cases;
  uint64_t seed = 300;
  const int64_t sizes[][2] = {{2, 2}, {3, 3}, {2, 5}, {7, 7}, {14, 14}, {5, 34}, {17, 16}, {28, 28}, {9, 40}};
  for (int64_t n : {1, 2, 5})
    for (int64_t c : {1, 3, 8})
      for (const auto& hw : sizes)
        for (bool affine : {true, false}) {
          Case k;
          k.n = n, k.c = c, k.h = hw[0], k.w = hw[1], k.affine = affine, k.seed = seed++;
          cases.push_back(k);
        }
  return cases;
}

TEST(FusedBatchNormReluMaxPool, TrainMatchesUnfusedBitwise) {
  for (const Case& k : sweep()) {
    const Data d(k);
    expect_same(fused(k, d, true), unfused(k, d, true), k.name() + " train", true);
  }
}

TEST(FusedBatchNormReluMaxPool, EvalMatchesUnfusedBitwise) {
  for (const Case& k : sweep()) {
    const Data d(k);
    expect_same(fused(k, d, false), unfused(k, d, false), k.name() + " eval", false);
  }
}

// Some windows must be blocked by the ReLU (winner -1) and some not, or the test above would
// not exercise both; a channel whose values are all <= 0 after BN blocks every window.
TEST(FusedBatchNormReluMaxPool, BlockedAndPassingWindows) {
  Case k;
  k.n = 4, k.c = 3, k.h = 6, k.w = 6;
  Data d(k);
  d.gamma[1] = 0.f, d.beta[1] = -0.25f;  // channel 1: BN output -0.25 everywhere
  const Result got = fused(k, d, true);
  expect_same(got, unfused(k, d, true), k.name() + " constant channel", true);
  int64_t blocked = 0, passing = 0;
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t c = 0; c < k.c; ++c)
      for (int64_t j = 0; j < 9; ++j) {
        const int32_t v = got.win[(n * k.c + c) * 9 + j];
        if (c == 1) {
          EXPECT_EQ(v, -1);
        }
        (v < 0 ? blocked : passing) += 1;
      }
  EXPECT_GT(passing, 0);
  EXPECT_GT(blocked, 4 * 9);
}

TEST(FusedBatchNormReluMaxPool, ThreadCountDeterminism) {
  const int saved = omp_get_max_threads();
  for (bool train : {true, false}) {
    Case k;
    k.n = 6, k.c = 7, k.h = 15, k.w = 22;
    const Data d(k);
    omp_set_num_threads(1);
    const Result one = fused(k, d, train);
    for (int threads : {2, 3}) {
      omp_set_num_threads(threads);
      const std::string what = k.name() + (train ? " train " : " eval ") + std::to_string(threads) + " threads";
      expect_same(fused(k, d, train), one, what, train);
    }
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace normnet

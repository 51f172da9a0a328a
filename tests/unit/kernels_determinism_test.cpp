// The kernels promise results that do not depend on the thread count: run each with 1, 2
// and 3 OpenMP threads and compare the bytes.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <functional>

#include "kernel_test_util.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/pool2d.h"

namespace normnet {
namespace {

using test::random_floats;

// Runs fn (which fills its outputs from scratch) under each thread count; every run's output
// bytes must equal the single-threaded run's.
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

// Concatenates output buffers so one memcmp covers them all.
std::vector<float> Concat(std::initializer_list<const std::vector<float>*> parts) {
  std::vector<float> all;
  for (const auto* p : parts) all.insert(all.end(), p->begin(), p->end());
  return all;
}

// Forward and backward of one convolution (random operands from `seed`), outputs and gradients
// concatenated, compared across thread counts.
void ExpectConvSameBits(const kernels::Conv2dShape& s, uint64_t seed, const char* what) {
  const int64_t out_n = s.n * s.c_out * s.out_h() * s.out_w();
  Rng rng(seed);
  const auto in = random_floats(rng, s.n * s.c_in * s.h * s.w);
  const auto weight = random_floats(rng, s.c_out * s.c_in / s.groups * s.kernel_h * s.kernel_w);
  const auto bias = random_floats(rng, s.c_out), dout = random_floats(rng, out_n);
  ExpectSameBitsForAnyThreadCount(
      [&] {
        std::vector<float> out(out_n), din(in.size()), dw(weight.size(), 0.5f), db(s.c_out, 0.5f);
        kernels::conv2d_forward(out.data(), in.data(), weight.data(), bias.data(), s);
        kernels::conv2d_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(),
                                 weight.data(), s);
        return Concat({&out, &din, &dw, &db});
      },
      what);
}

TEST(kernels_determinism, Conv2d) {
  for (int64_t groups : {1, 3}) {
    kernels::Conv2dShape s;
    s.n = 5, s.c_in = 6, s.c_out = 39, s.h = 13, s.w = 11, s.kernel_h = s.kernel_w = 3;
    s.pad_h = s.pad_w = 1, s.stride_h = 2, s.groups = groups;
    ExpectConvSameBits(s, 11, groups == 1 ? "conv2d" : "conv2d groups=3");
  }
}

// Winograd layers (stride 1, enough channels): the weight gradient's chunks of 8 samples (17
// samples: three chunks), groups.
TEST(kernels_determinism, Conv2dWinograd) {
  for (int64_t groups : {1, 2}) {
    kernels::Conv2dShape s;
    s.n = 17, s.c_in = 32, s.c_out = 40, s.h = 13, s.w = 11, s.kernel_h = s.kernel_w = 3;
    s.pad_h = s.pad_w = 1, s.groups = groups;
    ASSERT_TRUE(kernels::conv2d_uses_winograd(s));
    ExpectConvSameBits(s, 13, groups == 1 ? "conv2d winograd" : "conv2d winograd groups=2");
  }
}

TEST(kernels_determinism, BatchNorm) {
  const kernels::BatchNormShape s{.n = 7, .c = 5, .spatial = 37};
  Rng rng(12);
  const int64_t total = s.n * s.c * s.spatial;
  const auto in = random_floats(rng, total, 90.f, 110.f), dout = random_floats(rng, total);
  const auto gamma = random_floats(rng, s.c), beta = random_floats(rng, s.c);
  ExpectSameBitsForAnyThreadCount(
      [&] {
        std::vector<float> out(total), mean(s.c), var(s.c), invstd(s.c), din(total);
        std::vector<float> dgamma(s.c, 0.f), dbeta(s.c, 0.f), eval_out(total), eval_din(total);
        kernels::batchnorm_forward_train(out.data(), mean.data(), var.data(), invstd.data(),
                                         in.data(), gamma.data(), beta.data(), 1e-5, s);
        kernels::batchnorm_backward_train(din.data(), dgamma.data(), dbeta.data(), dout.data(),
                                          in.data(), mean.data(), invstd.data(), gamma.data(), s);
        kernels::batchnorm_forward_eval(eval_out.data(), in.data(), mean.data(), var.data(),
                                        gamma.data(), beta.data(), 1e-5, s);
        kernels::batchnorm_backward_eval(eval_din.data(), dgamma.data(), dbeta.data(), dout.data(),
                                         in.data(), mean.data(), var.data(), gamma.data(), 1e-5, s);
        return Concat({&out, &mean, &var, &invstd, &din, &dgamma, &dbeta, &eval_out, &eval_din});
      },
      "batchnorm");
}

TEST(kernels_determinism, Linear) {
  const int64_t n = 53, in_f = 37, out_f = 29;
  Rng rng(13);
  const auto in = random_floats(rng, n * in_f), weight = random_floats(rng, out_f * in_f);
  const auto bias = random_floats(rng, out_f), dout = random_floats(rng, n * out_f);
  ExpectSameBitsForAnyThreadCount(
      [&] {
        std::vector<float> out(n * out_f), din(n * in_f), dw(out_f * in_f, 0.f), db(out_f, 0.f);
        kernels::linear_forward(out.data(), in.data(), weight.data(), bias.data(), n, in_f, out_f);
        kernels::linear_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(),
                                 weight.data(), n, in_f, out_f);
        return Concat({&out, &din, &dw, &db});
      },
      "linear");
}

TEST(kernels_determinism, PoolingAndDropout) {
  kernels::Pool2dShape s;
  s.n = 3, s.c = 7, s.h = 15, s.w = 14, s.kernel_h = s.kernel_w = 3, s.stride_h = s.stride_w = 2;
  s.pad_h = s.pad_w = 1, s.ceil_mode = true;
  const int64_t in_n = s.n * s.c * s.h * s.w, out_n = s.n * s.c * s.out_h() * s.out_w();
  const int64_t big = 70001;  // above the element-wise kernels' parallel threshold
  Rng rng(14);
  const auto in = random_floats(rng, in_n), dout = random_floats(rng, out_n);
  const auto x = random_floats(rng, big);
  ExpectSameBitsForAnyThreadCount(
      [&] {
        std::vector<float> mo(out_n), md(in_n), ao(out_n), ad(in_n), go(s.n * s.c), gd(in_n);
        std::vector<int32_t> argmax(out_n);
        kernels::maxpool2d_forward(mo.data(), argmax.data(), in.data(), s);
        kernels::maxpool2d_backward(md.data(), dout.data(), argmax.data(), s);
        kernels::avgpool2d_forward(ao.data(), in.data(), s);
        kernels::avgpool2d_backward(ad.data(), dout.data(), s);
        kernels::global_avgpool_forward(go.data(), in.data(), s.n, s.c, s.h * s.w);
        kernels::global_avgpool_backward(gd.data(), go.data(), s.n, s.c, s.h * s.w);
        std::vector<float> drop(big);
        std::vector<uint8_t> mask(big);
        kernels::dropout_forward(drop.data(), mask.data(), x.data(), 0.3, 5, big);
        return Concat({&mo, &md, &ao, &ad, &go, &gd, &drop});
      },
      "pooling and dropout");
}

}  // namespace
}  // namespace normnet

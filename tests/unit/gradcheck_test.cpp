// Central finite-difference gradient checks of every kernel's backward, in double precision
// (the kernels' double instantiation), as ggml's test-backend-ops does.
//
// Method: loss = sum(out * R) for a fixed random R, so dloss/dout = R is what each backward is
// given. For every element x_i of an input or parameter, the numerical derivative
// (L(x + h e_i) - L(x - h e_i)) / 2h with h = 1e-6 is compared with the analytic one.
//
// Tolerance. The central difference has truncation error h^2/6 * |L'''| (about 1e-13 for these
// smooth, O(1) functions, zero for piecewise-linear ones away from kinks) and rounding error
// about DBL_EPSILON * S / h, where S = sum |out * R| is the size of the terms summed into L
// (1e-10 * S). We allow 1e-6 relative to the gradient plus 1e-9 * (1 + S) absolute: both
// errors with a wide margin, while a wrong term in a gradient (an error of order the gradient
// itself) is caught many times over. Points within 1e-3 of a kink (ReLU-family at 0) are
// skipped, and for max pooling, points whose perturbation changes any argmax (near-ties).
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
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/pool2d.h"

namespace normnet {
namespace {

namespace k = kernels;
using Vec = std::vector<double>;
using test::random_doubles;

using test::GradCheck;
using test::Zeros;

// ---------------------------------------------------------------- conv2d

void CheckConv2d(const k::Conv2dShape& s, const std::string& what) {
  s.validate(what.c_str());
  Rng rng(21);
  const int64_t out_n = s.n * s.c_out * s.out_h() * s.out_w();
  Vec in = random_doubles(rng, s.n * s.c_in * s.h * s.w);
  Vec w = random_doubles(rng, s.c_out * s.c_in / s.groups * s.kernel_h * s.kernel_w);
  Vec b = random_doubles(rng, s.c_out);
  GradCheck gc{[&] {
                 Vec out(out_n);
                 k::conv2d_forward(out.data(), in.data(), w.data(), b.data(), s);
                 return out;
               },
               random_doubles(rng, out_n)};
  Vec din = Zeros(in.size()), dw = Zeros(w.size()), db = Zeros(b.size());
  k::conv2d_backward(din.data(), dw.data(), db.data(), gc.R.data(), in.data(), w.data(), s);
  gc.Check(in, din, what + " din");
  gc.Check(w, dw, what + " dweight");
  gc.Check(b, db, what + " dbias");
}

k::Conv2dShape ConvShape(int64_t n, int64_t ci, int64_t co, int64_t h, int64_t w, int64_t kh,
                         int64_t kw, int64_t stride, int64_t pad, int64_t dil, int64_t groups) {
  k::Conv2dShape s;
  s.n = n, s.c_in = ci, s.c_out = co, s.h = h, s.w = w, s.kernel_h = kh, s.kernel_w = kw;
  s.stride_h = s.stride_w = stride, s.pad_h = s.pad_w = pad, s.dilation_h = s.dilation_w = dil;
  s.groups = groups;
  return s;
}

TEST(gradcheck, Conv2d) { CheckConv2d(ConvShape(2, 3, 4, 5, 6, 3, 3, 1, 1, 1, 1), "conv2d 3x3"); }
TEST(gradcheck, Conv2dStrideDilationGroups) {
  CheckConv2d(ConvShape(2, 4, 6, 7, 6, 3, 3, 2, 2, 2, 2), "conv2d s2 d2 g2");
}
TEST(gradcheck, Conv2dDepthwise) {
  CheckConv2d(ConvShape(2, 3, 3, 5, 5, 3, 3, 2, 1, 1, 3), "conv2d depthwise");
}
TEST(gradcheck, Conv1d) {
  k::Conv2dShape s = ConvShape(2, 2, 3, 1, 9, 1, 3, 1, 0, 1, 1);
  s.pad_w = 1, s.stride_w = 2;
  CheckConv2d(s, "conv1d");
}

// ---------------------------------------------------------------- linear

TEST(gradcheck, Linear) {
  const int64_t n = 3, in_f = 5, out_f = 4;
  Rng rng(22);
  Vec in = random_doubles(rng, n * in_f), w = random_doubles(rng, out_f * in_f);
  Vec b = random_doubles(rng, out_f);
  GradCheck gc{[&] {
                 Vec out(n * out_f);
                 k::linear_forward(out.data(), in.data(), w.data(), b.data(), n, in_f, out_f);
                 return out;
               },
               random_doubles(rng, n * out_f)};
  Vec din = Zeros(in.size()), dw = Zeros(w.size()), db = Zeros(b.size());
  k::linear_backward(din.data(), dw.data(), db.data(), gc.R.data(), in.data(), w.data(), n, in_f,
                     out_f);
  gc.Check(in, din, "linear din");
  gc.Check(w, dw, "linear dweight");
  gc.Check(b, db, "linear dbias");
}

// ---------------------------------------------------------------- batchnorm

// Train mode: mean and var depend on x, so the check covers the full backward formula.
void CheckBatchNormTrain(const k::BatchNormShape& s, bool affine) {
  const std::string what = "batchnorm train (" + std::to_string(s.n) + "," + std::to_string(s.c) +
                           "," + std::to_string(s.spatial) + ") affine=" + std::to_string(affine);
  const int64_t total = s.n * s.c * s.spatial;
  Rng rng(23);
  Vec in = random_doubles(rng, total), gamma = random_doubles(rng, s.c, 0.5, 1.5);
  Vec beta = random_doubles(rng, s.c);
  Vec mean(s.c), var(s.c), invstd(s.c);
  const double* g = affine ? gamma.data() : nullptr;
  const double* b = affine ? beta.data() : nullptr;
  GradCheck gc{[&] {
                 Vec out(total);
                 k::batchnorm_forward_train(out.data(), mean.data(), var.data(), invstd.data(),
                                            in.data(), g, b, 1e-5, s);
                 return out;
               },
               random_doubles(rng, total)};
  gc.forward();  // mean and invstd for backward
  Vec din = Zeros(total), dgamma = Zeros(s.c), dbeta = Zeros(s.c);
  k::batchnorm_backward_train(din.data(), affine ? dgamma.data() : nullptr,
                              affine ? dbeta.data() : nullptr, gc.R.data(), in.data(), mean.data(),
                              invstd.data(), g, s);
  gc.Check(in, din, what + " din");
  if (affine) {
    gc.Check(gamma, dgamma, what + " dgamma");
    gc.Check(beta, dbeta, what + " dbeta");
  }
}

TEST(gradcheck, BatchNormTrain) {
  CheckBatchNormTrain({.n = 3, .c = 2, .spatial = 5}, true);
  CheckBatchNormTrain({.n = 6, .c = 3, .spatial = 1}, true);  // BatchNorm1d on (N, C)
  CheckBatchNormTrain({.n = 2, .c = 2, .spatial = 4}, false);
}

TEST(gradcheck, BatchNormEval) {
  const k::BatchNormShape s{.n = 3, .c = 2, .spatial = 4};
  const int64_t total = s.n * s.c * s.spatial;
  Rng rng(24);
  Vec in = random_doubles(rng, total), gamma = random_doubles(rng, s.c, 0.5, 1.5);
  Vec beta = random_doubles(rng, s.c), rmean = random_doubles(rng, s.c, -0.2, 0.2);
  const Vec rvar = random_doubles(rng, s.c, 0.5, 2);
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
  gc.Check(in, din, "batchnorm eval din");
  gc.Check(gamma, dgamma, "batchnorm eval dgamma");
  gc.Check(beta, dbeta, "batchnorm eval dbeta");
}

// ---------------------------------------------------------------- activations

// fwd(out, in), bwd(din, dout, in, out): each activation's backward picks its argument.
void CheckActivation(
    const std::function<void(double*, const double*, int64_t)>& fwd,
    const std::function<void(double*, const double*, const double*, const double*, int64_t)>& bwd,
    const std::string& what) {
  const int64_t n = 40;
  Rng rng(25);
  Vec in = random_doubles(rng, n, -2, 2);
  GradCheck gc{[&] {
                 Vec out(n);
                 fwd(out.data(), in.data(), n);
                 return out;
               },
               random_doubles(rng, n)};
  gc.skip = [&](size_t i) { return std::fabs(in[i]) < 1e-3; };
  const Vec out = gc.forward();
  Vec din = Zeros(n);
  bwd(din.data(), gc.R.data(), in.data(), out.data(), n);
  gc.Check(in, din, what);
}

TEST(gradcheck, Relu) {
  CheckActivation([](double* o, const double* x, int64_t n) { k::relu_forward(o, x, n); },
                  [](double* dx, const double* dy, const double*, const double* y, int64_t n) {
                    k::relu_backward(dx, dy, y, n);
                  },
                  "relu");
}

TEST(gradcheck, LeakyRelu) {
  CheckActivation(
      [](double* o, const double* x, int64_t n) { k::leaky_relu_forward(o, x, 0.1, n); },
      [](double* dx, const double* dy, const double* x, const double*, int64_t n) {
        k::leaky_relu_backward(dx, dy, x, 0.1, n);
      },
      "leaky_relu");
}

TEST(gradcheck, Elu) {
  CheckActivation([](double* o, const double* x, int64_t n) { k::elu_forward(o, x, 1.3, n); },
                  [](double* dx, const double* dy, const double*, const double* y, int64_t n) {
                    k::elu_backward(dx, dy, y, 1.3, n);
                  },
                  "elu");
}

// ---------------------------------------------------------------- pooling

k::Pool2dShape PoolShape(int64_t h, int64_t w, int64_t kern, int64_t stride, int64_t pad,
                         int64_t dil, bool ceil, bool include_pad) {
  k::Pool2dShape s;
  s.n = 2, s.c = 2, s.h = h, s.w = w, s.kernel_h = s.kernel_w = kern;
  s.stride_h = s.stride_w = stride, s.pad_h = s.pad_w = pad, s.dilation_h = s.dilation_w = dil;
  s.ceil_mode = ceil, s.count_include_pad = include_pad;
  return s;
}

void CheckMaxPool(const k::Pool2dShape& s, const std::string& what) {
  s.validate(what.c_str());
  const int64_t out_n = s.n * s.c * s.out_h() * s.out_w();
  Rng rng(26);
  Vec in = random_doubles(rng, s.n * s.c * s.h * s.w);
  std::vector<int32_t> argmax(out_n), base(out_n);
  GradCheck gc{[&] {
                 Vec out(out_n);
                 k::maxpool2d_forward(out.data(), argmax.data(), in.data(), s);
                 return out;
               },
               random_doubles(rng, out_n)};
  gc.forward();
  base = argmax;
  gc.crossed = [&] { return argmax != base; };  // a near-tie flipped: not differentiable here
  Vec din = Zeros(in.size());
  k::maxpool2d_backward(din.data(), gc.R.data(), base.data(), s);
  gc.Check(in, din, what);
}

TEST(gradcheck, MaxPool) {
  CheckMaxPool(PoolShape(6, 7, 2, 2, 0, 1, false, true), "maxpool k2 s2");
  CheckMaxPool(PoolShape(7, 6, 3, 2, 1, 1, true, true), "maxpool k3 s2 p1 ceil");
  CheckMaxPool(PoolShape(7, 7, 3, 1, 1, 2, false, true), "maxpool k3 d2 p1 (overlapping)");
}

void CheckAvgPool(const k::Pool2dShape& s, const std::string& what) {
  s.validate(what.c_str());
  const int64_t out_n = s.n * s.c * s.out_h() * s.out_w();
  Rng rng(27);
  Vec in = random_doubles(rng, s.n * s.c * s.h * s.w);
  GradCheck gc{[&] {
                 Vec out(out_n);
                 k::avgpool2d_forward(out.data(), in.data(), s);
                 return out;
               },
               random_doubles(rng, out_n)};
  Vec din = Zeros(in.size());
  k::avgpool2d_backward(din.data(), gc.R.data(), s);
  gc.Check(in, din, what);
}

TEST(gradcheck, AvgPool) {
  for (bool include_pad : {true, false}) {
    const std::string suffix = include_pad ? " include_pad" : " exclude_pad";
    CheckAvgPool(PoolShape(6, 7, 2, 2, 0, 1, false, include_pad), "avgpool k2 s2" + suffix);
    CheckAvgPool(PoolShape(7, 6, 3, 2, 1, 1, true, include_pad), "avgpool k3 s2 p1 ceil" + suffix);
    CheckAvgPool(PoolShape(5, 5, 2, 2, 1, 1, true, include_pad), "avgpool k2 s2 p1 ceil" + suffix);
  }
}

TEST(gradcheck, GlobalAvgPool) {
  const int64_t n = 2, c = 3, hw = 10;
  Rng rng(28);
  Vec in = random_doubles(rng, n * c * hw);
  GradCheck gc{[&] {
                 Vec out(n * c);
                 k::global_avgpool_forward(out.data(), in.data(), n, c, hw);
                 return out;
               },
               random_doubles(rng, n * c)};
  Vec din = Zeros(in.size());
  k::global_avgpool_backward(din.data(), gc.R.data(), n, c, hw);
  gc.Check(in, din, "global avgpool");
}

// ---------------------------------------------------------------- loss and element-wise

TEST(gradcheck, CrossEntropy) {  // the loss is the scalar output: R = {1}
  const int64_t n = 4, classes = 5;
  const std::vector<int32_t> labels = {0, 4, 2, 2};
  for (double ls : {0.0, 0.1, 0.5}) {
    Rng rng(29);
    Vec logits = random_doubles(rng, n * classes, -3, 3), probs(n * classes);
    GradCheck gc{[&] {
                   return Vec{k::cross_entropy_forward(probs.data(), logits.data(), labels.data(),
                                                       n, classes, ls)};
                 },
                 Vec{1.0}};
    gc.forward();
    Vec dlogits = Zeros(n * classes);
    k::cross_entropy_backward(dlogits.data(), probs.data(), labels.data(), n, classes, ls);
    gc.Check(logits, dlogits, "cross_entropy ls=" + std::to_string(ls));
  }
}

TEST(gradcheck, Dropout) {  // the same seed gives the same mask: a fixed linear map
  const int64_t n = 50;
  const double p = 0.3;
  Rng rng(30);
  Vec in = random_doubles(rng, n);
  std::vector<uint8_t> mask(n);
  GradCheck gc{[&] {
                 Vec out(n);
                 k::dropout_forward(out.data(), mask.data(), in.data(), p, 77, n);
                 return out;
               },
               random_doubles(rng, n)};
  gc.forward();
  Vec din = Zeros(n);
  k::dropout_backward(din.data(), gc.R.data(), mask.data(), p, n);
  gc.Check(in, din, "dropout");
}

TEST(gradcheck, Add) {  // no backward kernel: da = db = dout, as elementwise.h says
  const int64_t n = 20;
  Rng rng(31);
  Vec a = random_doubles(rng, n), b = random_doubles(rng, n);
  GradCheck gc{[&] {
                 Vec out(n);
                 k::add_forward(out.data(), a.data(), b.data(), n);
                 return out;
               },
               random_doubles(rng, n)};
  gc.Check(a, gc.R, "add da");
  gc.Check(b, gc.R, "add db");
}

}  // namespace
}  // namespace normnet

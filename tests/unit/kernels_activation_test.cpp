// ReLU, LeakyReLU and ELU float kernels vs the double reference.
//
// ReLU and LeakyReLU do at most one multiplication of two floats; the double product of two
// floats is exact, so rounding the reference to float gives the kernel's bits: compared
// exactly. ELU takes an exponential (a few ulp) and one or two more roundings: compared with
// the generic bound on the magnitude alpha + |y| (forward) and |dy| * (alpha + |y|) (backward).
#include <gtest/gtest.h>

#include <cmath>

#include <sstream>

#include "kernel_test_util.h"
#include "kernels/activation.h"
#include "ref/reference.h"

namespace normnet {
namespace {

using test::expect_close;
using test::expect_equal;
using test::to_double;

enum class Activation { kRelu, kLeakyRelu, kElu };

class ActivationTester {
 public:
  ActivationTester& op(Activation a) { return op_ = a, *this; }
  ActivationTester& size(int64_t n) { return n_ = n, *this; }
  ActivationTester& param(float p) { return param_ = p, *this; }  // slope or alpha
  ActivationTester& scale(float s) { return scale_ = s, *this; }  // inputs in [-s, s)
  ActivationTester& seed(uint64_t s) { return seed_ = s, *this; }

  void Test() const {
    std::ostringstream o;
    o << (op_ == Activation::kRelu        ? "relu"
          : op_ == Activation::kLeakyRelu ? "leaky_relu"
                                          : "elu")
      << " n=" << n_ << " param=" << param_ << " scale=" << scale_;
    const std::string what = o.str();
    Rng rng(seed_);
    std::vector<float> in(n_), dout(n_);
    for (int64_t i = 0; i < n_; ++i) {
      in[i] = i % 7 == 3 ? 0.f : rng.uniform(-scale_, scale_);  // exact zeros: the kink
      dout[i] = rng.uniform(-1.f, 1.f);
    }
    std::vector<float> out(n_, NAN), din(n_, NAN);
    Forward(out.data(), in.data());
    Backward(din.data(), dout.data(), in.data(), out.data());
    // din may alias dout: the in-place call must give the same bits.
    std::vector<float> inplace = dout;
    Backward(inplace.data(), inplace.data(), in.data(), out.data());
    EXPECT_EQ(inplace, din) << what << ": in-place backward differs";

    const auto in_d = to_double(in), dout_d = to_double(dout), out_d = to_double(out);
    std::vector<double> out_r(n_), din_r(n_);
    switch (op_) {
      case Activation::kRelu:
        ref::relu_forward(out_r.data(), in_d.data(), n_);
        ref::relu_backward(din_r.data(), dout_d.data(), out_d.data(), n_);
        expect_equal(out, out_r, what + " forward");
        expect_equal(din, din_r, what + " backward");
        break;
      case Activation::kLeakyRelu:
        ref::leaky_relu_forward(out_r.data(), in_d.data(), param_, n_);
        ref::leaky_relu_backward(din_r.data(), dout_d.data(), in_d.data(), param_, n_);
        expect_equal(out, out_r, what + " forward");
        expect_equal(din, din_r, what + " backward");
        break;
      case Activation::kElu: {
        ref::elu_forward(out_r.data(), in_d.data(), param_, n_);
        ref::elu_backward(din_r.data(), dout_d.data(), out_d.data(), param_, n_);
        std::vector<double> out_mag(n_), din_mag(n_);
        for (int64_t i = 0; i < n_; ++i) {
          out_mag[i] = param_ + std::fabs(out_r[i]);
          din_mag[i] = std::fabs(dout_d[i]) * (param_ + std::fabs(out_d[i]));
        }
        expect_close(out, out_r, out_mag, 4, what + " forward");
        expect_close(din, din_r, din_mag, 4, what + " backward");
        break;
      }
    }
  }

 private:
  void Forward(float* out, const float* in) const {
    switch (op_) {
      case Activation::kRelu:
        return kernels::relu_forward(out, in, n_);
      case Activation::kLeakyRelu:
        return kernels::leaky_relu_forward(out, in, param_, n_);
      case Activation::kElu:
        return kernels::elu_forward(out, in, param_, n_);
    }
  }
  void Backward(float* din, const float* dout, const float* in, const float* out) const {
    switch (op_) {  // ReLU and ELU take the forward's output, LeakyReLU its input
      case Activation::kRelu:
        return kernels::relu_backward(din, dout, out, n_);
      case Activation::kLeakyRelu:
        return kernels::leaky_relu_backward(din, dout, in, param_, n_);
      case Activation::kElu:
        return kernels::elu_backward(din, dout, out, param_, n_);
    }
  }

  Activation op_ = Activation::kRelu;
  int64_t n_ = 1;
  float param_ = 0.01f, scale_ = 3.f;
  uint64_t seed_ = 1;
};

// Sizes around vector widths and the kernels' parallel threshold (65536).
const int64_t kSizes[] = {0, 1, 7, 8, 15, 17, 33, 1000, 65537, 200003};

// Special values, with PyTorch's rules (checked against torch itself in
// tests/torch/test_special_values_parity.py): ReLU keeps -0 and NaN and maps -inf and negatives
// to +0; its backward (from the output) blocks at outputs <= 0, so passes at NaN; LeakyReLU
// scales NaN and -0 (gradient: slope); ELU's backward gives NaN at NaN.
TEST(kernels_activation, SpecialValuesFollowPyTorch) {
  const float nan = std::nanf(""), inf = INFINITY;
  const std::vector<float> in = {nan, -0.0f, 0.0f, -inf, inf, -1.0f, 2.0f};
  const int64_t n = static_cast<int64_t>(in.size());
  const std::vector<float> dout(in.size(), 3.0f);
  std::vector<float> out(in.size()), din(in.size());
  kernels::relu_forward(out.data(), in.data(), n);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_TRUE(out[1] == 0.0f && std::signbit(out[1])) << "relu(-0) keeps the sign, as torch.relu";
  EXPECT_TRUE(out[2] == 0.0f && !std::signbit(out[2]));
  EXPECT_TRUE(out[3] == 0.0f && !std::signbit(out[3]));
  EXPECT_EQ(out[4], inf);
  EXPECT_TRUE(out[5] == 0.0f && !std::signbit(out[5]));
  EXPECT_EQ(out[6], 2.0f);
  kernels::relu_backward(din.data(), dout.data(), out.data(), n);
  EXPECT_EQ(din, (std::vector<float>{3, 0, 0, 0, 3, 0, 3}));
  kernels::leaky_relu_forward(out.data(), in.data(), 0.01f, n);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_TRUE(out[1] == 0.0f && std::signbit(out[1]));
  EXPECT_EQ(out[3], -inf);
  kernels::leaky_relu_backward(din.data(), dout.data(), in.data(), 0.01f, n);
  EXPECT_EQ(din[0], 3.0f * 0.01f);
  EXPECT_EQ(din[1], 3.0f * 0.01f);
  kernels::elu_forward(out.data(), in.data(), 1.0f, n);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_EQ(out[3], -1.0f);
  kernels::elu_backward(din.data(), dout.data(), out.data(), 1.0f, n);
  EXPECT_TRUE(std::isnan(din[0])) << "ELU's backward at NaN: NaN, as torch's vectorized kernel";
  EXPECT_EQ(din[3], 0.0f);
}

TEST(kernels_activation, Relu) {
  for (int64_t n : kSizes) ActivationTester().op(Activation::kRelu).size(n).Test();
}

TEST(kernels_activation, LeakyRelu) {
  for (int64_t n : kSizes)
    for (float slope : {0.01f, 0.2f, 0.f, 1.5f})
      ActivationTester().op(Activation::kLeakyRelu).size(n).param(slope).Test();
}

TEST(kernels_activation, Elu) {
  for (int64_t n : kSizes)
    for (float alpha : {1.f, 0.5f, 2.f})
      ActivationTester().op(Activation::kElu).size(n).param(alpha).Test();
}

TEST(kernels_activation, EluSmallAndLargeInputs) {
  ActivationTester().op(Activation::kElu).size(1000).scale(1e-4f).Test();  // expm1 territory
  ActivationTester().op(Activation::kElu).size(1000).scale(100.f).Test();  // saturates at -alpha
}

}  // namespace
}  // namespace normnet

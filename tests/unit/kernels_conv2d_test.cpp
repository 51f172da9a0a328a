// Conv2d float kernel vs the double reference, over a sweep of shapes.
#include <gtest/gtest.h>

#include <sstream>

#include "kernel_test_util.h"
#include "kernels/conv2d.h"
#include "normnet/error.h"
#include "ref/reference.h"

namespace normnet {
namespace {

using kernels::Conv2dShape;
using test::abs_of;
using test::expect_close;
using test::random_floats;
using test::to_double;

// Configure, then Test(): forward, then backward with dweight/dbias pre-filled (they
// accumulate) and din pre-filled with garbage (it is overwritten).
class Conv2dTester {
 public:
  Conv2dTester& batch(int64_t n) { return s_.n = n, *this; }
  Conv2dTester& channels(int64_t in, int64_t out) { return s_.c_in = in, s_.c_out = out, *this; }
  Conv2dTester& input(int64_t h, int64_t w) { return s_.h = h, s_.w = w, *this; }
  Conv2dTester& kernel(int64_t kh, int64_t kw) { return s_.kernel_h = kh, s_.kernel_w = kw, *this; }
  Conv2dTester& stride(int64_t sh, int64_t sw) { return s_.stride_h = sh, s_.stride_w = sw, *this; }
  Conv2dTester& stride(int64_t st) { return stride(st, st); }
  Conv2dTester& pad(int64_t ph, int64_t pw) { return s_.pad_h = ph, s_.pad_w = pw, *this; }
  Conv2dTester& pad(int64_t p) { return pad(p, p); }
  Conv2dTester& dilation(int64_t dh, int64_t dw) {
    return s_.dilation_h = dh, s_.dilation_w = dw, *this;
  }
  Conv2dTester& dilation(int64_t d) { return dilation(d, d); }
  Conv2dTester& groups(int64_t g) { return s_.groups = g, *this; }
  Conv2dTester& bias(bool b) { return bias_ = b, *this; }
  Conv2dTester& input_grad(bool b) { return input_grad_ = b, *this; }
  Conv2dTester& seed(uint64_t seed) { return seed_ = seed, *this; }

  // The direct and im2col paths: Winograd layers are tested by kernels_winograd_test.cpp with
  // the bound of that algorithm.
  void Test() const {
    s_.validate("Conv2dTester");  // shape errors surface before any compute
    set_conv_algorithm(ConvAlgorithm::kExact);
    struct Restore {
      ~Restore() { set_conv_algorithm(ConvAlgorithm::kFast); }
    } restore;
    const std::string what = describe();
    const int64_t oh = ref::conv_out_size(s_.h, s_.kernel_h, s_.stride_h, s_.pad_h, s_.dilation_h);
    const int64_t ow = ref::conv_out_size(s_.w, s_.kernel_w, s_.stride_w, s_.pad_w, s_.dilation_w);
    ASSERT_EQ(s_.out_h(), oh) << what;
    ASSERT_EQ(s_.out_w(), ow) << what;
    const int64_t in_n = s_.n * s_.c_in * s_.h * s_.w, out_n = s_.n * s_.c_out * oh * ow;
    const int64_t w_n = s_.c_out * (s_.c_in / s_.groups) * s_.kernel_h * s_.kernel_w;

    Rng rng(seed_);
    const auto in = random_floats(rng, in_n), weight = random_floats(rng, w_n);
    const auto bias = random_floats(rng, bias_ ? s_.c_out : 0);
    const auto dout = random_floats(rng, out_n);
    const auto dweight0 = random_floats(rng, w_n), dbias0 = random_floats(rng, s_.c_out);
    const auto din_d = to_double(in), w_d = to_double(weight), b_d = to_double(bias);
    const auto dout_d = to_double(dout);

    // Forward.
    std::vector<float> out(out_n, NAN);
    kernels::conv2d_forward(out.data(), in.data(), weight.data(), bias_ ? bias.data() : nullptr,
                            s_);
    std::vector<double> out_ref(out_n), out_mag(out_n);
    ref::conv2d_forward(out_ref.data(), din_d.data(), w_d.data(), bias_ ? b_d.data() : nullptr, s_);
    ref::conv2d_forward(out_mag.data(), abs_of(din_d).data(), abs_of(w_d).data(),
                        bias_ ? abs_of(b_d).data() : nullptr, s_);
    const double fwd_terms = double(s_.c_in / s_.groups * s_.kernel_h * s_.kernel_w + 1);
    expect_close(out, out_ref, out_mag, fwd_terms, what + " forward");

    // Backward.
    std::vector<float> din(in_n, 1e30f), dweight = dweight0, dbias = dbias0;
    kernels::conv2d_backward(input_grad_ ? din.data() : nullptr, dweight.data(),
                             bias_ ? dbias.data() : nullptr, dout.data(), in.data(), weight.data(),
                             s_);
    std::vector<double> din_ref(in_n), dw_ref = to_double(dweight0), db_ref = to_double(dbias0);
    std::vector<double> din_mag(in_n), dw_mag = abs_of(dw_ref), db_mag = abs_of(db_ref);
    ref::conv2d_backward(din_ref.data(), dw_ref.data(), db_ref.data(), dout_d.data(), din_d.data(),
                         w_d.data(), s_);
    ref::conv2d_backward(din_mag.data(), dw_mag.data(), db_mag.data(), abs_of(dout_d).data(),
                         abs_of(din_d).data(), abs_of(w_d).data(), s_);
    if (input_grad_)
      expect_close(din, din_ref, din_mag, double(s_.c_out / s_.groups * s_.kernel_h * s_.kernel_w),
                   what + " din");
    const double param_terms = double(s_.n * oh * ow + 1);
    expect_close(dweight, dw_ref, dw_mag, param_terms, what + " dweight");
    if (bias_)
      expect_close(dbias, db_ref, db_mag, param_terms, what + " dbias");
    else
      EXPECT_EQ(dbias, dbias0) << what << ": dbias written although null was passed";
  }

 private:
  std::string describe() const {
    std::ostringstream o;
    o << "conv2d n=" << s_.n << " c=" << s_.c_in << "->" << s_.c_out << " in=" << s_.h << "x"
      << s_.w << " k=" << s_.kernel_h << "x" << s_.kernel_w << " s=" << s_.stride_h << "x"
      << s_.stride_w << " p=" << s_.pad_h << "x" << s_.pad_w << " d=" << s_.dilation_h << "x"
      << s_.dilation_w << " g=" << s_.groups << " bias=" << bias_ << " din=" << input_grad_;
    return o.str();
  }

  Conv2dShape s_;
  bool bias_ = true, input_grad_ = true;
  uint64_t seed_ = 1;
};

TEST(kernels_conv2d, KernelSizesAndChannels) {
  for (int64_t k : {1, 3, 5})
    for (int64_t c_in : {1, 3, 17})
      for (int64_t c_out : {1, 5, 33})
        Conv2dTester().batch(2).channels(c_in, c_out).input(9, 7).kernel(k, k).pad(k / 2).Test();
}

TEST(kernels_conv2d, StridePadding) {
  for (int64_t stride : {1, 2, 3})
    for (int64_t pad : {0, 1, 2})
      for (int64_t size : {5, 8, 11})
        Conv2dTester()
            .batch(2)
            .channels(3, 5)
            .input(size, size + 1)
            .kernel(3, 3)
            .stride(stride)
            .pad(pad)
            .Test();
}

TEST(kernels_conv2d, Dilation) {
  for (int64_t d : {1, 2, 3})
    for (int64_t pad : {0, 2})
      Conv2dTester()
          .batch(2)
          .channels(3, 5)
          .input(11, 10)
          .kernel(3, 3)
          .stride(2)
          .pad(pad)
          .dilation(d)
          .Test();
  Conv2dTester().batch(1).channels(2, 3).input(9, 12).kernel(2, 3).dilation(3, 2).pad(1, 0).Test();
}

TEST(kernels_conv2d, Groups) {
  for (int64_t g : {2, 3, 6})
    Conv2dTester().batch(2).channels(6, 12).input(7, 7).kernel(3, 3).pad(1).groups(g).Test();
  Conv2dTester()
      .batch(2)
      .channels(6, 6)
      .input(9, 8)
      .kernel(3, 3)
      .stride(2)
      .pad(1)
      .dilation(2)
      .groups(3)
      .Test();
}

TEST(kernels_conv2d, Depthwise) {
  for (int64_t c : {1, 5, 17, 33})
    for (int64_t stride : {1, 2})
      Conv2dTester()
          .batch(2)
          .channels(c, c)
          .input(10, 9)
          .kernel(3, 3)
          .stride(stride)
          .pad(1)
          .groups(c)
          .Test();
  Conv2dTester().batch(1).channels(5, 10).input(8, 8).kernel(5, 5).pad(2).groups(5).Test();
}

TEST(kernels_conv2d, Pointwise) {
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 17, 33})
      Conv2dTester().batch(n).channels(c, 16 + c % 5).input(6, 5).kernel(1, 1).Test();
  Conv2dTester().batch(2).channels(8, 4).input(7, 7).kernel(1, 1).stride(2).Test();
  Conv2dTester().batch(2).channels(8, 4).input(5, 5).kernel(1, 1).pad(1).Test();
}

TEST(kernels_conv2d, OneDimensional) {  // Conv1d: h = 1, kernel_h = 1
  for (int64_t k : {1, 3, 5})
    for (int64_t stride : {1, 2})
      Conv2dTester()
          .batch(3)
          .channels(5, 7)
          .input(1, 29)
          .kernel(1, k)
          .stride(1, stride)
          .pad(0, k / 2)
          .Test();
  Conv2dTester()
      .batch(2)
      .channels(4, 4)
      .input(1, 20)
      .kernel(1, 3)
      .dilation(1, 4)
      .pad(0, 4)
      .groups(4)
      .Test();
}

TEST(kernels_conv2d, BatchOneLargeReduction) {
  Conv2dTester().batch(1).channels(64, 17).input(12, 11).kernel(3, 3).pad(1).Test();
  Conv2dTester().batch(8).channels(3, 8).input(16, 16).kernel(3, 3).pad(1).Test();
}

TEST(kernels_conv2d, KernelLargerThanInputWithPadding) {
  Conv2dTester().batch(2).channels(2, 3).input(2, 3).kernel(5, 5).pad(2).Test();
  Conv2dTester().batch(2).channels(2, 3).input(3, 3).kernel(3, 3).stride(4).pad(1).Test();
}

TEST(kernels_conv2d, NoBiasNoInputGrad) {
  Conv2dTester().batch(2).channels(3, 5).input(7, 6).kernel(3, 3).pad(1).bias(false).Test();
  Conv2dTester().batch(2).channels(3, 5).input(7, 6).kernel(3, 3).pad(1).input_grad(false).Test();
  Conv2dTester()
      .batch(2)
      .channels(4, 4)
      .input(7, 6)
      .kernel(3, 3)
      .groups(2)
      .bias(false)
      .input_grad(false)
      .Test();
}

TEST(kernels_conv2d, SeedsSweep) {
  for (uint64_t seed = 2; seed < 8; ++seed)
    Conv2dTester()
        .batch(2)
        .channels(5, 3)
        .input(9, 9)
        .kernel(3, 3)
        .stride(2)
        .pad(1)
        .seed(seed)
        .Test();
}

// Float stride-1 layers run on the padded input without im2col (conv2d_direct.h): channel
// counts on both sides of its 8-row, 16- and 32-column tiles, widths that leave the flat
// positions ragged against the 32-wide tile, asymmetric and zero padding, dilation, and padding
// wider than the kernel (whose input gradient takes the im2col path).
TEST(kernels_conv2d, StrideOneWithoutIm2col) {
  for (int64_t c_in : {1, 9, 32})
    for (int64_t c_out : {7, 16, 24, 40})
      Conv2dTester().batch(2).channels(c_in, c_out).input(14, 14).kernel(3, 3).pad(1).Test();
  for (int64_t size : {5, 7, 13, 28})
    Conv2dTester().batch(3).channels(16, 32).input(size, size).kernel(3, 3).pad(1).Test();
  Conv2dTester().batch(2).channels(64, 64).input(7, 7).kernel(3, 3).pad(1).bias(false).Test();
  Conv2dTester().batch(2).channels(5, 33).input(11, 9).kernel(3, 5).pad(2, 0).Test();
  Conv2dTester().batch(2).channels(5, 17).input(11, 9).kernel(3, 3).pad(0).Test();
  Conv2dTester().batch(2).channels(5, 17).input(12, 10).kernel(3, 3).pad(2).dilation(2).Test();
  Conv2dTester().batch(2).channels(3, 8).input(6, 7).kernel(3, 3).pad(3).Test();
  Conv2dTester().batch(2).channels(6, 16).input(9, 9).kernel(3, 3).pad(1).groups(2).Test();
}

// Strided float layers without dilation read phase planes of the padded input (conv2d_direct.h):
// the ResNet downsampling shapes, odd sizes (a last phase row or column short), stride 3,
// different strides per axis, and 1x1 shortcuts.
TEST(kernels_conv2d, StridedWithoutIm2col) {
  for (int64_t size : {7, 8, 14, 15})
    Conv2dTester().batch(2).channels(16, 32).input(size, size).kernel(3, 3).stride(2).pad(1).Test();
  Conv2dTester().batch(2).channels(32, 64).input(14, 14).kernel(3, 3).stride(2).pad(1).bias(false).Test();
  Conv2dTester().batch(2).channels(16, 32).input(14, 14).kernel(1, 1).stride(2).bias(false).Test();
  Conv2dTester().batch(2).channels(5, 9).input(13, 11).kernel(5, 3).stride(3).pad(2, 1).Test();
  Conv2dTester().batch(2).channels(5, 9).input(13, 11).kernel(3, 3).stride(2, 1).pad(1).Test();
  Conv2dTester().batch(2).channels(6, 12).input(10, 10).kernel(3, 3).stride(2).pad(1).groups(3).Test();
}

TEST(kernels_conv2d, ValidateRejectsBadShapes) {
  Conv2dShape s;
  s.c_in = 6, s.c_out = 4, s.groups = 4, s.h = s.w = 5, s.kernel_h = s.kernel_w = 3;
  EXPECT_THROW(s.validate("conv"), Error);  // groups does not divide c_in
  s.groups = 2, s.h = 2;
  EXPECT_THROW(s.validate("conv"), Error);  // input smaller than kernel
  s.h = 5, s.stride_h = 0;
  EXPECT_THROW(s.validate("conv"), Error);
  s.stride_h = 1;
  EXPECT_NO_THROW(s.validate("conv"));
}

}  // namespace
}  // namespace normnet

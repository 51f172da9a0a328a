// MaxPool2d, AvgPool2d and global average pooling float kernels vs the double reference.
//
// Max pooling only selects, so values and argmax are compared exactly. Its backward and the
// average pools sum a handful of terms (a window, or the windows overlapping an input), so
// they use the generic sqrt(terms) bound of expect_close on the sum of |terms|.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "kernel_test_util.h"
#include "kernels/pool2d.h"
#include "normnet/error.h"
#include "ref/reference.h"

namespace normnet {
namespace {

using kernels::Pool2dShape;
using test::abs_of;
using test::expect_close;
using test::expect_equal;
using test::random_floats;
using test::to_double;

class Pool2dTester {
 public:
  Pool2dTester& batch(int64_t n) { return s_.n = n, *this; }
  Pool2dTester& channels(int64_t c) { return s_.c = c, *this; }
  Pool2dTester& input(int64_t h, int64_t w) { return s_.h = h, s_.w = w, *this; }
  Pool2dTester& kernel(int64_t kh, int64_t kw) { return s_.kernel_h = kh, s_.kernel_w = kw, *this; }
  Pool2dTester& stride(int64_t sh, int64_t sw) { return s_.stride_h = sh, s_.stride_w = sw, *this; }
  Pool2dTester& stride(int64_t st) { return stride(st, st); }
  Pool2dTester& pad(int64_t ph, int64_t pw) { return s_.pad_h = ph, s_.pad_w = pw, *this; }
  Pool2dTester& pad(int64_t p) { return pad(p, p); }
  Pool2dTester& dilation(int64_t d) { return s_.dilation_h = s_.dilation_w = d, *this; }
  Pool2dTester& ceil_mode(bool c) { return s_.ceil_mode = c, *this; }
  Pool2dTester& count_include_pad(bool c) { return s_.count_include_pad = c, *this; }
  Pool2dTester& ties(bool t) { return ties_ = t, *this; }  // inputs from {-1, 0, 1}: many ties
  Pool2dTester& seed(uint64_t s) { return seed_ = s, *this; }

  // True when PyTorch would accept the shape; sweeps skip the rest.
  bool Valid() const {
    return 2 * s_.pad_h <= s_.kernel_h && 2 * s_.pad_w <= s_.kernel_w && OutH() > 0 && OutW() > 0;
  }

  void TestMax() const {
    Prepare();
    if (::testing::Test::HasFatalFailure()) return;  // shape mismatch: do not run on it
    std::vector<float> out(out_n_, NAN), din(in_.size(), NAN);
    std::vector<int32_t> argmax(out_n_, -7);
    kernels::maxpool2d_forward(out.data(), argmax.data(), in_.data(), s_);
    kernels::maxpool2d_backward(din.data(), dout_.data(), argmax.data(), s_);
    std::vector<double> out_r(out_n_), din_r(in_.size()), din_mag(in_.size());
    std::vector<int32_t> argmax_r(out_n_);
    ref::maxpool2d_forward(out_r.data(), argmax_r.data(), to_double(in_).data(), s_);
    expect_equal(out, out_r, what_ + " max forward");
    EXPECT_EQ(argmax, argmax_r) << what_ << " max argmax";
    ref::maxpool2d_backward(din_r.data(), to_double(dout_).data(), argmax_r.data(), s_);
    ref::maxpool2d_backward(din_mag.data(), abs_of(to_double(dout_)).data(), argmax_r.data(), s_);
    expect_close(din, din_r, din_mag, Overlap(), what_ + " max backward");
  }

  void TestAvg() const {
    Prepare();
    if (::testing::Test::HasFatalFailure()) return;  // shape mismatch: do not run on it
    std::vector<float> out(out_n_, NAN), din(in_.size(), NAN);
    kernels::avgpool2d_forward(out.data(), in_.data(), s_);
    kernels::avgpool2d_backward(din.data(), dout_.data(), s_);
    std::vector<double> out_r(out_n_), out_mag(out_n_), din_r(in_.size()), din_mag(in_.size());
    const auto in_d = to_double(in_), dout_d = to_double(dout_);
    ref::avgpool2d_forward(out_r.data(), in_d.data(), s_);
    ref::avgpool2d_forward(out_mag.data(), abs_of(in_d).data(), s_);
    ref::avgpool2d_backward(din_r.data(), dout_d.data(), s_);
    ref::avgpool2d_backward(din_mag.data(), abs_of(dout_d).data(), s_);
    expect_close(out, out_r, out_mag, double(s_.kernel_h * s_.kernel_w + 1),
                 what_ + " avg forward");
    expect_close(din, din_r, din_mag, 2 * Overlap(), what_ + " avg backward");
  }

 private:
  int64_t OutH() const {
    return ref::pool_out_size(s_.h, s_.kernel_h, s_.stride_h, s_.pad_h, s_.dilation_h,
                              s_.ceil_mode);
  }
  int64_t OutW() const {
    return ref::pool_out_size(s_.w, s_.kernel_w, s_.stride_w, s_.pad_w, s_.dilation_w,
                              s_.ceil_mode);
  }
  // Most windows one input can belong to.
  double Overlap() const {
    auto per_axis = [](int64_t k, int64_t st) { return double((k + st - 1) / st); };
    return per_axis(s_.kernel_h, s_.stride_h) * per_axis(s_.kernel_w, s_.stride_w);
  }

  void Prepare() const {
    s_.validate("Pool2dTester");
    std::ostringstream o;
    o << "pool n=" << s_.n << " c=" << s_.c << " in=" << s_.h << "x" << s_.w << " k=" << s_.kernel_h
      << "x" << s_.kernel_w << " s=" << s_.stride_h << "x" << s_.stride_w << " p=" << s_.pad_h
      << "x" << s_.pad_w << " d=" << s_.dilation_h << " ceil=" << s_.ceil_mode
      << " include_pad=" << s_.count_include_pad << " ties=" << ties_;
    what_ = o.str();
    ASSERT_EQ(s_.out_h(), OutH()) << what_;
    ASSERT_EQ(s_.out_w(), OutW()) << what_;
    out_n_ = s_.n * s_.c * OutH() * OutW();
    Rng rng(seed_);
    in_ = random_floats(rng, s_.n * s_.c * s_.h * s_.w);
    if (ties_)
      for (auto& x : in_) x = float(int64_t(rng.below(3)) - 1);
    dout_ = random_floats(rng, out_n_);
  }

  Pool2dShape s_;
  bool ties_ = false;
  uint64_t seed_ = 1;
  mutable std::string what_;
  mutable int64_t out_n_ = 0;
  mutable std::vector<float> in_, dout_;
};

TEST(kernels_pool, MaxSweep) {
  for (int64_t k : {1, 2, 3, 5})
    for (int64_t stride : {1, 2, 3})
      for (int64_t pad = 0; pad <= k / 2; ++pad)
        for (int64_t d : {1, 2})
          for (bool ceil : {false, true})
            for (int64_t size : {1, 5, 6, 8}) {
              Pool2dTester t;
              t.batch(2)
                  .channels(3)
                  .input(size, size + 1)
                  .kernel(k, k)
                  .stride(stride)
                  .pad(pad)
                  .dilation(d)
                  .ceil_mode(ceil);
              if (t.Valid()) t.TestMax();
            }
}

TEST(kernels_pool, AvgSweep) {
  for (int64_t k : {1, 2, 3, 5})
    for (int64_t stride : {1, 2, 3})
      for (int64_t pad = 0; pad <= k / 2; ++pad)
        for (bool include_pad : {true, false})
          for (bool ceil : {false, true})
            for (int64_t size : {1, 5, 6, 8}) {
              Pool2dTester t;
              t.batch(2)
                  .channels(3)
                  .input(size, size + 1)
                  .kernel(k, k)
                  .stride(stride)
                  .pad(pad)
                  .count_include_pad(include_pad)
                  .ceil_mode(ceil);
              if (t.Valid()) t.TestAvg();
            }
}

// ceil_mode where the last window would start in the right padding and is dropped
// (h=5, k=2, s=2, p=1: 4 windows by the ceil formula, 3 by PyTorch's rule), and where a
// window hangs past input+padding, so the divisor is clipped.
TEST(kernels_pool, CeilModeEdges) {
  for (bool include_pad : {true, false}) {
    Pool2dTester()
        .batch(1)
        .channels(2)
        .input(5, 5)
        .kernel(2, 2)
        .stride(2)
        .pad(1)
        .ceil_mode(true)
        .count_include_pad(include_pad)
        .TestAvg();
    Pool2dTester()
        .batch(1)
        .channels(2)
        .input(6, 7)
        .kernel(3, 3)
        .stride(2)
        .pad(1)
        .ceil_mode(true)
        .count_include_pad(include_pad)
        .TestAvg();
    Pool2dTester()
        .batch(1)
        .channels(2)
        .input(8, 8)
        .kernel(3, 3)
        .stride(3)
        .ceil_mode(true)
        .count_include_pad(include_pad)
        .TestAvg();
  }
  Pool2dTester()
      .batch(1)
      .channels(2)
      .input(5, 5)
      .kernel(2, 2)
      .stride(2)
      .pad(1)
      .ceil_mode(true)
      .TestMax();
  Pool2dTester().batch(1).channels(2).input(8, 8).kernel(3, 3).stride(3).ceil_mode(true).TestMax();
}

TEST(kernels_pool, NonSquareAndOneDimensional) {  // MaxPool1d / AvgPool1d: h = 1, kernel_h = 1
  for (int64_t k : {2, 3})
    for (int64_t stride : {1, 2}) {
      Pool2dTester().batch(3).channels(5).input(1, 17).kernel(1, k).stride(1, stride).TestMax();
      Pool2dTester()
          .batch(3)
          .channels(5)
          .input(1, 17)
          .kernel(1, k)
          .stride(1, stride)
          .pad(0, 1)
          .TestAvg();
    }
  Pool2dTester().batch(2).channels(3).input(7, 12).kernel(2, 4).stride(1, 3).pad(1, 2).TestMax();
  Pool2dTester()
      .batch(2)
      .channels(3)
      .input(7, 12)
      .kernel(2, 4)
      .stride(1, 3)
      .pad(1, 2)
      .count_include_pad(false)
      .TestAvg();
}

TEST(kernels_pool, MaxTiesPickFirst) {
  for (int64_t k : {2, 3})
    for (int64_t stride : {1, 2})
      Pool2dTester()
          .batch(2)
          .channels(4)
          .input(9, 9)
          .kernel(k, k)
          .stride(stride)
          .pad(1)
          .ties(true)
          .TestMax();
}

// The 2x2 stride-2 kernel (vector lanes, no branches) on values where the choice is delicate:
// NaN (the first NaN of a window wins and propagates), infinities, -0 and +0 (equal: the first
// wins, so the sign of the result is the first zero's), ties. Checked bit for bit, with argmax,
// against a scalar scan of each window in PyTorch's order; widths cover whole 8-lane blocks and
// ragged ends.
TEST(kernels_pool, Max2x2SpecialValuesBitExact) {
  const float specials[] = {-INFINITY, -1.0f, -0.0f, 0.0f, 1.0f, INFINITY, NAN, 2.5f};
  Rng rng(7);
  for (int64_t w : {2, 3, 14, 15, 16, 17, 31, 34, 48})
    for (int64_t h : {2, 5}) {
      Pool2dShape s;
      s.n = 2, s.c = 3, s.h = h, s.w = w, s.kernel_h = s.kernel_w = 2, s.stride_h = s.stride_w = 2;
      const int64_t oh = s.out_h(), ow = s.out_w(), planes = s.n * s.c;
      std::vector<float> in(static_cast<size_t>(planes * h * w));
      for (auto& x : in) x = specials[rng.below(8)];
      std::vector<float> out(static_cast<size_t>(planes * oh * ow));
      std::vector<int32_t> am(out.size(), -7);
      kernels::maxpool2d_forward(out.data(), am.data(), in.data(), s);
      for (int64_t p = 0; p < planes; ++p)
        for (int64_t y = 0; y < oh; ++y)
          for (int64_t x = 0; x < ow; ++x) {
            const float* plane = in.data() + p * h * w;
            int32_t best_i = static_cast<int32_t>(2 * y * w + 2 * x);
            float best = plane[best_i];
            for (int64_t k : {int64_t(1), w, w + 1}) {
              const int32_t i = static_cast<int32_t>(2 * y * w + 2 * x + k);
              if (best != best) break;
              if (plane[i] > best || plane[i] != plane[i]) best = plane[i], best_i = i;
            }
            const int64_t o = (p * oh + y) * ow + x;
            ASSERT_EQ(std::memcmp(&out[o], &best, sizeof best), 0)
                << "w=" << w << " h=" << h << " output " << o << ": got " << out[o] << ", want " << best;
            ASSERT_EQ(am[o], best_i) << "w=" << w << " h=" << h << " output " << o;
          }
    }
}

TEST(kernels_pool, LargerPlanes) {
  Pool2dTester().batch(4).channels(17).input(32, 32).kernel(3, 3).stride(2).pad(1).TestMax();
  Pool2dTester().batch(4).channels(17).input(32, 32).kernel(2, 2).stride(2).TestAvg();
}

TEST(kernels_pool, GlobalAverage) {
  for (int64_t n : {1, 3})
    for (int64_t c : {1, 5, 33})
      for (int64_t hw : {1, 7, 49, 1024}) {
        Rng rng(n * 1000 + c * 10 + hw);
        const auto in = random_floats(rng, n * c * hw), dout = random_floats(rng, n * c);
        std::vector<float> out(n * c, NAN), din(n * c * hw, NAN);
        kernels::global_avgpool_forward(out.data(), in.data(), n, c, hw);
        kernels::global_avgpool_backward(din.data(), dout.data(), n, c, hw);
        const auto in_d = to_double(in), dout_d = to_double(dout);
        std::vector<double> out_r(out.size()), out_mag(out.size()), din_r(din.size());
        ref::global_avgpool_forward(out_r.data(), in_d.data(), n, c, hw);
        ref::global_avgpool_forward(out_mag.data(), abs_of(in_d).data(), n, c, hw);
        ref::global_avgpool_backward(din_r.data(), dout_d.data(), n, c, hw);
        const std::string what = "global avgpool hw=" + std::to_string(hw);
        expect_close(out, out_r, out_mag, double(hw + 1), what + " forward");
        expect_close(din, din_r, abs_of(din_r), 2, what + " backward");
      }
}

TEST(kernels_pool, ValidateRejectsBadShapes) {
  Pool2dShape s;
  s.h = s.w = 5, s.kernel_h = s.kernel_w = 3, s.pad_h = 2;
  EXPECT_THROW(s.validate("pool"), Error);  // padding more than half the kernel
  s.pad_h = 1, s.stride_w = 0;
  EXPECT_THROW(s.validate("pool"), Error);
  s.stride_w = 1, s.h = 1, s.pad_h = 0;
  EXPECT_THROW(s.validate("pool"), Error);  // input smaller than kernel
  s.h = 5;
  EXPECT_NO_THROW(s.validate("pool"));
  // A one-row input under a 2x2 window with stride 2: (1 - 2) / 2 rounds down to -1, so no
  // output row (PyTorch: "Output size is too small"); with ceil_mode one row, as in PyTorch.
  Pool2dShape t;
  t.h = 1, t.w = 6, t.kernel_h = t.kernel_w = 2, t.stride_h = t.stride_w = 2;
  EXPECT_EQ(t.out_h(), 0);
  EXPECT_THROW(t.validate("pool"), Error);
  t.ceil_mode = true;
  EXPECT_EQ(t.out_h(), 1);
  EXPECT_EQ(t.out_w(), 3);
}

}  // namespace
}  // namespace normnet

// Linear float kernel vs the double reference.
#include <gtest/gtest.h>

#include <sstream>

#include "kernel_test_util.h"
#include "kernels/linear.h"
#include "ref/reference.h"

namespace normnet {
namespace {

using test::abs_of;
using test::expect_close;
using test::random_floats;
using test::to_double;

// Forward, then backward with dweight/dbias pre-filled (they accumulate) and din pre-filled
// with garbage (it is overwritten).
class LinearTester {
 public:
  LinearTester& batch(int64_t n) { return n_ = n, *this; }
  LinearTester& features(int64_t in, int64_t out) { return in_f_ = in, out_f_ = out, *this; }
  LinearTester& bias(bool b) { return bias_ = b, *this; }
  LinearTester& input_grad(bool b) { return input_grad_ = b, *this; }
  LinearTester& seed(uint64_t s) { return seed_ = s, *this; }

  void Test() const {
    std::ostringstream o;
    o << "linear n=" << n_ << " " << in_f_ << "->" << out_f_ << " bias=" << bias_
      << " din=" << input_grad_;
    const std::string what = o.str();
    Rng rng(seed_);
    const auto in = random_floats(rng, n_ * in_f_), weight = random_floats(rng, out_f_ * in_f_);
    const auto bias = random_floats(rng, out_f_), dout = random_floats(rng, n_ * out_f_);
    const auto dweight0 = random_floats(rng, out_f_ * in_f_), dbias0 = random_floats(rng, out_f_);
    const auto in_d = to_double(in), w_d = to_double(weight), b_d = to_double(bias);
    const auto dout_d = to_double(dout);
    const float* b = bias_ ? bias.data() : nullptr;

    std::vector<float> out(n_ * out_f_, NAN);
    kernels::linear_forward(out.data(), in.data(), weight.data(), b, n_, in_f_, out_f_);
    std::vector<double> out_ref(out.size()), out_mag(out.size());
    ref::linear_forward(out_ref.data(), in_d.data(), w_d.data(), bias_ ? b_d.data() : nullptr, n_,
                        in_f_, out_f_);
    ref::linear_forward(out_mag.data(), abs_of(in_d).data(), abs_of(w_d).data(),
                        bias_ ? abs_of(b_d).data() : nullptr, n_, in_f_, out_f_);
    expect_close(out, out_ref, out_mag, double(in_f_ + 1), what + " forward");

    std::vector<float> din(n_ * in_f_, 1e30f), dweight = dweight0, dbias = dbias0;
    kernels::linear_backward(input_grad_ ? din.data() : nullptr, dweight.data(),
                             bias_ ? dbias.data() : nullptr, dout.data(), in.data(), weight.data(),
                             n_, in_f_, out_f_);
    std::vector<double> din_ref(din.size()), dw_ref = to_double(dweight0),
                                             db_ref = to_double(dbias0);
    std::vector<double> din_mag(din.size()), dw_mag = abs_of(dw_ref), db_mag = abs_of(db_ref);
    ref::linear_backward(din_ref.data(), dw_ref.data(), db_ref.data(), dout_d.data(), in_d.data(),
                         w_d.data(), n_, in_f_, out_f_);
    ref::linear_backward(din_mag.data(), dw_mag.data(), db_mag.data(), abs_of(dout_d).data(),
                         abs_of(in_d).data(), abs_of(w_d).data(), n_, in_f_, out_f_);
    if (input_grad_) expect_close(din, din_ref, din_mag, double(out_f_), what + " din");
    expect_close(dweight, dw_ref, dw_mag, double(n_ + 1), what + " dweight");
    if (bias_)
      expect_close(dbias, db_ref, db_mag, double(n_ + 1), what + " dbias");
    else
      EXPECT_EQ(dbias, dbias0) << what << ": dbias written although null was passed";
  }

 private:
  int64_t n_ = 1, in_f_ = 1, out_f_ = 1;
  bool bias_ = true, input_grad_ = true;
  uint64_t seed_ = 1;
};

TEST(kernels_linear, OddSizes) {
  for (int64_t n : {1, 2, 5, 17, 33})
    for (int64_t in_f : {1, 3, 17, 33})
      for (int64_t out_f : {1, 5, 10, 33}) LinearTester().batch(n).features(in_f, out_f).Test();
}

TEST(kernels_linear, LargerThanThreadBlocks) {  // several row blocks per thread
  LinearTester().batch(67).features(129, 37).Test();
  LinearTester().batch(3).features(784, 100).Test();
  LinearTester().batch(128).features(10, 600).Test();
}

TEST(kernels_linear, NoBiasNoInputGrad) {
  LinearTester().batch(7).features(9, 5).bias(false).Test();
  LinearTester().batch(7).features(9, 5).input_grad(false).Test();
  LinearTester().batch(7).features(9, 5).bias(false).input_grad(false).Test();
}

TEST(kernels_linear, SeedsSweep) {
  for (uint64_t seed = 2; seed < 8; ++seed)
    LinearTester().batch(6).features(11, 7).seed(seed).Test();
}

}  // namespace
}  // namespace normnet

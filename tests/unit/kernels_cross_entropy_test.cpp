// Softmax cross-entropy float kernel vs the double reference.
//
// cross_entropy.h sums the loss in double from the float logits, so the loss must agree with
// the reference to double rounding: we allow 1e-12 relative to sum |q * log p| / N. Each
// probability and gradient is one double computation rounded to float: 2 * FLT_EPSILON of
// its magnitude (p, and (p + q) / N).
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "kernel_test_util.h"
#include "kernels/cross_entropy.h"
#include "ref/reference.h"

namespace normnet {
namespace {

using test::expect_close;
using test::to_double;

class CrossEntropyTester {
 public:
  CrossEntropyTester& batch(int64_t n) { return n_ = n, *this; }
  CrossEntropyTester& classes(int64_t k) { return k_ = k, *this; }
  CrossEntropyTester& label_smoothing(double ls) { return ls_ = ls, *this; }
  CrossEntropyTester& logit_scale(double s) { return scale_ = s, *this; }    // logits ~ s * N(0,1)
  CrossEntropyTester& logit_offset(double o) { return offset_ = o, *this; }  // plus o
  CrossEntropyTester& seed(uint64_t s) { return seed_ = s, *this; }

  void Test() const {
    std::ostringstream o;
    o << "cross_entropy n=" << n_ << " k=" << k_ << " ls=" << ls_ << " scale=" << scale_
      << " offset=" << offset_;
    const std::string what = o.str();
    Rng rng(seed_);
    std::vector<float> logits(n_ * k_);
    for (auto& z : logits) z = static_cast<float>(offset_ + scale_ * rng.normal());
    std::vector<int32_t> labels(n_);
    for (auto& t : labels) t = static_cast<int32_t>(rng.below(k_));

    std::vector<float> probs(n_ * k_, NAN), dlogits(n_ * k_, NAN);
    const double loss =
        kernels::cross_entropy_forward(probs.data(), logits.data(), labels.data(), n_, k_, ls_);
    kernels::cross_entropy_backward(dlogits.data(), probs.data(), labels.data(), n_, k_, ls_);

    const auto logits_d = to_double(logits);
    std::vector<double> probs_r(n_ * k_), dlogits_r(n_ * k_);
    const double loss_r =
        ref::cross_entropy_forward(probs_r.data(), logits_d.data(), labels.data(), n_, k_, ls_);
    // Backward from the kernel's own (float) probabilities, so only backward is judged here.
    ref::cross_entropy_backward(dlogits_r.data(), to_double(probs).data(), labels.data(), n_, k_,
                                ls_);
    double loss_mag = 0;
    std::vector<double> dlogits_mag(n_ * k_);
    for (int64_t r = 0; r < n_; ++r)
      for (int64_t k = 0; k < k_; ++k) {
        const int64_t i = r * k_ + k;
        const double q = (1 - ls_) * (k == labels[r]) + ls_ / k_;
        loss_mag += q * std::fabs(std::log(probs_r[i])) / n_;
        dlogits_mag[i] = (probs_r[i] + q) / n_;
      }
    ASSERT_TRUE(std::isfinite(loss)) << what;
    EXPECT_NEAR(loss, loss_r, 1e-12 * loss_mag + 1e-300) << what << " loss";
    expect_close(probs, probs_r, probs_r, 1, what + " probs");
    expect_close(dlogits, dlogits_r, dlogits_mag, 1, what + " dlogits");
  }

 private:
  int64_t n_ = 1, k_ = 2;
  double ls_ = 0, scale_ = 1, offset_ = 0;
  uint64_t seed_ = 1;
};

TEST(kernels_cross_entropy, Sweep) {
  for (int64_t n : {1, 3, 32})
    for (int64_t k : {1, 2, 10, 33, 1000})
      for (double ls : {0.0, 0.1, 0.5})
        CrossEntropyTester().batch(n).classes(k).label_smoothing(ls).Test();
}

// Logits far outside float exp's range: the row max must be subtracted.
TEST(kernels_cross_entropy, LargeLogits) {
  for (double ls : {0.0, 0.1}) {
    CrossEntropyTester().batch(8).classes(10).label_smoothing(ls).logit_scale(50).Test();
    CrossEntropyTester().batch(8).classes(10).label_smoothing(ls).logit_offset(1e4).Test();
    CrossEntropyTester().batch(8).classes(10).label_smoothing(ls).logit_offset(-1e4).Test();
  }
}

TEST(kernels_cross_entropy, KnownValues) {
  // Uniform logits: p = 1/K and loss = log K whatever the smoothing.
  const int64_t K = 4;
  const std::vector<float> logits(2 * K, 3.f);
  const std::vector<int32_t> labels = {0, 3};
  std::vector<float> probs(2 * K), dlogits(2 * K);
  for (double ls : {0.0, 0.2}) {
    const double loss =
        kernels::cross_entropy_forward(probs.data(), logits.data(), labels.data(), 2, K, ls);
    EXPECT_NEAR(loss, std::log(4.0), 1e-12);
    kernels::cross_entropy_backward(dlogits.data(), probs.data(), labels.data(), 2, K, ls);
    // dz = (p - q) / N: for the label (1/K - (1 - ls) - ls/K) / 2, elsewhere (1/K - ls/K) / 2.
    EXPECT_NEAR(dlogits[0], (0.25 - (1 - ls) - ls / K) / 2, 1e-7);
    EXPECT_NEAR(dlogits[1], (0.25 - ls / K) / 2, 1e-7);
  }
}

}  // namespace
}  // namespace normnet

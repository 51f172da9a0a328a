// add and dropout float kernels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernel_test_util.h"
#include "kernels/elementwise.h"

namespace normnet {
namespace {

using test::random_floats;

TEST(kernels_elementwise, AddIsExact) {  // one correctly rounded addition per element
  for (int64_t n : {0, 1, 17, 1000, 70001}) {
    Rng rng(n);
    const auto a = random_floats(rng, n), b = random_floats(rng, n);
    std::vector<float> out(n, NAN);
    kernels::add_forward(out.data(), a.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], a[i] + b[i]) << "n=" << n << " i=" << i;
    std::vector<float> inplace = a;  // out may alias an input (residual add in place)
    kernels::add_forward(inplace.data(), inplace.data(), b.data(), n);
    EXPECT_EQ(inplace, out);
  }
}

// out = in * mask / (1 - p): the scale 1/(1-p) is rounded to float once, so out is within
// 2 * FLT_EPSILON of |in| / (1 - p). Kept fraction: binomial, checked to 5 standard deviations.
TEST(kernels_elementwise, Dropout) {
  const int64_t n = 100003;
  for (double p : {0.0, 0.1, 0.5, 0.9}) {
    Rng rng(3);
    const auto in = random_floats(rng, n), dout = random_floats(rng, n);
    std::vector<float> out(n, NAN), din(n, NAN);
    std::vector<uint8_t> mask(n, 7);
    kernels::dropout_forward(out.data(), mask.data(), in.data(), p, 42, n);
    kernels::dropout_backward(din.data(), dout.data(), mask.data(), p, n);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(mask[i] == 0 || mask[i] == 1) << "p=" << p << " i=" << i;
      kept += mask[i];
      const double want = mask[i] ? in[i] / (1 - p) : 0.0,
                   dwant = mask[i] ? dout[i] / (1 - p) : 0.0;
      ASSERT_NEAR(out[i], want, 2 * FLT_EPSILON * std::fabs(want)) << "p=" << p << " i=" << i;
      ASSERT_NEAR(din[i], dwant, 2 * FLT_EPSILON * std::fabs(dwant)) << "p=" << p << " i=" << i;
    }
    const double expected = n * (1 - p), sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(double(kept), expected, 5 * sd + 0.5) << "p=" << p;

    // Same seed, same mask; another seed, another mask.
    std::vector<float> out2(n);
    std::vector<uint8_t> mask2(n), mask3(n);
    kernels::dropout_forward(out2.data(), mask2.data(), in.data(), p, 42, n);
    EXPECT_EQ(mask, mask2) << "p=" << p;
    EXPECT_EQ(out, out2) << "p=" << p;
    kernels::dropout_forward(out2.data(), mask3.data(), in.data(), p, 43, n);
    if (p > 0) {
      EXPECT_NE(mask, mask3) << "p=" << p;
    }
  }
}

// The mask is keyed by (seed, i): a prefix of the array gets the same mask as the whole.
TEST(kernels_elementwise, DropoutMaskDependsOnIndexOnly) {
  const int64_t n = 1000;
  const std::vector<float> in(n, 1.f);
  std::vector<float> out(n);
  std::vector<uint8_t> whole(n), prefix(n / 3);
  kernels::dropout_forward(out.data(), whole.data(), in.data(), 0.3, 9, n);
  kernels::dropout_forward(out.data(), prefix.data(), in.data(), 0.3, 9, n / 3);
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), whole.begin()));
}

}  // namespace
}  // namespace normnet

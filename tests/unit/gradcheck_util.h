// Central finite-difference gradient check in double precision, shared by the gradcheck tests
// (gradcheck_test, gradcheck_norm_test, gradcheck_brn_test, gradcheck_fused_test).
//
// What it checks. loss = sum(forward() * R) for a fixed random R, so dloss/dout = R is what each
// backward kernel is given. For every element x_i of an input or parameter (perturbed in place
// and restored), the numerical derivative (L(x + h e_i) - L(x - h e_i)) / 2h with h = kH = 1e-6
// is compared with the analytic one.
//
// Why the tolerance. The central difference has truncation error h^2/6 * |L'''| (about 1e-13
// for smooth, O(1) functions, zero for piecewise-linear ones away from kinks) and rounding error
// about DBL_EPSILON * S / h, where S = sum |out * R| is the size of the terms summed into L
// (1e-10 * S). We allow 1e-6 relative to the gradient plus 1e-9 * (1 + S) absolute: both errors
// with a wide margin, while a wrong term in a gradient (an error of order the gradient itself)
// is caught many times over.
//
// Kinks. `skip(i)` leaves out points known to lie near a kink (e.g. ReLU at 0); `crossed()`,
// asked after each perturbed forward, leaves out points whose perturbation crossed one (e.g. a
// max-pool argmax or a ReLU mask changed). At least 3/4 of the points must still be checked.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace normnet::test {

inline constexpr double kH = 1e-6;

// loss = sum(forward() * R); forward reads the parameters the checks perturb in place.
struct GradCheck {
  using Vec = std::vector<double>;

  std::function<Vec()> forward;
  Vec R;
  std::function<bool(size_t)> skip = nullptr;  // x_i near a kink
  std::function<bool()> crossed = nullptr;     // the last forward() crossed a kink

  double Loss(double* magnitude = nullptr) const {
    const Vec out = forward();
    double loss = 0, mag = 0;
    for (size_t i = 0; i < out.size(); ++i) loss += out[i] * R[i], mag += std::fabs(out[i] * R[i]);
    if (magnitude) *magnitude = mag;
    return loss;
  }

  // Checks analytic == dL/dparam for every element of param (perturbed and restored).
  void Check(Vec& param, const Vec& analytic, const std::string& what) const {
    ASSERT_EQ(param.size(), analytic.size()) << what;
    double S = 0;
    Loss(&S);
    size_t bad = 0, checked = 0;
    double worst = 0;
    for (size_t i = 0; i < param.size(); ++i) {
      if (skip && skip(i)) continue;
      const double v = param[i];
      param[i] = v + kH;
      const double plus = Loss();
      const bool crossed_plus = crossed && crossed();
      param[i] = v - kH;
      const double minus = Loss();
      const bool crossed_minus = crossed && crossed();
      param[i] = v;
      if (crossed_plus || crossed_minus) continue;
      ++checked;
      const double numeric = (plus - minus) / (2 * kH);
      const double tol =
          1e-6 * std::max(std::fabs(analytic[i]), std::fabs(numeric)) + 1e-9 * (1 + S);
      worst = std::max(worst, std::fabs(numeric - analytic[i]) / tol);
      if (!(std::fabs(numeric - analytic[i]) <= tol) && bad++ < 5)
        ADD_FAILURE() << what << "[" << i << "]: analytic " << analytic[i] << ", numeric "
                      << numeric << " (tolerance " << tol << ")";
    }
    if (std::getenv("NORMNET_TEST_VERBOSE"))
      std::printf("%-50s checked %zu of %zu, worst error / tolerance = %.3g\n", what.c_str(),
                  checked, param.size(), worst);
    EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << checked << " elements wrong";
    EXPECT_GE(checked, param.size() * 3 / 4) << what << ": too many points skipped";
  }
};

inline std::vector<double> Zeros(int64_t n) { return std::vector<double>(static_cast<size_t>(n), 0.0); }

}  // namespace normnet::test

// Helpers shared by the kernel tests: seeded fills, float<->double copies, and a comparison
// whose tolerance follows from the number of terms summed.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "normnet/random.h"

namespace normnet::test {

inline std::vector<float> random_floats(Rng& rng, int64_t n, float lo = -1.f, float hi = 1.f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.uniform(lo, hi);
  return v;
}

inline std::vector<double> random_doubles(Rng& rng, int64_t n, double lo = -1, double hi = 1) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = lo + rng.uniform() * (hi - lo);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

inline std::vector<double> abs_of(const std::vector<double>& v) {
  std::vector<double> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  return a;
}

// Float kernel output vs double reference. A float sum of `terms` products carries a rounding
// error of at most terms * u * sum|products| (u = FLT_EPSILON / 2) in the worst case and about
// sqrt(terms) * u * sum|products| typically, whatever the summation order or blocking. `mag` is
// sum|products| per element (the reference run on absolute values), so we allow
// 2 * FLT_EPSILON * sqrt(terms) * mag: 4x the typical error with a margin of sqrt(terms), and
// still far below the error of one dropped or doubled term (about mag / terms).
// Reports the worst element and how many failed, not one line per element; with
// NORMNET_TEST_VERBOSE set, prints the worst error/tolerance ratio of every comparison.
inline void expect_close(const std::vector<float>& got, const std::vector<double>& want,
                         const std::vector<double>& mag, double terms, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_EQ(mag.size(), want.size()) << what;
  const double scale = 2.0 * FLT_EPSILON * std::sqrt(std::max(terms, 1.0));
  size_t bad = 0, worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = scale * mag[i] + 1e-30;
    const double err = std::fabs(double(got[i]) - want[i]);
    const double ratio = std::isfinite(got[i]) ? err / tol : INFINITY;
    if (!(ratio <= 1.0)) ++bad;
    if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = i;
  }
  if (std::getenv("NORMNET_TEST_VERBOSE"))
    std::printf("%-70s worst error / tolerance = %.3g\n", what.c_str(), worst_ratio);
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size()
                     << " elements out of tolerance; worst at index " << worst << ": got "
                     << got[worst] << ", want " << want[worst] << ", tolerance "
                     << scale * mag[worst];
}

// Exact equality for kernels that do no arithmetic beyond one correctly rounded operation.
inline void expect_equal(const std::vector<float>& got, const std::vector<double>& want,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != static_cast<float>(want[i]) && bad++ == 0) first = i;
  EXPECT_EQ(bad, 0u) << what << ": first mismatch at " << first << ": got " << got[first]
                     << ", want " << static_cast<float>(want[first]);
}

}  // namespace normnet::test

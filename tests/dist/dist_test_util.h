// Shared by the distributed tests (run under `mpirun -np 2`, tests/CMakeLists.txt): the job's
// Comm, set up by mpi_main.cpp, and comparisons.
//
// Every test runs on every rank and must reach the same collectives in the same order on all of
// them, so tests use EXPECT (never ASSERT) between collectives: a failure on one rank must not
// make it skip an exchange the others wait in.
#pragma once
#include <algorithm>
#include <cmath>

#include "normnet/distributed.h"
#include "normnet/tensor.h"

namespace normnet::test {

Comm& comm();  // MPI's world (mpi_main.cpp)

// max |a - b| / max |b| over the elements (0 when both are all zero); a and b same size.
inline double relative_difference(const float* a, const float* b, int64_t n) {
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}
inline double relative_difference(const Tensor& a, const Tensor& b) {
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  if (ca.numel() != cb.numel()) return INFINITY;
  return relative_difference(ca.data(), cb.data(), ca.numel());
}

}  // namespace normnet::test

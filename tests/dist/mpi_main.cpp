// main() of the distributed tests: starts MPI (they run under mpirun), runs the gtest cases on
// every rank and exits non-zero on a rank where any failed, so mpirun does too. Only rank 0
// prints the progress; every rank prints its failures.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "dist/mpi_comm.h"
#include "dist_test_util.h"

namespace normnet::test {
namespace {
std::unique_ptr<Comm> world;
}
Comm& comm() { return *world; }
}  // namespace normnet::test

int main(int argc, char** argv) {
  if (!normnet::launched_by_mpirun()) {
    std::fprintf(stderr, "%s: run under mpirun -np 2 (tests/CMakeLists.txt)\n", argv[0]);
    return 1;
  }
  normnet::test::world = normnet::start_mpi();
  if (normnet::test::world->size() < 2) {
    std::fprintf(stderr, "%s: needs at least 2 ranks, got %d\n", argv[0], normnet::test::world->size());
    return 1;
  }
  if (normnet::test::world->rank() != 0) GTEST_FLAG_SET(brief, true);  // failures only
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  // Every rank's verdict: rank 0 reports whether any rank failed.
  std::vector<int> all(static_cast<size_t>(normnet::test::world->size()));
  normnet::test::world->allgather(&rc, all.data(), sizeof rc);
  int failed = 0;
  for (int r : all) failed |= r != 0;
  if (normnet::test::world->rank() == 0 && failed) std::fprintf(stderr, "some rank failed\n");
  normnet::test::world.reset();  // MPI_Finalize
  return failed ? 1 : 0;
}
